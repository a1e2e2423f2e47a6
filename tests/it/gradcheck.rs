//! Finite-difference gradient checks: Dense with every activation, the Activation layer, every
//! loss (softmax + cross-entropy fused, and from_logits), and whole generated models.

use kiln::prelude::*;
use kiln::testing::{check_layer, check_loss};
use kiln::{Activation, Dense, Layer, Linear};
use rand::{Rng, SeedableRng};

const TOL: f64 = 2e-3;

fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Inputs kept away from 0, where relu-like activations have a kink that central differences
/// straddle.
fn away_from_zero(n: usize, seed: u64) -> Vec<f32> {
    random(n, 0.1, 1.0, seed).into_iter().enumerate().map(|(i, v)| if i % 2 == 0 { v } else { -v }).collect()
}

fn dense<A: kiln::ActivationFn>() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut layer = Dense::<5, 4, A>::new(true, &mut rng);
    // A bias away from zero moves pre-activations off the kinks too.
    if let Some(b) = &mut layer.bias {
        b.value = vec![0.3, -0.2, 0.25, -0.35];
    }
    let x = away_from_zero(3 * 5, 2);
    if let Err(e) = check_layer(&mut layer, &[&x], 3, 32, TOL) {
        panic!("Dense<{}>:\n{e}", A::KIND.name());
    }
}

#[test]
fn dense_with_every_activation() {
    dense::<Linear>();
    dense::<kiln::Relu>();
    dense::<kiln::Sigmoid>();
    dense::<kiln::Tanh>();
    dense::<kiln::Softmax>();
    dense::<kiln::Gelu>();
    dense::<kiln::Elu>();
    dense::<kiln::Selu>();
    dense::<kiln::LeakyRelu>();
    dense::<kiln::Softplus>();
    dense::<kiln::Swish>();
    dense::<kiln::GeluApproximate>();
}

#[test]
fn dense_without_bias() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut layer = Dense::<6, 3, kiln::Tanh>::new(false, &mut rng);
    check_layer(&mut layer, &[&away_from_zero(4 * 6, 4)], 4, 32, TOL).unwrap();
}

fn activation<A: kiln::ActivationFn>() {
    let mut layer = Activation::<A, 4>::new();
    let x = away_from_zero(3 * 4, 5);
    if let Err(e) = check_layer(&mut layer, &[&x], 3, 0, TOL) {
        panic!("Activation<{}>:\n{e}", A::KIND.name());
    }
}

#[test]
fn activation_layer_with_every_activation() {
    activation::<Linear>();
    activation::<kiln::Relu>();
    activation::<kiln::Sigmoid>();
    activation::<kiln::Tanh>();
    activation::<kiln::Softmax>();
    activation::<kiln::Gelu>();
    activation::<kiln::Elu>();
    activation::<kiln::Selu>();
    activation::<kiln::LeakyRelu>();
    activation::<kiln::Softplus>();
    activation::<kiln::Swish>();
    activation::<kiln::GeluApproximate>();
}

#[test]
fn every_loss() {
    let (n, w) = (3, 4);
    let p = random(n * w, 0.05, 0.95, 6);
    let y = random(n * w, -1.0, 1.0, 7);
    // Huber with delta 0.5 has both quadratic and linear elements here.
    for loss in [Loss::MeanSquaredError, Loss::MeanAbsoluteError, Loss::Huber, Loss::huber(0.5)] {
        check_loss(&loss, &p, &y, n, w, false, TOL).unwrap();
    }
    let bin = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
    check_loss(&Loss::BinaryCrossentropy, &p, &bin, n, w, false, TOL).unwrap();
    let logits = random(n * w, -3.0, 3.0, 8);
    check_loss(&Loss::BinaryCrossentropy.with_from_logits(true), &logits, &bin, n, w, false, TOL).unwrap();

    let one_hot = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let labels = [1.0, 0.0, 3.0];
    for (loss, y) in [(Loss::CategoricalCrossentropy, &one_hot[..]), (Loss::SparseCategoricalCrossentropy, &labels[..])]
    {
        // On probabilities, on logits, and fused with a softmax.
        check_loss(&loss, &p, y, n, w, false, TOL).unwrap();
        check_loss(&loss.with_from_logits(true), &logits, y, n, w, false, TOL).unwrap();
        check_loss(&loss, &logits, y, n, w, true, TOL).unwrap();
    }
}

