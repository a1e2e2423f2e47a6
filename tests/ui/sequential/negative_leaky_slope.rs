use kiln::prelude::*;

sequential! {
    pub struct Net: [4] {
        Dense(8),
        LeakyReLU(negative_slope = -0.1),
        Dense(2),
    }
}

fn main() {}
