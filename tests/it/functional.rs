//! Functional models: graphs with several inputs and outputs, skip connections, shared layers and
//! merges, trained through the same compile/fit/evaluate/predict as Sequential models.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::testing::check_model;
use rand::{Rng, SeedableRng};

functional! {
    /// The Keras tutorial's functional model.
    pub struct Classifier {
        inputs = Input([64]);
        hidden = Dense(64, activation = relu)(inputs);
        outputs = Dense(10, activation = softmax)(hidden);
        Model(inputs, outputs)
    }
}

sequential! {
    /// The same network, written as a Sequential model.
    pub struct SeqClassifier: [64] {
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

functional! {
    /// Two inputs, a skip connection, a shared layer and two outputs.
    pub struct Tower {
        a = Input([32]);
        b = Input([32]);
        shared = Dense(32, activation = relu);
        ha = shared(a);
        hb = shared(b);
        merged = Concatenate()([ha, hb]);
        h = Dense(64, activation = relu)(merged);
        res = Add()([h, Dense(64)(merged)]);
        class = Dense(3, activation = softmax, name = "class")(res);
        score = Dense(1, name = "score")(res);
        Model([a, b], [class, score])
    }
}

functional! {
    /// Every merge layer, a reshape and an activation in one small graph.
    struct Merges {
        a = Input([2, 3]);
        b = Input([6]);
        fa = Flatten()(a);
        t = Dense(6, activation = tanh);
        ta = t(fa);
        tb = t(b);
        s = Subtract()([ta, tb]);
        p = Multiply()([ta, tb, s]);
        av = Average()([p, ta]);
        mx = Maximum()([av, tb]);
        mn = Minimum()([mx, ta]);
        r = Reshape([3, 2])(mn);
        c = Concatenate(axis = 1)([r, Reshape([3, 2])(s)]);
        sw = Activation(swish)(Flatten()(c));
        d = Dot()([Dense(4)(sw), Dense(4)(b)]);
        out = Dense(2, activation = sigmoid)(Concatenate()([sw, d]));
        Model([a, b], out)
    }
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

fn quiet() -> Fit<'static> {
    Fit { verbose: 0, ..Fit::default() }
}

#[test]
fn tower_ports_and_parameters() {
    let m = Tower::new();
    assert_eq!(Tower::INPUTS.iter().map(|p| p.name).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(Tower::OUTPUTS.iter().map(|p| p.name).collect::<Vec<_>>(), ["class", "score"]);
    // The shared layer's weights exist once.
    let names: Vec<String> = m.weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "dense.kernel",
            "dense.bias",
            "dense_1.kernel",
            "dense_1.bias",
            "dense_2.kernel",
            "dense_2.bias",
            "class.kernel",
            "class.bias",
            "score.kernel",
            "score.bias"
        ]
    );
    assert_eq!(m.count_params(), 32 * 32 + 32 + 64 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3 + 64 + 1);
}

#[test]
fn gradient_check_of_the_whole_tower() {
    let mut m = Tower::with_seed(3);
    // Biases away from zero keep relu inputs off their kink.
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 2 == 0 { 0.2 } else { -0.15 });
        }
    });
    let (a, b) = (random(3, 32, 1), random(3, 32, 2));
    let xs = [a.as_slice().unwrap(), b.as_slice().unwrap()];
    check_model(&mut m, &xs, 3, 24, 3e-3).unwrap();
}

#[test]
fn gradient_check_of_every_merge() {
    let mut m = Merges::with_seed(5);
    let (a, b) = (random(2, 6, 3), random(2, 6, 4));
    let xs = [a.as_slice().unwrap(), b.as_slice().unwrap()];
    check_model(&mut m, &xs, 2, 16, 3e-3).unwrap();
}

