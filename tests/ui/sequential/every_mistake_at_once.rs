use kiln::prelude::*;

// All mistakes are reported together, each at its own layer.
sequential! {
    pub struct Model: [4] {
        Dense(0),
        Dense(8, activation = rleu, bias = false),
        Conv3D(3),
    }
}

fn main() {}
