use kiln::prelude::*;

functional! {
    pub struct Decoder {
        x = Input([6, 3]);
        e = Input([4, 2]);
        (_, h) = GRU(8, return_state = true)(e);
        d = LSTM(16, return_sequences = true)(x, initial_state = [h]);
        Model([x, e], d)
    }
}

fn main() {}
