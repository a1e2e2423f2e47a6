use kiln::prelude::*;
use kiln::Matrix;

// `matmul(x, self.w)` multiplies by a `Matrix` field; a Dense layer is called, not multiplied by.
#[kiln::model]
pub struct Net {
    w: Matrix<4, 3>,
    d: Dense<4, 3>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<4>) -> Output<3> {
        matmul(x, self.d) + self.w
    }
}

fn main() {
    let _ = Net::new();
}
