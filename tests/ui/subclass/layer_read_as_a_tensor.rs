use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense: Dense<4, 4, Relu>,
    head: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        self.head(x * self.dense)
    }
}

fn main() {}
