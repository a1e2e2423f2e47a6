use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([4]);
        out = Dense(2)(x);
        Model(x, out)
    }
}

sequential! {
    pub struct Net: [4] {
        Dense(2),
    }
}

fn main() {
    let _ = Net::new();
}
