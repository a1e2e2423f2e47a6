use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 1] {
        Conv2D(8, 3),
        MaxPooling2D(0),
        Flatten,
        Dense(2),
    }
}

fn main() {}
