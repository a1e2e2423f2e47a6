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

functional! {
    pub struct BothWays {
        x = Input([6, 3]);
        e = Input([4, 2]);
        (_, fh, bh) = Bidirectional(GRU(8, return_state = true))(e);
        d = Bidirectional(GRU(8))(x, initial_state = [fh]);
        Model([x, e], [d, bh])
    }
}

fn main() {}
