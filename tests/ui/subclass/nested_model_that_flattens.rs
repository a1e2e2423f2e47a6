use kiln::prelude::*;

sequential! {
    pub struct Features: [8, 8, 1] {
        Conv2D(4, 3, activation = relu),
        Flatten,
    }
}

#[kiln::model]
pub struct Net {
    features: Features,
    head: Dense<144, 2, Softmax>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<8, 8, 1>) -> Output<2> {
        let h = self.features(x);
        self.head(flatten(h))
    }
}

fn main() {}