sequential! {
    /// Every activation and every layer kind in one model.
    struct Everything: [2, 3] {
        Reshape([3, 2]),
        Flatten,
        Dense(5, activation = tanh),
        Dense(5, activation = gelu, use_bias = false),
        Activation(swish),
        Dense(4, activation = elu),
        Dense(4, activation = selu),
        Dense(4, activation = softplus),
        Dense(4, activation = leaky_relu),
        Dense(4, activation = sigmoid),
        Reshape([2, 2]),
        Activation("softmax"),
    }
}

#[test]
fn whole_model_every_layer_and_activation() {
    let mut model = Everything::with_seed(4);
    let x = away_from_zero(3 * 6, 9);
    check_layer(&mut model, &[&x], 3, 8, TOL).unwrap();
}

#[test]
fn fused_softmax_cross_entropy_through_a_model() {
    // The gradient fit uses for softmax + cross-entropy: (p - y) / n at the logits, through the
    // whole model, against finite differences of the loss itself.
    sequential! {
        struct Clf: [4] { Dense(6, activation = relu), Dense(3, activation = softmax) }
    }
    let mut model = Clf::with_seed(11);
    let x = away_from_zero(2 * 4, 12);
    let y = [2.0f32, 0.0];
    let loss = Loss::SparseCategoricalCrossentropy;
    let mut stream = kiln::Stream::new(0);
    let mut forward = |m: &mut Clf, x: &[f32]| {
        m.forward(&[x], &mut kiln::Ctx::new(2, true, &mut stream));
        Layer::output(m).to_vec()
    };
    let mut value = |m: &mut Clf, x: &[f32]| loss.compute(&forward(m, x), &y, 2, 3, None, false) as f64;
    let p = {
        let mut s = kiln::Stream::new(0);
        model.forward(&[&x], &mut kiln::Ctx::new(2, true, &mut s));
        Layer::output(&model).to_vec()
    };
    let mut g = vec![0.0; 6];
    loss.compute(&p, &y, 2, 3, Some(&mut g), true);
    let mut s = kiln::Stream::new(0);
    let opts = kiln::BackwardOpts { input_grad: true, accumulate: false, fused_output: true };
    model.backward(&[&x], &g, &mut kiln::Ctx::new(2, true, &mut s), opts);
    let dx = model.input_grad(0).to_vec();
    for j in 0..x.len() {
        let mut xp = x.clone();
        xp[j] += 1e-3;
        let plus = value(&mut model, &xp);
        xp[j] -= 2e-3;
        let minus = value(&mut model, &xp);
        let numeric = (plus - minus) / 2e-3;
        assert!((dx[j] as f64 - numeric).abs() < 2e-3 * (1.0 + numeric.abs()), "x[{j}]: {} vs {numeric}", dx[j]);
    }
}

#[test]
fn leaky_relu_layer_with_keras_slope() {
    let mut layer = kiln::LeakyReLU::new(0.3);
    check_layer(&mut layer, &[&away_from_zero(3 * 5, 11)], 3, 0, TOL).unwrap();
    sequential! {
        struct Leaky: [2, 4] {
            Dense(4),
            LeakyReLU,
            Dense(3, activation = tanh),
            LeakyReLU(negative_slope = 0.05),
            Flatten,
            Dense(2, activation = softmax),
        }
    }
    let mut m = Leaky::with_seed(3);
    let s = m.summary_string();
    assert!(s.contains("leaky_re_lu (LeakyReLU)") && s.contains("leaky_re_lu_1 (LeakyReLU)"), "{s}");
    let x = away_from_zero(3 * 8, 12);
    kiln::testing::check_model(&mut m, &[&x], 3, 8, TOL).unwrap();
    // Keras' layer default (0.3) differs from its activation's (0.2), and kiln follows both.
    let mut one = Leaky::with_seed(3);
    let probe = [-1.0f32, 2.0];
    let mut s = kiln::Stream::new(0);
    let mut l = kiln::LeakyReLU::new(0.3);
    l.forward(&[&probe], &mut kiln::Ctx::new(1, false, &mut s));
    assert_eq!(l.output(), &[-0.3, 2.0]);
    assert_eq!(kiln::kernels::ActKind::LeakyRelu.f(-1.0), -0.2);
    let _ = one.predict(&kiln::ndarray::Array3::<f32>::zeros((1, 2, 4))).unwrap();
}
