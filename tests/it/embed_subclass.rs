//! `#[weights(..)]` on a subclassed model: the file is checked against the fields when the model
//! compiles (a nested sequential model, an array of layers, a Dense) and `embedded()` returns
//! the model with exactly those weights. The fixture holds `Tower::with_seed(21)`'s weights;
//! a subclassed CNN embeds its window fields' and moving statistics' weights too.

use kiln::ndarray::Array2;
use kiln::prelude::*;

sequential! {
    pub struct Encoder: [4] {
        Dense(8, activation = tanh),
    }
}

#[kiln::model]
#[weights("../fixtures/embed/tower.safetensors")]
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

/// A subclassed CNN (window fields, batch normalisation's moving statistics) compiled with its
/// weights: `ConvNet::with_seed(5)`'s, each nudged by `0.01 · (i % 7)`.
#[kiln::model]
#[weights("../fixtures/embed/conv_net.safetensors")]
pub struct ConvNet {
    conv: kiln::Conv2D<1, 4, 3, Relu, kiln::Same>,
    bn: kiln::BatchNormalization<4>,
    pool: kiln::MaxPooling2D<2>,
    head: Dense<64, 3, Softmax>,
}

#[kiln::call]
impl ConvNet {
    fn call(&self, x: Input<8, 8, 1>) -> Output<3> {
        self.head(flatten(self.pool(self.bn(self.conv(x)))))
    }
}

#[test]
fn a_subclassed_cnn_embeds_its_weights() {
    let mut seeded = ConvNet::with_seed(5);
    seeded.visit_weights_mut(&mut |p| p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.01 * (i % 7) as f32));
    let mut embedded = ConvNet::embedded();
    let names: Vec<String> = embedded.weights().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"bn.moving_variance".to_string()), "{names:?}");
    let x = kiln::ndarray::Array4::from_shape_fn((2, 8, 8, 1), |(n, a, b, _)| ((n + a * 3 + b) % 5) as f32 / 5.0);
    assert_eq!(embedded.predict(&x).unwrap(), seeded.predict(&x).unwrap());
}
