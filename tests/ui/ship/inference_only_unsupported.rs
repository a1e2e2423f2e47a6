// #[inference_only] on a model whose mask `infer` cannot carry, and without weights.
use kiln::prelude::*;

sequential! {
    #[weights("../embed/wrong_shape.safetensors")]
    #[inference_only]
    pub struct Recurrent: [10, 4] {
        Masking(),
        LSTM(8),
        Dense(2),
    }
}

sequential! {
    #[inference_only]
    pub struct NoWeights: [4] {
        Dense(2),
    }
}

fn main() {}
