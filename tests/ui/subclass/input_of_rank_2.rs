use kiln::prelude::*;

#[kiln::model]
pub struct Steps {
    dense: Dense<10, 8, Relu>,
}

#[kiln::call]
impl Steps {
    fn call(&self, x: Input<4, 16>) -> Output<4, 8> {
        self.dense(x)
    }
}

fn main() {
    let mut m = Steps::new();
    m.compile("mse", "sgd", &[]).unwrap();
}
