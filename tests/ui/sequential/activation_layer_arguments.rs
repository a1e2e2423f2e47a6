use kiln::prelude::*;

sequential! {
    pub struct Net: [4] {
        Dense(8),
        ReLU(max_value = 6),
        Dense(8),
        Softmax(axis = 1),
    }
}

fn main() {}
