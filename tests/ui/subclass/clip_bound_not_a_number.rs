use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h = clip(x, lo, 1.0);
        self.dense(h)
    }
}

fn main() {}
