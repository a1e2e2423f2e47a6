//! Keras' `clipnorm`, `global_clipnorm` and `clipvalue` on any optimizer: one SGD step (learning
//! rate 1) moves each weight by exactly the clipped gradient, in `fit` and in a custom loop.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

sequential! {
    pub struct Net: [5] {
        Dense(6, activation = tanh),
        Dense(3, activation = softmax),
    }
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    (Array2::from_shape_fn((16, 5), |_| rng.random_range(-2.0..2.0)), Array1::from_shape_fn(16, |i| (i % 3) as f32))
}

fn values(m: &Net) -> Vec<Vec<f32>> {
    m.weights().into_iter().map(|(_, p)| p.value).collect()
}

/// The step `train_on_batch` takes with `opt`, against the gradient clipped by `clip`.
fn one_step(opt: impl Optimizer + 'static, clip: impl Fn(&mut Gradients)) {
    let (x, y) = data();
    let mut m = Net::with_seed(7);
    let (_, mut g) = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    clip(&mut g);
    let before = values(&m);
    m.compile("sparse_categorical_crossentropy", opt, &[]).unwrap();
    m.train_on_batch(&x, &y).unwrap();
    for ((b, a), (name, g)) in before.iter().zip(values(&m)).zip(g.iter()) {
        for ((b, a), g) in b.iter().zip(&a).zip(g) {
            assert!((b - a - g).abs() < 1e-6, "{name}: moved {} for a clipped gradient {g}", b - a);
        }
    }
}

#[test]
fn clipnorm_global_clipnorm_and_clipvalue() {
    one_step(Sgd::new(1.0).clipnorm(0.05), |g| g.clip_by_norm(0.05).unwrap());
    one_step(Sgd::new(1.0).global_clipnorm(0.05), |g| g.clip_by_global_norm(0.05).unwrap());
    one_step(Sgd::new(1.0).clipvalue(0.01), |g| g.clip_by_value(-0.01, 0.01).unwrap());
    // Large bounds change nothing.
    one_step(Sgd::new(1.0).clipnorm(1e6).clipvalue(1e6), |_| {});
}

#[test]
fn clipping_in_a_custom_loop_and_bad_bounds() {
    let (x, y) = data();
    let mut m = Net::with_seed(7);
    let (_, g) = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    let mut expected = g.clone();
    expected.clip_by_value(-0.01, 0.01).unwrap();
    let before = values(&m);
    Sgd::new(1.0).clipvalue(0.01).apply(&mut m, &g).unwrap();
    for ((b, a), (_, e)) in before.iter().zip(values(&m)).zip(expected.iter()) {
        for ((b, a), e) in b.iter().zip(&a).zip(e) {
            assert!((b - a - e).abs() < 1e-6);
        }
    }
    let mut m = Net::new();
    let e = m.compile("mse", Adam::default().clipnorm(1.0).global_clipnorm(1.0), &[]).unwrap_err().to_string();
    assert!(e.contains("only one of clipnorm and global_clipnorm"), "{e}");
    let e = m.compile("mse", Adam::default().clipvalue(-1.0), &[]).unwrap_err().to_string();
    assert!(e.contains("clipvalue") && e.contains("> 0"), "{e}");
}
