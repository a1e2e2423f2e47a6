use kiln::prelude::*;

sequential! {
    pub struct Net: [64] {
        Conv2D(8, 3),
        Flatten,
        Dense(2),
    }
}

fn main() {}
