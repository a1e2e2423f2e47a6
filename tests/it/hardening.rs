//! Bad input gets a clear error, never a panic and never silent garbage: each test is named for
//! the mistake it makes.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::{BackwardOpts, Ctx, Init, Layer, Param, Shaped};
use rand::{Rng, SeedableRng};

sequential! {
    pub struct Clf: [6] {
        Dense(8, activation = tanh),
        Dense(3, activation = softmax),
    }
}

/// Identity forward that counts its training passes in a state weight, and a backward whose
/// input gradient is NaN: a finite loss with NaN gradients.
#[derive(Clone, Debug)]
pub struct Poison<const N: usize> {
    passes: Param,
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl<const N: usize> Init for Poison<N> {
    fn init(_: &mut kiln::StdRng) -> Self {
        Poison { passes: Param::state(&[1], 0.0), out: vec![], dx: vec![] }
    }
}

impl<const N: usize> Shaped for Poison<N> {
    const IN: usize = N;
    const OUT: usize = N;
    const KIND: &'static str = "Poison";
    const PARAMS: usize = 1;
}

impl<const N: usize> Layer for Poison<N> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.out.clear();
        self.out.extend_from_slice(xs[0]);
        if ctx.training {
            self.passes.value[0] += 1.0;
        }
    }
    fn backward(&mut self, _: &[&[f32]], dy: &[f32], _: &mut Ctx<'_>, _: BackwardOpts) {
        self.dx.clear();
        self.dx.resize(dy.len(), f32::NAN);
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
    pub struct Poisoned: [6] {
        Dense(8, activation = tanh),
        Custom(Poison<8>),
        Dense(3, activation = softmax),
    }
}

fn data(n: usize) -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    (Array2::from_shape_fn((n, 6), |_| rng.random_range(-1.0..1.0)), Array1::from_shape_fn(n, |i| (i % 3) as f32))
}

fn quiet(epochs: usize) -> Fit<'static> {
    Fit { epochs, verbose: 0, ..Fit::default() }
}

fn values<M: Model>(m: &M) -> Vec<Vec<f32>> {
    m.weights().into_iter().map(|(_, p)| p.value).collect()
}

#[test]
fn an_error_returned_from_main_prints_its_sentence() {
    let mut m = Clf::new();
    let err = m.predict(&Array2::<f32>::zeros((4, 5))).unwrap_err();
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(format!("{err:?}").starts_with("x (input of Clf): expected shape [n, 6], got [4, 5]"), "{err:?}");
}

#[test]
fn a_misspelt_optimizer_loss_or_metric_gets_a_suggestion() {
    let mut m = Clf::new();
    let e = m.compile("mse", "adamm", &[]).unwrap_err().to_string();
    assert!(e.contains("(did you mean `adam`?)") && e.contains("rmsprop"), "{e}");
    let e = m.compile("sparse_categorical_crosentropy", "adam", &[]).unwrap_err().to_string();
    assert!(e.contains("did you mean `sparse_categorical_crossentropy`"), "{e}");
    let e = m.compile("mse", "adam", &["acuracy"]).unwrap_err().to_string();
    assert!(e.contains("did you mean `accuracy`"), "{e}");
}

#[test]
fn class_ids_given_to_categorical_crossentropy_get_the_fix() {
    let (x, y) = data(12);
    let mut m = Clf::new();
    m.compile("categorical_crossentropy", "adam", &[]).unwrap();
    let e = m.fit(&x, &y, quiet(1)).unwrap_err().to_string();
    assert!(e.contains("use sparse_categorical_crossentropy") && e.contains("one_hot"), "{e}");
    let e = m.fit(&x, &y.clone().insert_axis(kiln::ndarray::Axis(1)), quiet(1)).unwrap_err().to_string();
    assert!(e.contains("use sparse_categorical_crossentropy"), "{e}");
}

#[test]
fn clipping_bounds_that_make_no_sense_are_errors_not_panics() {
    let (x, y) = data(12);
    let mut m = Clf::new();
    let (_, mut g) = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    let before = g.clone();
    assert!(g.clip_by_value(1.0, -1.0).unwrap_err().to_string().contains("min <= max"));
    assert!(g.clip_by_value(f32::NAN, 1.0).is_err());
    assert!(g.clip_by_global_norm(-1.0).unwrap_err().to_string().contains(">= 0"));
    assert!(g.clip_by_norm(f32::INFINITY).is_err());
    assert_eq!(g, before, "a refused clip changes nothing");
    g.clip_by_value(-1e-3, 1e-3).unwrap();
    assert!(g.iter().all(|(_, v)| v.iter().all(|x| x.abs() <= 1e-3)));
}

