// A reduction over an axis a sample does not have.
use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([6]);
        h = Dense(3)(x);
        s = sum(h, axis = 2, keepdims = true);
        Model(x, s)
    }
}

fn main() {}
