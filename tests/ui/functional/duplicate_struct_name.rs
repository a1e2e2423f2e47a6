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
        Dense(3),
    }
}

fn main() {
    let mut net = Net::new();
    net.compile("mse", "sgd", &[]).unwrap();
    net.summary();
}
