use kiln::prelude::*;

#[kiln::model]
#[weights("../../fixtures/embed/tower.safetensors")]
pub struct Small {
    head: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl Small {
    fn call(&self, x: Input<8>) -> Output<3> {
        self.head(x)
    }
}

fn main() {
    let _ = Small::embedded();
}
