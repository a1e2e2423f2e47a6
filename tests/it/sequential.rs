//! The Sequential model end to end through the public API: compile by name and by value, fit,
//! evaluate, predict, summary, reproducibility, and every bad input as an error.

use kiln::Layer;
use kiln::ndarray::{Array1, Array2, Array4, array};
use kiln::prelude::*;

sequential! {
    /// The Keras tutorial's regression.
    pub struct Regressor: [1] {
        Dense(64),
        Dense(1),
    }
}

sequential! {
    /// A digits-shaped classifier.
    pub struct Digits: [8, 8, 1] {
        Flatten,
        Dense(16, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn regression(n: usize) -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f32 / n as f32);
    let y = x.mapv(|v| 2.0 * v - 1.0);
    (x, y)
}

fn images(n: usize) -> (Array4<f32>, Array1<f32>) {
    let x = Array4::from_shape_fn((n, 8, 8, 1), |(i, r, c, _)| ((i * 7 + r * 3 + c) % 17) as f32 / 16.0);
    let y = Array1::from_shape_fn(n, |i| (i % 10) as f32);
    (x, y)
}

fn quiet() -> Fit<'static> {
    Fit { verbose: 0, ..Fit::default() }
}

#[test]
fn fit_lowers_the_loss_and_predict_has_one_row_per_sample() {
    let (x, y) = regression(200);
    let mut model = Regressor::new();
    model.compile("mse", "sgd", &[]).unwrap();
    model.compile(Loss::MeanSquaredError, Sgd::new(0.05), &[Metric::Mae]).unwrap();
    let h = model.fit(&x, &y, Fit { epochs: 10, ..quiet() }).unwrap();
    let loss = h.get("loss").unwrap();
    assert_eq!(loss.len(), 10);
    assert!(loss[9] < loss[0] / 10.0, "{loss:?}");
    assert_eq!(h.keys().collect::<Vec<_>>(), ["loss", "mean_absolute_error"]);
    assert_eq!(model.predict(&x).unwrap().shape(), &[200, 1]);
    assert_eq!(model.predict_one(&[0.5]).unwrap().len(), 1);
    let scores = model.evaluate(&x, &y).unwrap();
    assert!(scores["loss"] < loss[0]);
}

#[test]
fn history_has_val_twins_and_keras_keys() {
    let (x, y) = images(100);
    let mut model = Digits::new();
    model.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h = model.fit(&x, &y, Fit { epochs: 2, validation_split: 0.2, ..quiet() }).unwrap();
    assert_eq!(h.keys().collect::<Vec<_>>(), ["accuracy", "loss", "val_accuracy", "val_loss"]);
    assert_eq!(h.epoch, [0, 1]);
}

