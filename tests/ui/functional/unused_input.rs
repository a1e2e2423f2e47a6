use kiln::prelude::*;

functional! {
    pub struct Net {
        a = Input([8]);
        b = Input([8]);
        out = Dense(1)(a);
        Model([a, b], out)
    }
}

fn main() {}
