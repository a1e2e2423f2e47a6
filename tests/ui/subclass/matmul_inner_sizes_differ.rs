use kiln::prelude::*;

#[kiln::model]
pub struct MyModel {
    q: Dense<4, 8>,
    k: Dense<4, 6>,
    head: Dense<3, 2, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<3, 4>) -> Output<2> {
        let scores = matmul(self.q(x), self.k(x), transpose_b = true);
        self.head(mean(scores, axis = 1))
    }
}

fn main() {}
