use kiln::prelude::*;

sequential! {
    pub struct Net: [64] {
        LSTM(16),
        Dense(1),
    }
}

fn main() {}
