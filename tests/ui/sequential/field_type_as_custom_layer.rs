use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 1] {
        Custom(kiln::Conv2D<1, 4, 3>),
        Flatten,
        Dense(2),
    }
}

fn main() {}
