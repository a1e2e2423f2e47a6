//! The training context a layer receives: the model's seeded random stream (drawn only in
//! training, saved in checkpoints so a resumed run is bit-identical) and weights whose role is
//! non-trainable state (updated by the layer alone, never by an optimizer or weight decay, never
//! unfrozen, counted as non-trainable, saved and loaded).

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::{BackwardOpts, Ctx, Init, Layer, Param, Role, Shaped};
use rand::{Rng, SeedableRng};

/// Adds Gaussian noise (σ = 0.1) in training, from the model's stream, and counts its training
/// passes in a state weight.
#[derive(Clone, Debug)]
pub struct Noise<const N: usize> {
    passes: Param,
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl<const N: usize> Init for Noise<N> {
    fn init(_: &mut kiln::StdRng) -> Self {
        Noise { passes: Param::state(&[1], 0.0), out: vec![], dx: vec![] }
    }
}

impl<const N: usize> Shaped for Noise<N> {
    const IN: usize = N;
    const OUT: usize = N;
    const KIND: &'static str = "Noise";
    const PARAMS: usize = 1;
}

impl<const N: usize> Layer for Noise<N> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.out.clear();
        self.out.extend_from_slice(xs[0]);
        if ctx.training {
            self.out.iter_mut().for_each(|v| *v += 0.1 * ctx.rng.normal());
            self.passes.value[0] += 1.0;
        }
    }
    fn backward(&mut self, _: &[&[f32]], dy: &[f32], _: &mut Ctx<'_>, _: BackwardOpts) {
        self.dx.clear();
        self.dx.extend_from_slice(dy);
    }
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _: usize) -> &[f32] {
        &self.dx
    }
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("passes", &self.passes);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.passes);
    }
}

sequential! {
    pub struct Noisy: [8] {
        Dense(8, activation = tanh),
        Custom(Noise<8>),
        Dense(2, activation = softmax),
    }
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x = Array2::from_shape_fn((64, 8), |_| rng.random_range(-1.0..1.0));
    let y = Array1::from_shape_fn(64, |i| (x[[i, 0]] > 0.0) as u8 as f32);
    (x, y)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-context-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn opts(epochs: usize) -> Fit<'static> {
    Fit { epochs, batch_size: 16, verbose: 0, ..Fit::default() }
}

fn values<M: Model>(m: &M) -> Vec<Vec<f32>> {
    m.weights().into_iter().map(|(_, p)| p.value).collect()
}

#[test]
fn a_run_resumed_from_a_checkpoint_draws_the_same_noise() {
    let (x, y) = data();
    let mut straight = Noisy::with_seed(3);
    straight.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    straight.fit(&x, &y, opts(4)).unwrap();

    let path = scratch("noisy.safetensors");
    let mut first = Noisy::with_seed(3);
    first.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    first.fit(&x, &y, opts(2)).unwrap();
    first.save_checkpoint(&path).unwrap();
    let mut resumed = Noisy::with_seed(3);
    resumed.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    resumed.load_checkpoint(&path).unwrap();
    resumed.fit(&x, &y, opts(2)).unwrap();
    assert_eq!(values(&resumed), values(&straight), "bit-identical after resuming");

    // Without the stream's position the noise repeats the first epochs' draws and the runs part.
    let mut restarted = Noisy::with_seed(3);
    restarted.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    restarted.load_weights(&path).unwrap();
    restarted.fit(&x, &y, opts(2)).unwrap();
    assert_ne!(values(&restarted), values(&straight));
}

#[test]
fn inference_draws_nothing_and_training_draws_from_the_seed() {
    let (x, _) = data();
    let mut m = Noisy::with_seed(3);
    let (a, b) = (m.predict(&x).unwrap(), m.predict(&x).unwrap());
    assert_eq!(a, b);
    assert_eq!(m.weights()[2].1.value, vec![0.0], "no training pass yet");
}

#[test]
fn state_weights_are_left_to_their_layer() {
    let (x, y) = data();
    let mut m = Noisy::with_seed(5);
    // AdamW decays every weight it updates; it must not touch the pass count.
    m.compile("sparse_categorical_crossentropy", AdamW::new(0.01, 0.5), &[]).unwrap();
    m.fit(&x, &y, opts(3)).unwrap();
    let (name, passes) = &m.weights()[2];
    assert_eq!(name, "noise.passes");
    assert_eq!(passes.role(), Role::State);
    assert_eq!(passes.value, vec![12.0], "3 epochs of 4 batches, counted by the layer alone");
    // Unfreezing the model does not make state trainable.
    m.visit_weights_mut(&mut |p| p.set_trainable(true));
    assert_eq!(m.weights()[2].1.role(), Role::State);
    let summary = m.summary_string();
    assert!(summary.contains("Non-trainable params: 1 (4.00 B)"), "{summary}");
    // Saved and loaded with the other weights.
    let path = scratch("w.safetensors");
    m.save_weights(&path).unwrap();
    let mut other = Noisy::with_seed(6);
    other.load_weights(&path).unwrap();
    assert_eq!(other.weights()[2].1.value, vec![12.0]);
}

#[test]
fn custom_loops_skip_state_weights() {
    let (x, y) = data();
    let mut m = Noisy::with_seed(7);
    let mut opt = Adam::default();
    let (_, grads) = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    assert!(grads.get("noise.passes").is_none(), "state has no gradient");
    assert!(grads.get("dense.kernel").is_some());
    opt.apply(&mut m, &grads).unwrap();
    assert_eq!(m.weights()[2].1.value, vec![1.0], "one training pass, counted by the layer");
}

sequential! {
    pub struct WithDropout: [8] {
        Dense(16, activation = relu),
        Dropout(0.5),
        Dense(2, activation = softmax),
    }
}

#[test]
fn a_run_with_dropout_resumes_bit_identically() {
    let (x, y) = data();
    let mut straight = WithDropout::with_seed(8);
    straight.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    straight.fit(&x, &y, opts(4)).unwrap();
    let path = scratch("dropout.safetensors");
    let mut first = WithDropout::with_seed(8);
    first.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    first.fit(&x, &y, opts(2)).unwrap();
    first.save_checkpoint(&path).unwrap();
    let mut resumed = WithDropout::with_seed(123);
    resumed.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    resumed.load_checkpoint(&path).unwrap();
    resumed.fit(&x, &y, opts(2)).unwrap();
    assert_eq!(values(&resumed), values(&straight));
    // Dropout is active in training only: two predictions agree.
    assert_eq!(resumed.predict(&x).unwrap(), resumed.predict(&x).unwrap());
}
