use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 1] {
        Conv2D(4, 3, padding = causal),
        Flatten,
        Dense(2),
    }
}

fn main() {}
