use kiln::prelude::*;

// transpose takes Keras' axes, a permutation starting with the batch's 0.
functional! {
    pub struct Net {
        x = Input([4, 6]);
        h = Dense(6)(x);
        t = transpose(h, [0, 1, 1]);
        Model(x, t)
    }
}

fn main() {
    let _ = Net::new();
}
