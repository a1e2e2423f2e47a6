use kiln::prelude::*;

sequential! {
    pub struct Model: [4] {
        Dense(8),
        Add(),
    }
}

fn main() {}
