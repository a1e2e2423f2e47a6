use kiln::prelude::*;

sequential! {
    #[weights("missing_tensor.safetensors")]
    pub struct Net: [4] {
        Dense(8, activation = relu),
        Dense(2),
    }
}

fn main() {
    let _ = Net::embedded();
}
