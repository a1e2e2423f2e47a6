use kiln::prelude::*;

sequential! {
    pub struct Reviews: Input([], dtype = string) {
        TextVectorization(max_tokens = 40, output_mode = multi_hot),
        Dense(2, activation = softmax),
    }
}

fn main() {}
