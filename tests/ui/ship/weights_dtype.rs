// A weights precision kiln does not embed.
use kiln::prelude::*;

sequential! {
    #[weights("../embed/wrong_shape.safetensors", dtype = int4)]
    pub struct Net: [4] {
        Dense(2),
    }
}

fn main() {}
