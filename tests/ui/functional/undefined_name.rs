use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([8]);
        h = Dense(16, activation = relu)(x);
        out = Dense(1)(hiden);
        Model(x, out)
    }
}

fn main() {}
