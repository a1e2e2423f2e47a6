use kiln::prelude::*;

sequential! {
    pub struct Model: [4] {
        Dense(8, activation = relu),
        Dens(2),
    }
}

fn main() {}
