use kiln::prelude::*;

// Keras' attention_mask is [query steps, value steps] per sample.
functional! {
    pub struct WrongShape {
        x = Input([5, 4]);
        m = Input([5, 4]);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(x, x, attention_mask = m);
        Model([x, m], a)
    }
}

// Only MultiHeadAttention takes one.
functional! {
    pub struct NotAttention {
        x = Input([5, 4]);
        m = Input([5, 5]);
        d = Dense(3)(x, attention_mask = m);
        Model([x, m], d)
    }
}

// A shared layer takes one in every call or in none.
functional! {
    pub struct Sometimes {
        x = Input([5, 4]);
        m = Input([5, 5]);
        mha = MultiHeadAttention(num_heads = 2, key_dim = 3);
        a = mha(x, x, attention_mask = m);
        b = mha(x, x);
        s = Add()([a, b]);
        Model([x, m], s)
    }
}

// Keras' other call arguments are not taken.
functional! {
    pub struct OtherKeyword {
        x = Input([5, 4]);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(x, x, return_attention_scores = true);
        Model(x, a)
    }
}

fn main() {}
