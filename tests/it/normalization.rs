//! Keras' `Normalization` layer: `adapt` against Keras 3 on committed values
//! (`examples/keras/normalization_reference.py`), the layer's output and input gradient, its
//! place in the summary, bad `adapt` calls as errors, and a classifier on the shipped iris data.

use kiln::ndarray::{Array1, Array2, Array3, s};
use kiln::prelude::*;
use kiln::testing::{assert_close, check_model};
use kiln::{BackwardOpts, Ctx, Layer, Stream};

fn fixture(key: &str) -> Vec<f32> {
    kiln::testing::reference(include_str!("../fixtures/keras/normalization.txt"), key)
        .unwrap_or_else(|| panic!("{key} missing from the fixture"))
}

sequential! {
    /// Normalization alone, on 3 steps of 4 features.
    pub struct Normalized: [3, 4] {
        Normalization(),
    }
}

#[test]
fn adapt_and_the_layer_match_keras() {
    let mut m = Normalized::new();
    let data = Array3::from_shape_vec((40, 3, 4), fixture("data")).unwrap();
    m.adapt("normalization", &data).unwrap();
    let weight = |m: &Normalized, n: &str| {
        m.get_weight(&format!("normalization.{n}")).unwrap().iter().copied().collect::<Vec<f32>>()
    };
    assert_close("mean", &weight(&m, "mean"), &fixture("mean"), 1e-6);
    assert_close("variance", &weight(&m, "variance"), &fixture("variance"), 1e-6);
    assert_eq!(weight(&m, "count"), fixture("count"));
    // The output and input gradient, a constant feature (variance 0) included.
    let (x, dy) = (fixture("x"), fixture("dy"));
    let mut stream = Stream::new(0);
    let mut ctx = Ctx::new(2, true, &mut stream);
    m.forward(&[&x], &mut ctx);
    assert_close("out", Layer::output(&m), &fixture("out"), 1e-6);
    m.backward(&[&x], &dy, &mut ctx, BackwardOpts { input_grad: true, accumulate: false, fused_output: false });
    assert_close("dx", m.input_grad(0), &fixture("dx"), 1e-6);
    // Keras' summary: mean, variance and count are 9 non-trainable values for 4 features.
    let summary = m.summary_string();
    assert!(summary.contains("normalization (Normalization)"), "{summary}");
    assert!(summary.contains("Non-trainable params: 9"), "{summary}");
}

#[test]
fn bad_adapt_calls_are_errors() {
    let mut m = Normalized::new();
    let e = m.adapt("normalisation", &Array3::<f32>::zeros((2, 3, 4))).unwrap_err().to_string();
    assert!(
        e.contains(
            "no Normalization, Discretization or IntegerLookup layer `normalisation` (did you mean `normalization`?)"
        ),
        "{e}"
    );
    let e = m.adapt("normalization", &Array2::<f32>::zeros((2, 5))).unwrap_err().to_string();
    assert!(e.contains("expected shape [n, .., 4], got [2, 5]"), "{e}");
    let mut bad = Array3::<f32>::zeros((2, 3, 4));
    bad[[1, 2, 3]] = f32::NAN;
    let e = m.adapt("normalization", &bad).unwrap_err().to_string();
    assert!(e.contains("value 23 (row 1) is NaN"), "{e}");
    let e = m.adapt("normalization", &Array3::<f32>::zeros((0, 3, 4))).unwrap_err().to_string();
    assert!(e.contains("no rows"), "{e}");
    // Nothing was changed by the failed calls.
    assert_eq!(m.get_weight("normalization.variance").unwrap().iter().copied().collect::<Vec<_>>(), vec![1.0; 4]);
}

sequential! {
    /// Keras' tabular recipe: normalise the measurements with statistics of the training data.
    pub struct Iris: [4] {
        Normalization(),
        Dense(16, activation = relu),
        Dense(3, activation = softmax),
    }
}

#[test]
fn an_adapted_classifier_learns_iris() {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/iris.csv"), true).unwrap();
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3)).unwrap();
    let (x_train, y_train) = (x.slice(s![..120, ..]), y.slice(s![..120]));
    let (x_test, y_test) = (x.slice(s![120.., ..]), y.slice(s![120..]));
    let mut m = Iris::new();
    m.adapt("normalization", &x_train).unwrap();
    let mut probe = m.clone();
    // The mean is the training rows', feature by feature.
    let mean = m.get_weight("normalization.mean").unwrap();
    let col0: Array1<f32> = x_train.column(0).to_owned();
    assert!((mean[0] - col0.mean().unwrap()).abs() < 1e-5);
    m.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x_train, &y_train, Fit { epochs: 60, batch_size: 16, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&x_test, &y_test).unwrap()["accuracy"];
    // 27 of the 30 held-out flowers (the three wrong sit where versicolor and virginica overlap);
    // one more may fall on another machine's rounding.
    assert!(acc >= 0.85, "held-out accuracy {acc}");
    // Gradients flow through the normalisation to the Dense layers.
    check_model(&mut probe, &[&x_train.slice(s![..3, ..]).iter().copied().collect::<Vec<f32>>()], 3, 8, 3e-3).unwrap();
}
