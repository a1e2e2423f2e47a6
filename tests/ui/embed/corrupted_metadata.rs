use kiln::prelude::*;

// The file's metadata was changed after kiln saved it (`kiln.model` renamed by one byte).
sequential! {
    #[weights("corrupted_metadata.safetensors")]
    pub struct Tiny: [2] {
        Dense(1),
    }
}

fn main() {
    let _ = Tiny::embedded();
}
