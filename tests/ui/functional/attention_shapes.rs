use kiln::prelude::*;

functional! {
    pub struct Net {
        q = Input([10, 16]);
        v = Input([12, 16]);
        k = Input([8, 16]);
        a = MultiHeadAttention(num_heads = 4, key_dim = 8)(q, v, k);
        b = MultiHeadAttention(num_heads = 4, key_dim = 8, output_shape = 32)(q, v);
        r = Add()([q, b]);
        f = Flatten()(Concatenate()([a, r]));
        out = Dense(1)(f);
        Model([q, v, k], out)
    }
}

functional! {
    pub struct Flat {
        x = Input([16]);
        a = MultiHeadAttention(num_heads = 2, key_dim = 8)(x, x);
        out = Dense(1)(a);
        Model(x, out)
    }
}

fn main() {}
