use kiln::prelude::*;

// squeeze removes an axis of extent 1; this one has 4 (the Dense keeps the 4 steps).
functional! {
    pub struct Net {
        x = Input([4, 6]);
        h = Dense(3)(x);
        s = squeeze(h, axis = 1);
        Model(x, s)
    }
}

fn main() {
    let _ = Net::new();
}
