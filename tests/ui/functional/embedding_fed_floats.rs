use kiln::prelude::*;

functional! {
    pub struct Net {
        tokens = Input([20]);
        e = Embedding(1000, 8)(tokens);
        h = GRU(8)(e);
        out = Dense(1, activation = sigmoid)(h);
        Model(tokens, out)
    }
}

fn main() {}