#[test]
fn sequential_and_functional_agree_from_the_same_weights() {
    let mut f = Classifier::with_seed(1);
    let mut s = SeqClassifier::with_seed(2);
    assert_eq!(f.count_params(), s.count_params());
    let weights: Vec<Vec<f32>> = f.weights().into_iter().map(|(_, p)| p.value).collect();
    let mut i = 0;
    s.visit_weights_mut(&mut |p| {
        p.value.clone_from(&weights[i]);
        i += 1;
    });
    let x = random(5, 64, 9);
    assert_eq!(f.predict(&x).unwrap(), s.predict(&x).unwrap());
    let y = Array1::from_vec(vec![0.0, 3.0, 9.0, 1.0, 1.0]);
    f.compile("sparse_categorical_crossentropy", Sgd::new(0.1), &[]).unwrap();
    s.compile("sparse_categorical_crossentropy", Sgd::new(0.1), &[]).unwrap();
    assert_eq!(f.train_on_batch(&x, &y).unwrap(), s.train_on_batch(&x, &y).unwrap());
    let grads = |w: Vec<(String, kiln::Param)>| w.into_iter().map(|(_, p)| p.grad).collect::<Vec<_>>();
    assert_eq!(grads(f.weights()), grads(s.weights()));
    assert_eq!(f.predict(&x).unwrap(), s.predict(&x).unwrap());
}

#[test]
fn tower_fits_with_tuples_and_keras_history_keys() {
    let (a, b) = (random(64, 32, 1), random(64, 32, 2));
    let class = Array1::from_shape_fn(64, |i| (i % 3) as f32);
    let score = random(64, 1, 3);
    let mut m = Tower::new();
    m.compile_with(
        Compile::new("adam")
            .output_loss("class", "sparse_categorical_crossentropy")
            .output_loss("score", "mse")
            .loss_weight("score", 0.5)
            .output_metrics("class", &["accuracy"])
            .output_metrics("score", &["mae"]),
    )
    .unwrap();
    let h = m.fit((&a, &b), (&class, &score), Fit { epochs: 2, validation_split: 0.25, ..quiet() }).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    assert_eq!(
        keys,
        [
            "class_accuracy",
            "class_loss",
            "loss",
            "score_loss",
            "score_mae",
            "val_class_accuracy",
            "val_class_loss",
            "val_loss",
            "val_score_loss",
            "val_score_mae"
        ]
    );
    // The total is the weighted sum of the heads' losses.
    let (total, c, s) = (h.last("loss").unwrap(), h.last("class_loss").unwrap(), h.last("score_loss").unwrap());
    assert!((total - (c + 0.5 * s)).abs() < 1e-4 * total.abs().max(1.0), "{total} vs {c} + 0.5 * {s}");
    let (p_class, p_score) = m.predict((&a, &b)).unwrap();
    assert_eq!((p_class.shape(), p_score.shape()), (&[64, 3][..], &[64, 1][..]));
    let scores = m.evaluate((&a, &b), (&class, &score)).unwrap();
    assert!(scores.contains_key("class_accuracy") && scores.contains_key("score_loss"));
}

#[test]
fn one_loss_for_every_output() {
    let (a, b) = (random(16, 32, 1), random(16, 32, 2));
    let mut m = Tower::new();
    m.compile("mse", "sgd", &[]).unwrap();
    let h = m.fit((&a, &b), (&random(16, 3, 3), &random(16, 1, 4)), quiet()).unwrap();
    assert!(h.last("class_loss").is_some() && h.last("score_loss").is_some());
}

