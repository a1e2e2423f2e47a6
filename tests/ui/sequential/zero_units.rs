use kiln::prelude::*;

sequential! {
    pub struct Model: [4] {
        Dense(0),
    }
}

fn main() {}
