use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 1] {
        Conv2D(4, 3, activation = relu),
        MaxPooling2D(2),
        Dense(10, activation = softmax),
    }
}

fn main() {}
