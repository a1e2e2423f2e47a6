use kiln::prelude::*;

sequential! {
    pub struct Net: [64] {
        RandomFlip("horizontal"),
        Dense(10, activation = softmax),
    }
}

fn main() {}
