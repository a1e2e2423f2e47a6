// A model over its memory budget: the build fails, naming the largest buffer and weights.
use kiln::prelude::*;

sequential! {
    #[budget(ram = "4K", flash = "64K")]
    pub struct Big: [28, 28, 1] {
        Conv2D(16, 3, padding = same, activation = relu),
        MaxPooling2D(2),
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn main() {}
