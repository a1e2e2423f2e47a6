// #[inference_only] on a model with a layer `infer` has no kernel for, and without weights.
use kiln::prelude::*;

sequential! {
    #[weights("../embed/wrong_shape.safetensors")]
    #[inference_only]
    pub struct Recurrent: [10, 4] {
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
