use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense: Dense<4, 6, Relu>,
    head: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h = reshape(self.dense(x), [2, 4]);
        self.head(mean(h, axis = 1))
    }
}

fn main() {}
