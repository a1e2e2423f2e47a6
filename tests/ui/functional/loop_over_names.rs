// A loop runs over numbers or strings written in the code, not over names.
use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([6]);
        h = Dense(8)(x);
        for size in [h, 4] {
            h = Dense(size)(h);
        }
        Model(x, h)
    }
}

fn main() {}