#[test]
fn hyperparameters_outside_their_range_are_refused_naming_them() {
    let mut m = Clf::new();
    fn with<O: Optimizer + Default + 'static>(f: impl FnOnce(&mut O)) -> Box<dyn Optimizer> {
        let mut o = O::default();
        f(&mut o);
        Box::new(o)
    }
    let cases: Vec<(Box<dyn Optimizer>, &str)> = vec![
        (Box::new(Sgd::new(-0.01)), "sgd's learning_rate must be finite and >= 0, got -0.01"),
        (Box::new(Sgd::new(f32::NAN)), "learning_rate"),
        (with(|o: &mut Sgd| o.momentum = 1.0), "sgd's momentum must be in [0, 1), got 1"),
        (with(|o: &mut Adam| o.beta_1 = 1.0), "adam's beta_1 must be in [0, 1)"),
        (with(|o: &mut Adam| o.beta_2 = -0.1), "beta_2"),
        (with(|o: &mut Adam| o.epsilon = 0.0), "adam's epsilon must be finite and > 0"),
        (Box::new(AdamW::new(0.001, -1.0)), "adamw's weight_decay must be finite and >= 0"),
        (Box::new(AdamW::new(f32::INFINITY, 0.004)), "adamw's learning_rate"),
        (with(|o: &mut RmsProp| o.rho = 1.5), "rmsprop's rho must be in [0, 1)"),
        (with(|o: &mut Adagrad| o.epsilon = f32::NAN), "adagrad's epsilon"),
    ];
    for (opt, want) in cases {
        let e = m.compile("mse", opt, &[]).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    // A custom loop checks too, at each step.
    let (x, y) = data(12);
    let (_, g) = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    let before = values(&m);
    assert!(Sgd::new(-1.0).apply(&mut m, &g).is_err());
    assert_eq!(values(&m), before);
}

#[test]
fn nan_gradients_stop_fit_before_the_step_and_change_nothing() {
    let (x, y) = data(24);
    let mut m = Poisoned::with_seed(1);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let before = values(&m);
    let err = m.fit(&x, &y, quiet(2)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("the gradient of dense.kernel became NaN at epoch 1, batch 0"), "{text}");
    assert_eq!(values(&m), before, "weights and the state weight are those before the step");
    assert_eq!(m.train_state().optimizer().unwrap().iterations(), 0, "the optimizer took no step");
    let before = values(&m);
    assert!(m.train_on_batch(&x, &y).is_err());
    assert_eq!(values(&m), before);
}

sequential! {
    pub struct Reg: [6] {
        Dense(1),
    }
}

#[test]
fn a_diverging_loss_stops_fit_with_the_finished_epochs() {
    let (x, y) = data(24);
    let opts = Fit { batch_size: 24, shuffle: false, ..quiet(5) };
    let mut m = Reg::with_seed(2);
    m.compile("mse", Sgd::new(1e30), &[]).unwrap();
    let err = m.fit(&x, &y, opts.clone()).unwrap_err();
    let kiln::Error::NonFiniteLoss { epoch, history, .. } = &err else { panic!("{err}") };
    assert!(*epoch >= 2, "{err}");
    assert_eq!(history.epoch.len(), epoch - 1, "the history holds the finished epochs");
    assert!(values(&m).iter().flatten().all(|v| v.is_finite()), "no NaN written into the weights");
    // Those weights are the ones after the last finished epoch.
    let mut again = Reg::with_seed(2);
    again.compile("mse", Sgd::new(1e30), &[]).unwrap();
    again.fit(&x, &y, Fit { epochs: epoch - 1, ..opts }).unwrap();
    assert_eq!(values(&m), values(&again));
}

