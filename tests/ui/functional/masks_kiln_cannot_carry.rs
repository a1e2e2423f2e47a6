use kiln::prelude::*;

functional! {
    pub struct Net {
        a = Input([10], dtype = i32);
        b = Input([10], dtype = i32);
        ea = Embedding(100, 8, mask_zero = true)(a);
        eb = Embedding(100, 8, mask_zero = true)(b);
        s = Add()([ea, eb]);
        h = LSTM(4)(s);
        out = Dense(1)(h);
        Model([a, b], out)
    }
}

sequential! {
    pub struct Normed: Input([10], dtype = i32) {
        Embedding(100, 8, mask_zero = true),
        BatchNormalization,
        GlobalAveragePooling1D,
        Dense(1),
    }
}

fn main() {}
