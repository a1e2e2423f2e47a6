// A budget on something kiln does not measure, and a size it cannot read.
use kiln::prelude::*;

sequential! {
    #[budget(disk = "1M")]
    pub struct A: [4] {
        Dense(2),
    }
}

sequential! {
    #[budget(ram = "lots")]
    pub struct B: [4] {
        Dense(2),
    }
}

fn main() {}
