// Each added loss is logged under its name, so two of one name are refused.
use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    enc: Dense<8, 4>,
    dec: Dense<4, 8>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<8>) -> Output<8> {
        let z = self.enc(x);
        self.add_loss("penalty", sum(square(z), axis = 1));
        self.add_loss("penalty", sum(abs(z), axis = 1));
        self.dec(z)
    }
}

fn main() {}
