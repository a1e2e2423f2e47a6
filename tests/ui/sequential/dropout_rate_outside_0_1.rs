use kiln::prelude::*;

sequential! {
    pub struct Net: [16] {
        Dense(8, activation = relu),
        Dropout(1.0),
        Dense(2),
    }
}

fn main() {}
