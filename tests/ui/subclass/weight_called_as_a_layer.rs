use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    gamma: Weight<4, kiln::Ones>,
    head: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        self.head(self.gamma(x))
    }
}

fn main() {}
