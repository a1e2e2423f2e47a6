//! `#[weights(..)]` on a subclassed model: the file is checked against the fields when the model
//! compiles (a nested sequential model, an array of layers, a Dense) and `embedded()` returns
//! the model with exactly those weights. The fixture holds `Tower::with_seed(21)`'s weights.

use kiln::ndarray::Array2;
use kiln::prelude::*;

sequential! {
    pub struct Encoder: [4] {
        Dense(8, activation = tanh),
    }
}

#[kiln::model]
#[weights("fixtures/embed/tower.safetensors")]
pub struct Tower {
    enc: Encoder,
    blocks: [Dense<8, 8, Relu>; 2],
    head: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl Tower {
    fn call(&self, x: Input<4>) -> Output<3> {
        let h = self.enc(x);
        let h = self.blocks[1](self.blocks[0](h)) + h;
        self.head(h)
    }
}

#[test]
fn embedded_weights_are_the_saved_ones() {
    let (mut embedded, mut seeded) = (Tower::embedded(), Tower::with_seed(21));
    assert_eq!(embedded.weights().len(), 8);
    for ((n, a), (m, b)) in embedded.weights().into_iter().zip(seeded.weights()) {
        assert_eq!(n, m);
        assert_eq!(a.value, b.value, "{n}");
    }
    let x = Array2::from_shape_fn((5, 4), |(i, j)| (i as f32 - j as f32) / 4.0);
    assert_eq!(embedded.predict(&x).unwrap(), seeded.predict(&x).unwrap());
    // A freshly seeded model differs: the weights really come from the file.
    assert_ne!(Tower::new().weights()[0].1.value, embedded.weights()[0].1.value);
}
