use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense1: Dense<10, 64, Relu>,
    dense2: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<10>) -> Output<10> {
        let h = self.dense1(x);
        self.dense2(h / x)
    }
}

fn main() {}
