use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    blocks: [Dense<4, 4, Relu>; 2],
    head: Dense<4, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<4>) -> Output<2> {
        let mut h = x;
        for block in &self.blocks {
            h = block(h);
        }
        self.head(h)
    }
}

fn main() {}
