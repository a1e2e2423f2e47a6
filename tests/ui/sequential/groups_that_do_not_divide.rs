use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 4] {
        Conv2D(6, 3, groups = 3),
        Flatten,
        Dense(2),
    }
}

fn main() {}
