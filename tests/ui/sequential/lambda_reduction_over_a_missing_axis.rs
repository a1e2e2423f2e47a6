// A Lambda's math is checked as layers are: a reduction over an axis the value does not have.
use kiln::prelude::*;

sequential! {
    pub struct Net: [6] {
        Dense(4),
        Lambda(|x| sum(x, axis = 2)),
        Dense(2),
    }
}

fn main() {}
