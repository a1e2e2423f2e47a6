//! A layer written outside kiln (`examples/layers/scale.rs`) in all three model styles: its
//! gradient checked alone and inside each model, its shape checked when the model compiles (see
//! `tests/ui/sequential/custom_layer_wrong_shape.rs`), its weights in the summary and the saved
//! file, and each model trains.

#[path = "../../examples/layers/scale.rs"]
mod scale;

use kiln::ndarray::{Array1, Array2, Array3};
use kiln::prelude::*;
use kiln::testing::{check_layer, check_model};
use rand::{Rng, SeedableRng};
use scale::Scale;

sequential! {
    pub struct SeqScaled: [4, 16] {
        Custom(Scale<16>),
        Dense(8, activation = tanh),
        Flatten,
        Dense(3, activation = softmax),
    }
}

functional! {
    pub struct FuncScaled {
        x = Input([4, 16]);
        shared = Custom(Scale<8>);
        h = Dense(8, activation = tanh)(x);
        a = shared(h);
        b = shared(Dense(8, activation = sigmoid)(a));
        out = Dense(3, activation = softmax)(Flatten()(Add()([a, b])));
        Model(x, out)
    }
}

#[kiln::model]
pub struct SubScaled {
    scale: Scale<10>,
    dense: Dense<10, 3, Softmax>,
}

#[kiln::call]
impl SubScaled {
    fn call(&self, x: Input<10>) -> Output<3> {
        self.dense(self.scale(x))
    }
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn labels(n: usize) -> Array1<f32> {
    Array1::from_shape_fn(n, |i| (i % 3) as f32)
}

/// Moves γ off its initial ones, so a wrong gradient cannot hide behind a symmetric start.
fn perturb<M: Model>(m: &mut M) {
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 5) as f32 - 0.2);
        }
    });
}

#[test]
fn the_layer_alone_passes_the_gradient_check_on_a_sequence() {
    let mut layer = <Scale<4> as kiln::Init>::init(&mut rand::rngs::StdRng::seed_from_u64(0));
    layer.gamma.value = vec![0.5, -1.5, 2.0, 0.25];
    check_layer(&mut layer, &[&random(3 * 2 * 4, 1)], 3, 8, 2e-3).unwrap();
}

#[test]
fn sequential_with_a_custom_layer() {
    let mut m = SeqScaled::with_seed(1);
    perturb(&mut m);
    let x = random(2 * 64, 2);
    check_model(&mut m, &[&x], 2, 16, 3e-3).unwrap();
    let summary = m.summary_string();
    assert!(summary.contains("scale (Scale)"), "{summary}");
    assert!(summary.contains("(None, 4, 16)"), "{summary}");
    assert_eq!(m.weights()[0].0, "scale.gamma");
    assert_eq!(m.count_params(), 16 + (16 * 8 + 8) + (32 * 3 + 3));
    let x = Array3::from_shape_vec((60, 4, 16), random(60 * 64, 3)).unwrap();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h = m.fit(&x, &labels(60), Fit { epochs: 5, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.last("loss").unwrap() < h.get("loss").unwrap()[0]);
}

#[test]
fn functional_with_a_shared_custom_layer() {
    let mut m = FuncScaled::with_seed(2);
    perturb(&mut m);
    let x = random(3 * 64, 4);
    check_model(&mut m, &[&x], 3, 16, 3e-3).unwrap();
    let x = Array3::from_shape_vec((30, 4, 16), random(30 * 64, 5)).unwrap();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let h = m.fit(&x, &labels(30), Fit { epochs: 5, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.last("loss").unwrap() < h.get("loss").unwrap()[0]);
}

#[test]
fn subclass_with_a_custom_field() {
    let mut m = SubScaled::with_seed(3);
    perturb(&mut m);
    let x = random(3 * 10, 6);
    check_model(&mut m, &[&x], 3, 16, 3e-3).unwrap();
    assert!(m.summary_string().contains("scale (Scale)"), "{}", m.summary_string());
    let x = Array2::from_shape_vec((30, 10), random(300, 7)).unwrap();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let h = m.fit(&x, &labels(30), Fit { epochs: 5, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.last("loss").unwrap() < h.get("loss").unwrap()[0]);
}
