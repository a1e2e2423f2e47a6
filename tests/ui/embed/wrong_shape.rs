use kiln::prelude::*;

sequential! {
    #[weights("wrong_shape.safetensors")]
    pub struct Net: [4] {
        Dense(8, activation = relu),
        Dense(2),
    }
}

fn main() {
    let _ = Net::embedded();
}
