use kiln::prelude::*;

sequential! {
    pub struct Digits: [8, 8, 1] {
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn main() {}
