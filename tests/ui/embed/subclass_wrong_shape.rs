use kiln::prelude::*;

sequential! {
    pub struct Encoder: [4] {
        Dense(8, activation = tanh),
    }
}

#[kiln::model]
#[weights("../../fixtures/embed/tower.safetensors")]
pub struct Tower {
    enc: Encoder,
    blocks: [Dense<8, 8, Relu>; 2],
    head: Dense<8, 4, Softmax>,
}

#[kiln::call]
impl Tower {
    fn call(&self, x: Input<4>) -> Output<4> {
        let h = self.enc(x);
        self.head(self.blocks[1](self.blocks[0](h)))
    }
}

fn main() {
    let _ = Tower::embedded();
}
