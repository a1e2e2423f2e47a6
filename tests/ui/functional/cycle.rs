use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([8]);
        a = Dense(8)(Add()([x, b]));
        b = Dense(8)(a);
        Model(x, b)
    }
}

fn main() {}
