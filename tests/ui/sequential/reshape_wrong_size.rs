use kiln::prelude::*;

sequential! {
    pub struct Model: [64] {
        Reshape([7, 9]),
        Flatten,
        Dense(2),
    }
}

fn main() {}
