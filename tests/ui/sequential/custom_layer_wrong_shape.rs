#[path = "../../../examples/layers/scale.rs"]
mod scale;

use kiln::prelude::*;
use scale::Scale;

sequential! {
    pub struct Scaled: [4, 16] {
        Dense(8, activation = relu),
        Custom(Scale<16>),
        Flatten,
        Dense(3, activation = softmax),
    }
}

fn main() {}
