use kiln::prelude::*;

functional! {
    pub struct Net {
        a = Input([8]);
        b = Input([8]);
        ha = shared(a);
        shared = Dense(8, activation = relu);
        hb = shared(b);
        out = Dense(1)(Add()([ha, hb]));
        Model([a, b], out)
    }
}

fn main() {}
