use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([4]);
        h = Dense(8, activation = relu)(x);
        Model(x, Dense(3, activation = softmax)(h))
    }
}

fn main() {}
