use kiln::prelude::*;

// Shape ops between values: each mistake one error at its op, naming the shapes.
functional! {
    pub struct Net {
        x = Input([4, 6]);
        h = Dense(6)(x);
        r = reshape(h, [5, -1]);
        g = gather(h, x);
        s = stack([h, Dense(2)(x)], axis = 1);
        Model(x, [r, g, s])
    }
}

fn main() {
    let _ = Net::new();
}
