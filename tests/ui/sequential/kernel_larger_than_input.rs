use kiln::prelude::*;

sequential! {
    pub struct Net: [3, 3, 1] {
        Conv2D(8, 5),
        Flatten,
        Dense(2),
    }
}

fn main() {}
