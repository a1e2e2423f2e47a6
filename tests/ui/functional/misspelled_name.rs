// A misspelled value name gets the name it is closest to.
use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([8]);
        hidden = Dense(16, activation = relu)(x);
        out = Dense(1)(hiden);
        Model(x, out)
    }
}

fn main() {}
