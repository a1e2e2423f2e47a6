use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([8]);
        spare = Dense(4);
        h = Dense(16, activation = relu)(x);
        side = Dense(2)(h);
        out = Dense(1)(h);
        Model(x, out)
    }
}

fn main() {}
