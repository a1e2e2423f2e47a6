use kiln::prelude::*;

sequential! {
    pub struct Net: [8, 8, 1] {
        RandomContrast(1.5),
        RandomFlip("diagonal"),
        RandomTranslation(0.1, 0.1, fill_mode = "wrap"),
        RandomBrightness(0.2, seed = 3),
        RandomRotation(1.5),
        RandomZoom(0.2, fill_mode = "wrap"),
        Resizing(0, 4),
        Flatten,
        Dense(10, activation = softmax),
    }
}

fn main() {}
