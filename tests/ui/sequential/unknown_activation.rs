use kiln::prelude::*;

sequential! {
    pub struct Model: [4] {
        Dense(8, activation = rleu),
    }
}

fn main() {}
