use kiln::prelude::*;

sequential! {
    pub struct Net: Input([10], dtype = int32) {
        Embedding(100, 8, mask_zero = true),
        Bidirectional(Dense(4)),
        LSTM(16, recurrent_dropout = 1.5, stateful = true),
        GRU(4, activation = softmax),
        Dense(1),
    }
}

sequential! {
    pub struct BadDtype: Input([10], dtype = f16) {
        Dense(1),
    }
}

fn main() {}
