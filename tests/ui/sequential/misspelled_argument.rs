// A misspelled argument name is one error, with the name it is closest to.
use kiln::prelude::*;

sequential! {
    pub struct Cnn: [8, 8, 1] {
        Conv2D(8, kernal_size = 3),
        Flatten,
        Dense(10),
    }
}

fn main() {}
