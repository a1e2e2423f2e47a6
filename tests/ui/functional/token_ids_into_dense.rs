use kiln::prelude::*;

functional! {
    pub struct Net {
        tokens = Input([20], dtype = i32);
        h = Dense(8)(tokens);
        out = Dense(1, activation = sigmoid)(h);
        Model(tokens, out)
    }
}

fn main() {}
