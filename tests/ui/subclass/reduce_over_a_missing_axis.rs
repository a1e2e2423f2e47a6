use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    proj: Dense<4, 8, Relu>,
    head: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<3, 4>) -> Output<2> {
        let h = self.proj(x);
        self.head(sum(h, axis = 3))
    }
}

fn main() {}
