use kiln::prelude::*;

functional! {
    pub struct Net {
        a = Input([4, 8]);
        b = Input([5, 6]);
        joined = Concatenate(axis = -1)([a, b]);
        out = Dense(1)(Flatten()(joined));
        Model([a, b], out)
    }
}

fn main() {}