fn err<T: std::fmt::Debug>(r: kiln::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn bad_inputs_name_the_input() {
    let (a, b) = (random(8, 32, 1), random(8, 32, 2));
    let (class, score) = (Array1::<f32>::zeros(8), Array2::<f32>::zeros((8, 1)));
    let mut m = Tower::new();
    m.compile_with(
        Compile::new("adam").output_loss("class", "sparse_categorical_crossentropy").output_loss("score", "mse"),
    )
    .unwrap();
    let e = err(m.fit(&a, (&class, &score), quiet()));
    assert_eq!(e, "invalid data in x: Tower has 2 inputs (a, b), so it takes 2 array(s) in that order; got 1");
    let e = err(m.fit((&a, &random(8, 31, 2)), (&class, &score), quiet()));
    assert_eq!(e, "x[1] (input `b` of Tower): expected shape [n, 32], got [8, 31]");
    let e = err(m.fit((&a, &random(7, 32, 2)), (&class, &score), quiet()));
    assert!(e.contains("x[1] (input `b` of Tower)") && e.contains("it has 7 rows but input `a` has 8"), "{e}");
    let e = err(m.fit((&a, &b), (&class,), quiet()));
    assert!(e.contains("Tower has 2 outputs (class, score)"), "{e}");
    let e = err(m.fit((&a, &b), (&class, &Array2::<f32>::zeros((8, 2))), quiet()));
    assert!(e.starts_with("y[1] (target of output `score` of Tower)") && e.contains("got [8, 2]"), "{e}");
    let e = err(m.predict_one(&[0.0; 32]));
    assert!(e.contains("predict_one takes one input, but Tower has 2"), "{e}");
}

#[test]
fn compile_names_the_outputs() {
    let mut m = Tower::new();
    let e = err(m.compile_with(Compile::new("adam").output_loss("klass", "mse")));
    assert!(e.contains("Tower has no output named `klass`; its outputs are: class, score"), "{e}");
    let e = err(m.compile_with(Compile::new("adam").output_loss("class", "mse")));
    assert!(e.contains("output `score` has no loss"), "{e}");
}

/// A metric that reads targets shaped like the output cannot read the labels of a sparse loss:
/// refused at compile, where it once compared labels with the first rows of probabilities.
#[test]
fn a_metric_that_cannot_read_an_outputs_labels_is_refused() {
    let mut m = Tower::new();
    let e = m
        .compile_with(
            Compile::new("adam")
                .output_loss("class", "sparse_categorical_crossentropy")
                .output_loss("score", "mse")
                .metrics(&["mae"]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("metric `mae` on output `class` reads targets shaped like the output"), "{e}");
    assert!(e.contains("takes integer labels"), "{e}");
}

/// Gradients with respect to both inputs of a two-output model (a shared layer, a skip): the
/// sum over both outputs' losses, against central differences of `evaluate`'s total loss.
#[test]
fn input_gradients_of_a_two_input_two_output_model() {
    let (a, b) = (random(3, 32, 4), random(3, 32, 5));
    let class = random(3, 3, 6).mapv(|v| v.abs());
    let score = random(3, 1, 7);
    let mut m = Tower::new();
    m.compile("mse", "sgd", &[]).unwrap();
    let g = m.input_gradients((&a, &b), (&class, &score), &kiln::Loss::MeanSquaredError).unwrap();
    assert_eq!((g[0].shape(), g[1].shape()), (&[3, 32][..], &[3, 32][..]));
    let mut loss_at = |a: &Array2<f32>, b: &Array2<f32>| {
        m.evaluate_with((a, b), (&class, &score), kiln::Evaluate { batch_size: 3, verbose: 0 }).unwrap()["loss"]
    };
    for (input, idx) in [(0usize, [0usize, 3]), (1, [2, 17]), (0, [1, 30]), (1, [0, 0])] {
        let h = 1e-2f32;
        let (mut up, mut down) = ((a.clone(), b.clone()), (a.clone(), b.clone()));
        if input == 0 {
            up.0[idx] += h;
            down.0[idx] -= h;
        } else {
            up.1[idx] += h;
            down.1[idx] -= h;
        }
        let fd = (loss_at(&up.0, &up.1) - loss_at(&down.0, &down.1)) / (2.0 * h as f64);
        let got = g[input][[idx[0], idx[1]]] as f64;
        assert!((got - fd).abs() < 2e-3 * fd.abs().max(0.02), "input {input} {idx:?}: {got} vs {fd}");
    }
}
