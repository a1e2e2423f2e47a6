use kiln::prelude::*;

// A size parameter is a size itself: flattening [H, 2] would need a type holding 2 * H.
sequential! {
    pub struct Tower<const H: usize>: [4] {
        Dense(H),
        Reshape([H, 1]),
        Dense(2),
        Flatten,
        Dense(3),
    }
}

fn main() {
    let _ = Tower::<8>::new();
}
