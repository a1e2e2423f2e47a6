use kiln::prelude::*;

sequential! {
    pub struct Model {
        Dense(8),
    }
}

fn main() {}
