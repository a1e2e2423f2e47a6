use kiln::prelude::*;

// A model where another type is expected: rustc names the model as the user wrote it.
sequential! {
    pub struct Net: [4] {
        Dense(3),
    }
}

fn takes_a_number(_: u32) {}

fn main() {
    takes_a_number(Net::new());
}
