use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    conv: kiln::Conv2D<1, 4, 5, Relu>,
    head: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<3, 3, 1>) -> Output<2> {
        let h = self.conv(x);
        self.head(flatten(h))
    }
}

fn main() {}
