use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    #[layer(kernel_initializer = "glorot_unifrom")]
    hidden: Dense<4, 8, Relu>,
    out: Dense<8, 1, Linear>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<4>) -> Output<1> {
        self.out(self.hidden(x))
    }
}

fn main() {}
