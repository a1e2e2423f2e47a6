use kiln::prelude::*;

sequential! {
    #[weights("no_such_file.safetensors")]
    pub struct Net: [4] {
        Dense(2),
    }
}

fn main() {}
