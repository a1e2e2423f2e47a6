// #[inference_only] on a model with a user's layer (whose code needs the standard library), and
// without weights.
#[path = "../../../examples/layers/scale.rs"]
mod scale;

use kiln::prelude::*;
use scale::Scale;

sequential! {
    #[weights("../embed/wrong_shape.safetensors")]
    #[inference_only]
    pub struct Scaled: [4, 16] {
        Custom(Scale<16>),
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