#[test]
fn every_optimizer_and_loss_name_trains() {
    let (x, y) = regression(64);
    for opt in ["sgd", "adam", "adamw", "rmsprop", "adagrad", "Adam"] {
        for loss in ["mse", "mae", "huber", "mean_squared_error"] {
            let mut m = Regressor::new();
            m.compile(loss, opt, &["mse", "mae"]).unwrap();
            let h = m.fit(&x, &y, Fit { epochs: 3, ..quiet() }).unwrap();
            assert!(h.last("loss").unwrap().is_finite(), "{opt} {loss}");
        }
    }
    let (xi, yi) = images(40);
    let onehot = kiln::data::one_hot(&yi, 10).unwrap();
    for (loss, metric) in
        [("categorical_crossentropy", "categorical_accuracy"), ("binary_crossentropy", "binary_accuracy")]
    {
        let mut m = Digits::new();
        m.compile(loss, Adam::default().amsgrad(true), &[metric, "accuracy"]).unwrap();
        m.fit(&xi, &onehot, Fit { epochs: 2, ..quiet() }).unwrap();
    }
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let (x, y) = images(90);
    let train = |seed| {
        let mut m = Digits::with_seed(seed);
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.fit(&x, &y, Fit { epochs: 3, batch_size: 16, ..quiet() }).unwrap();
        let mut w = Vec::new();
        m.visit_weights(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
        w
    };
    assert_eq!(train(5), train(5));
    assert_ne!(train(5), train(6));
}

#[test]
fn parameters_have_keras_names_and_initialisers() {
    let m = Digits::new();
    let mut names = Vec::new();
    m.visit_weights(&mut |n, p| names.push((n.to_string(), p.shape().to_vec())));
    assert_eq!(
        names,
        [
            ("dense.kernel".to_string(), vec![64, 16]),
            ("dense.bias".to_string(), vec![16]),
            ("dense_1.kernel".to_string(), vec![16, 10]),
            ("dense_1.bias".to_string(), vec![10]),
        ]
    );
    assert_eq!(m.count_params(), 64 * 16 + 16 + 16 * 10 + 10);
    // glorot_uniform: |w| < sqrt(6 / (fan_in + fan_out)); zeros for the bias.
    let limit = (6.0f32 / (64.0 + 16.0)).sqrt();
    assert!(m.dense.kernel.value.iter().all(|w| w.abs() < limit));
    assert!(m.dense.kernel.value.iter().any(|w| w.abs() > limit * 0.9));
    assert!(m.dense.bias.as_ref().unwrap().value.iter().all(|b| *b == 0.0));
}

#[test]
fn summary_matches_keras_layout() {
    let want = "\
Model: \"Digits\"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ flatten (Flatten)               │ (None, 64)             │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 16)             │         1,040 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           170 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 1,210 (4.73 KB)
 Trainable params: 1,210 (4.73 KB)
 Non-trainable params: 0 (0.00 B)
 Inference memory: 4.73 KB of weights, 104.00 B of scratch per sample";
    assert_eq!(Digits::new().summary_string(), want);
}

#[test]
fn frozen_layers_do_not_change() {
    let (x, y) = images(50);
    let mut m = Digits::new();
    m.dense.set_trainable(false);
    let before = m.dense.kernel.value.clone();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.fit(&x, &y, Fit { epochs: 2, ..quiet() }).unwrap();
    assert_eq!(m.dense.kernel.value, before);
    assert!(m.summary_string().contains("Non-trainable params: 1,040 (4.06 KB)"));
}

// Bad input: each an error a user can act on, never a panic.

fn compiled_digits() -> Digits {
    let mut m = Digits::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    m
}

fn err<T: std::fmt::Debug>(r: kiln::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn wrong_feature_shape_names_both_shapes() {
    let mut m = compiled_digits();
    let x = Array2::<f32>::zeros((10, 64));
    let e = err(m.fit(&x, &Array1::<f32>::zeros(10), quiet()));
    assert_eq!(e, "x (input of Digits): expected shape [n, 8, 8, 1], got [10, 64]");
    assert!(err(m.predict(&x)).contains("expected shape [n, 8, 8, 1], got [10, 64]"));
    assert!(err(m.predict_one(&[0.0; 63])).contains("expected shape [64], got [63]"));
}

#[test]
fn row_counts_must_match() {
    let mut m = compiled_digits();
    let (x, _) = images(10);
    let e = err(m.fit(&x, &Array1::<f32>::zeros(9), quiet()));
    assert!(e.contains("it has 9 rows but x has 10"), "{e}");
}

#[test]
fn targets_must_fit_the_loss() {
    let (x, y) = images(10);
    let mut m = Digits::new();
    m.compile("categorical_crossentropy", "adam", &[]).unwrap();
    let e = err(m.fit(&x, &Array2::<f32>::zeros((10, 9)), quiet()));
    assert!(e.contains("expected shape [n, 10], got [10, 9]") && e.contains("categorical_crossentropy"), "{e}");
    let mut s = compiled_digits();
    let mut bad = y.clone();
    bad[3] = 10.0;
    let e = err(s.fit(&x, &bad, quiet()));
    assert!(e.contains("row 3 has label 10") && e.contains("0..10"), "{e}");
    bad[3] = 2.5;
    assert!(err(s.fit(&x, &bad, quiet())).contains("row 3 has label 2.5"));
}

#[test]
fn empty_x_is_an_error() {
    let mut m = compiled_digits();
    let e = err(m.fit(&Array4::<f32>::zeros((0, 8, 8, 1)), &Array1::<f32>::zeros(0), quiet()));
    assert!(e.contains("it has no rows"), "{e}");
}

#[test]
fn bad_options_are_errors() {
    let (x, y) = images(10);
    let mut m = compiled_digits();
    let e = err(m.fit(&x, &y, Fit { validation_split: 1.0, ..quiet() }));
    assert!(e.contains("validation_split") && e.contains("[0, 1)"), "{e}");
    let e = err(m.fit(&x, &y, Fit { validation_split: -0.1, ..quiet() }));
    assert!(e.contains("validation_split"), "{e}");
    let e = err(m.fit(
        &x.slice(kiln::ndarray::s![..1, .., .., ..]),
        &y.slice(kiln::ndarray::s![..1]),
        Fit { validation_split: 0.5, ..quiet() },
    ));
    assert!(e.contains("leaves no rows to train on"), "{e}");
    let e = err(m.fit(&x, &y, Fit { batch_size: 0, ..quiet() }));
    assert!(e.contains("batch_size"), "{e}");
}

#[test]
fn nan_in_x_names_the_first_bad_row() {
    let (mut x, y) = images(10);
    x[[4, 2, 3, 0]] = f32::NAN;
    x[[7, 0, 0, 0]] = f32::INFINITY;
    let mut m = compiled_digits();
    let e = err(m.fit(&x, &y, quiet()));
    assert!(e.contains("row 4 holds NaN"), "{e}");
    assert!(err(m.predict(&x)).contains("row 4"));
}

#[test]
fn fit_before_compile_says_to_compile() {
    let (x, y) = images(10);
    let mut m = Digits::new();
    let e = err(m.fit(&x, &y, quiet()));
    assert!(e.contains("call `model.compile(loss, optimizer, metrics)` before `fit`"), "{e}");
    assert!(err(m.evaluate(&x, &y)).contains("before `evaluate`"));
    // predict needs no compile, as in Keras.
    assert!(m.predict(&x).is_ok());
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let mut m = Digits::new();
    let e = err(m.compile("cross_entropy", "adam", &[]));
    assert!(e.starts_with("unknown loss `cross_entropy`; valid names are: mean_squared_error, mse"), "{e}");
    let e = err(m.compile("mse", "adamx", &[]));
    assert_eq!(
        e,
        "unknown optimizer `adamx` (did you mean `adam`?); valid names are: sgd, adam, adamw, rmsprop, adagrad, \
         nadam, adamax, lion, adafactor"
    );
    let e = err(m.compile("mse", "adam", &["acuracy"]));
    assert!(e.starts_with("unknown metric `acuracy` (did you mean `accuracy`?); valid names are: accuracy"), "{e}");
}

#[test]
fn a_diverging_loss_stops_with_epoch_and_batch() {
    let x = array![[1.0f32], [2.0], [3.0], [4.0]];
    let y = array![[1e30f32], [-1e30], [1e30], [-1e30]];
    let mut m = Regressor::new();
    m.compile("mse", Sgd::new(10.0), &[]).unwrap();
    let e = err(m.fit(&x, &y, Fit { epochs: 5, batch_size: 2, ..quiet() }));
    assert!(e.starts_with("loss became inf at epoch 1, batch 0") || e.contains("loss became NaN"), "{e}");
}

#[test]
fn models_are_ordinary_send_sync_clone_types() {
    fn check<T: Clone + std::fmt::Debug + Send + Sync + Default>() {}
    check::<Digits>();
    check::<Regressor>();
    let mut a = Digits::new();
    let mut b = a.clone();
    let x = images(3).0;
    assert_eq!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
}

sequential! {
    /// Keras' activation layers by their own names.
    pub struct NamedActivations: [5] {
        Dense(6),
        ReLU(),
        Dense(6),
        ELU(),
        Dense(3),
        Softmax(),
    }
}

sequential! {
    /// The same with `Activation(name)`.
    pub struct ActivationLayers: [5] {
        Dense(6),
        Activation(relu),
        Dense(6),
        Activation(elu),
        Dense(3),
        Activation(softmax),
    }
}

#[test]
fn relu_elu_and_softmax_layers_are_their_activations() {
    let named = NamedActivations::with_seed(4);
    let s = named.summary_string();
    for want in ["re_lu (ReLU)", "elu (ELU)", "softmax (Softmax)"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    let mut plain = ActivationLayers::with_seed(5);
    kiln::testing::copy_weights(&named, &mut plain);
    let x = kiln::ndarray::Array2::from_shape_fn((4, 5), |(r, c)| (r as f32 - 1.5) * (c as f32 - 2.0) / 3.0);
    let mut named = named;
    assert_eq!(named.predict(&x).unwrap(), plain.predict(&x).unwrap());
}

sequential! {
    pub struct PreluVector: [5] { PReLU() }
}
sequential! {
    pub struct PreluSteps: [3, 4] { PReLU(shared_axes = [1]) }
}
sequential! {
    pub struct PreluImage: [2, 3, 4] { PReLU(shared_axes = [1, 2]) }
}

/// The output, input gradient and slope gradient of a PReLU, against Keras 3
/// (`examples/keras/prelu_reference.py`).
fn prelu_case<M: Model + Layer>(case: &str, mut m: M) {
    let get = |k: &str| {
        kiln::testing::reference(include_str!("../fixtures/keras/prelu.txt"), &format!("{case}.{k}"))
            .unwrap_or_else(|| panic!("{case}.{k} missing"))
    };
    m.visit_weights_mut(&mut |p| p.value.copy_from_slice(&get("alpha")));
    let (x, dy) = (get("x"), get("dy"));
    let mut stream = kiln::Stream::new(0);
    let mut ctx = kiln::Ctx::new(2, true, &mut stream);
    m.forward(&[&x], &mut ctx);
    kiln::testing::assert_close(&format!("{case}.out"), Layer::output(&m), &get("out"), 1e-6);
    let opts = kiln::BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
    m.backward(&[&x], &dy, &mut ctx, opts);
    kiln::testing::assert_close(&format!("{case}.dx"), m.input_grad(0), &get("dx"), 1e-6);
    let mut grad = Vec::new();
    m.visit_weights(&mut |_, p| grad.extend_from_slice(&p.grad));
    kiln::testing::assert_close(&format!("{case}.dalpha"), &grad, &get("dalpha"), 1e-5);
}

#[test]
fn prelu_matches_keras_and_its_gradient_check() {
    prelu_case("vector", PreluVector::new());
    prelu_case("steps", PreluSteps::new());
    prelu_case("image", PreluImage::new());
    // Keras' shapes and counts: one slope per position, shared along the given axes.
    assert_eq!(PreluImage::LAYERS[0].params, 4);
    assert_eq!(PreluSteps::new().weights()[0].1.shape(), &[1, 4]);
    let mut m = PreluImage::new();
    m.visit_weights_mut(&mut |p| p.value.iter_mut().enumerate().for_each(|(i, v)| *v = 0.1 + 0.2 * i as f32));
    let x: Vec<f32> = (0..2 * 24).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + 0.05).collect();
    kiln::testing::check_model(&mut m, &[&x], 2, 8, 3e-3).unwrap();
}
