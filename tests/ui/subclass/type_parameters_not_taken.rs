// Sizes may be parameters (`const H: usize`); types may not.
use kiln::prelude::*;

#[kiln::model]
pub struct Net<L> {
    hidden: L,
    out: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl<L> Net<L> {
    fn call(&self, x: Input<4>) -> Output<3> {
        self.out(self.hidden(x))
    }
}

fn main() {}
