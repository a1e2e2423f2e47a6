use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([32]);
        h = Dense(64, activation = relu)(x);
        res = Add()([h, x]);
        Model(x, res)
    }
}

fn main() {}
