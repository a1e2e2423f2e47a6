// `add_loss` takes one value per sample: a term left as a vector (not summed) is refused at the
// call, naming its shape.
use kiln::prelude::*;

#[kiln::model]
pub struct Vae {
    enc: Dense<8, 4>,
    dec: Dense<4, 8>,
}

#[kiln::call]
impl Vae {
    fn call(&self, x: Input<8>) -> Output<8> {
        let z = self.enc(x);
        self.add_loss("kl_loss", -0.5 * square(z));
        self.dec(z)
    }
}

fn main() {}