#[test]
fn validation_split_holds_out_the_rows_keras_does() {
    // n - floor(n * (1 - split)), as Keras 3 computes it in Python floats.
    let keras = [
        (400, 0.1, 40),
        (400, 0.2, 80),
        (400, 0.33, 132),
        (1000, 0.2, 200),
        (1000, 0.33, 331),
        (1797, 0.2, 360),
        (1797, 0.5, 899),
        (10, 0.3, 3),
        (10, 0.25, 3),
        (7, 0.05, 1),
        (333, 0.15, 50),
        (64, 0.2, 13),
        (64, 0.1, 7),
    ];
    for (n, split, rows) in keras {
        assert_eq!(kiln::validation_rows(n, split), rows, "{n} rows, split {split}");
    }
    // And fit uses it: 400 rows at 0.2 train on 320 (10 batches of 32).
    let (x, y) = data(400);
    let mut m = Clf::new();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let h = m.fit(&x, &y, Fit { validation_split: 0.2, ..quiet(1) }).unwrap();
    let held_out = m.evaluate(&x.slice(kiln::ndarray::s![320.., ..]), &y.slice(kiln::ndarray::s![320..])).unwrap();
    assert_eq!(h.last("val_loss").unwrap(), held_out["loss"]);
}

#[test]
fn views_of_any_layout_predict_the_same_as_contiguous_arrays() {
    let (x, _) = data(50);
    let mut m = Clf::new();
    let want = m.predict(&x).unwrap();
    let transposed = x.t().to_owned();
    assert_eq!(m.predict(&transposed.t()).unwrap(), want);
    let mut doubled = Array2::<f32>::zeros((100, 6));
    doubled.slice_mut(kiln::ndarray::s![..;2, ..]).assign(&x);
    assert_eq!(m.predict(&doubled.slice(kiln::ndarray::s![..;2, ..])).unwrap(), want);
    let mut wide = Array2::<f32>::zeros((50, 12));
    wide.slice_mut(kiln::ndarray::s![.., ..;2]).assign(&x);
    assert_eq!(m.predict(&wide.slice(kiln::ndarray::s![.., ..;2])).unwrap(), want);
}

#[test]
fn evaluate_and_predict_take_keras_batch_size_and_refuse_zero() {
    let (x, y) = data(50);
    let mut m = Clf::new();
    m.compile_with(Compile::default().loss("sparse_categorical_crossentropy")).unwrap();
    assert_eq!(m.train_state().optimizer().unwrap().name(), "rmsprop", "Keras' default optimizer");
    let a = m.evaluate(&x, &y).unwrap();
    let b = m.evaluate_with(&x, &y, kiln::Evaluate { batch_size: 7, verbose: 0 }).unwrap();
    assert!((a["loss"] - b["loss"]).abs() < 1e-6);
    let e = m.evaluate_with(&x, &y, kiln::Evaluate { batch_size: 0, verbose: 0 }).unwrap_err().to_string();
    assert!(e.contains("batch_size"), "{e}");
    let p = m.predict_with(&x, kiln::Predict { batch_size: 3, verbose: 0 }).unwrap();
    let worst = p.iter().zip(&m.predict(&x).unwrap()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-6, "predictions agree across batch sizes to rounding ({worst})");
    assert!(m.predict_with(&x, kiln::Predict { batch_size: 0, verbose: 0 }).is_err());
    // A missing loss is reported when compiling.
    let e = Clf::new().compile_with(Compile::default()).unwrap_err().to_string();
    assert!(e.contains("has no loss"), "{e}");
}

#[test]
fn weights_by_name_without_a_file() {
    let mut m = Clf::with_seed(3);
    let k = m.get_weight("dense.kernel").unwrap();
    assert_eq!(k.shape(), &[6, 8]);
    let twice = k.mapv(|v| 2.0 * v);
    m.set_weight("dense.kernel", &twice).unwrap();
    assert_eq!(m.get_weight("dense.kernel").unwrap(), twice);
    let e = m.set_weight("dense.kernal", &twice).unwrap_err().to_string();
    assert!(e.contains("did you mean `dense.kernel`") && e.contains("dense_1.bias"), "{e}");
    let e = m.set_weight("dense.kernel", &Array2::<f32>::zeros((8, 6))).unwrap_err().to_string();
    assert!(e.contains("expected shape [6, 8], got [8, 6]"), "{e}");
    let e = m.set_weight("dense.bias", &kiln::ndarray::Array1::from_elem(8, f32::NAN)).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    assert_eq!(m.get_weight("dense.kernel").unwrap(), twice, "refused values change nothing");
    let layer = m.get_layer("dense_1").unwrap();
    assert_eq!((layer.kind, layer.params, layer.output_shape), ("Dense", 27, &[3usize][..]));
    assert!(m.get_layer("dense_9").is_none());
}
