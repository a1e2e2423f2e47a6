use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    dense1: Dense<10, 10, Relu>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<10>) -> Output<10> {
        let h = self.dense1(x);
        if h.len() > 3 { h } else { x }
    }
}

fn main() {}
