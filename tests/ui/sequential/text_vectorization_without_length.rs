use kiln::prelude::*;

sequential! {
    pub struct Reviews: Input([], dtype = string) {
        TextVectorization(max_tokens = 40),
        Embedding(40, 8),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

fn main() {}
