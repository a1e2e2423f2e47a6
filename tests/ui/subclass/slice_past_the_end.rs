use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense: Dense<4, 6, Relu>,
    head: Dense<3, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h = self.dense(x);
        self.head(slice(h, axis = -1, start = 4, end = 7))
    }
}

fn main() {}
