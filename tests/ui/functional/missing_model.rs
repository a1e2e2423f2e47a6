use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([8]);
        out = Dense(1)(x);
    }
}

fn main() {}
