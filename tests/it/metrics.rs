//! Keras 3's metrics, stateful across batches, against values Keras computed on the same data in
//! the same batches (`examples/keras/metrics_reference.py` wrote `tests/fixtures/keras/metrics.txt`);
//! then through `compile` / `fit` / `evaluate` on the shipped digits, and bad metric arguments.

use kiln::metrics::{ClassAverage, Curve, Metric, MetricSpec, RunningMetric};
use std::collections::HashMap;

const FIXTURE: &str = include_str!("../fixtures/keras/metrics.txt");

/// The metric under each case name of the generator script.
fn spec(case: &str) -> MetricSpec {
    match case {
        "precision" => Metric::Precision.into(),
        "precision_0.3" => Metric::precision(0.3),
        "recall" => Metric::Recall.into(),
        "recall_0.7" => Metric::recall(0.7),
        "auc" => Metric::Auc.into(),
        "auc_pr" => Metric::auc(Curve::Pr, 200),
        "auc_50" => Metric::auc(Curve::Roc, 50),
        "binary_accuracy" => Metric::BinaryAccuracy.into(),
        "f1_binary_0.5" => Metric::f1(ClassAverage::None, Some(0.5)),
        "f1" => Metric::F1Score.into(),
        "f1_micro" => Metric::f1(ClassAverage::Micro, None),
        "f1_macro" => Metric::f1(ClassAverage::Macro, None),
        "f1_weighted" => Metric::f1(ClassAverage::Weighted, None),
        "f1_macro_0.3" => Metric::f1(ClassAverage::Macro, Some(0.3)),
        "fbeta2_macro" => Metric::fbeta(2.0, ClassAverage::Macro, None),
        "top_k" => Metric::TopKCategoricalAccuracy.into(),
        "top_2" => Metric::top_k(2),
        "categorical_accuracy" => Metric::CategoricalAccuracy.into(),
        "sparse_top_2" => Metric::sparse_top_k(2),
        "sparse_top_1" => Metric::sparse_top_k(1),
        "rmse" => Metric::RootMeanSquaredError.into(),
        "mape" => Metric::Mape.into(),
        "r2" => Metric::R2Score.into(),
        "mae" => Metric::Mae.into(),
        "mse" => Metric::Mse.into(),
        other => panic!("no metric for case {other}"),
    }
}

fn floats(fields: std::str::SplitWhitespace) -> Vec<f32> {
    fields.map(|v| v.parse().unwrap()).collect()
}

#[test]
fn metrics_match_keras_batch_by_batch() {
    let mut data: HashMap<&str, (usize, Vec<f32>)> = HashMap::new();
    let mut checked = 0;
    for line in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("data") => {
                let name = f.next().unwrap();
                let width = f.next().unwrap().parse().unwrap();
                data.insert(name, (width, floats(f)));
            }
            Some("metric") => {
                let (case, set) = (f.next().unwrap(), f.next().unwrap());
                let keras: Vec<f64> = f.map(|v| v.parse().unwrap()).collect();
                let (y, (width, p)) = match set {
                    "labels" => (&data["multi_labels"].1, &data["multi_pred"]),
                    _ => (&data[&*format!("{set}_true")].1, &data[&*format!("{set}_pred")]),
                };
                let per_y = if set == "labels" { 1 } else { *width };
                let mut m = RunningMetric::new(spec(case)).unwrap();
                for (yb, pb) in y.chunks(16 * per_y).zip(p.chunks(16 * width)) {
                    m.update_state(yb, pb, *width).unwrap();
                }
                let got: Vec<f64> = m.results().into_iter().map(|(_, v)| v).collect();
                assert_eq!(got.len(), keras.len(), "{case} on {set}");
                for (g, k) in got.iter().zip(&keras) {
                    let tol = 1e-6 * k.abs().max(1.0);
                    assert!((g - k).abs() < tol, "{case} on {set}: kiln {got:?}, Keras {keras:?}");
                }
                checked += 1;
            }
            _ => panic!("unexpected fixture line {line}"),
        }
    }
    assert_eq!(checked, 29);
}

#[test]
fn per_class_scores_are_logged_one_key_per_class() {
    let mut m = RunningMetric::new(Metric::F1Score).unwrap();
    m.update_state(&[1.0, 0.0, 0.0, 1.0], &[0.9, 0.1, 0.4, 0.6], 2).unwrap();
    let keys: Vec<String> = m.results().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["f1_score_0", "f1_score_1"]);
}

#[test]
fn bad_metric_arguments_and_inputs_are_errors() {
    let err = |s: MetricSpec| RunningMetric::new(s).unwrap_err().to_string();
    assert!(err(Metric::auc(Curve::Roc, 1)).contains("num_thresholds must be > 1"));
    assert!(err(Metric::precision(1.5)).contains("threshold must be in [0, 1], got 1.5"));
    assert!(err(Metric::top_k(0)).contains("k must be at least 1"));
    assert!(err(Metric::fbeta(f32::NAN, ClassAverage::Macro, None)).contains("beta must be finite"));
    assert!(err("accuracy".into()).contains("binary_accuracy"));
    let e = err("presicion".into());
    assert!(e.contains("unknown metric `presicion`") && e.contains("precision"), "{e}");
    let mut m = RunningMetric::new(Metric::Auc).unwrap();
    let e = m.update_state(&[1.0, 0.0], &[0.5, 0.2, 0.1], 1).unwrap_err().to_string();
    assert!(e.contains("expects 3 targets") && e.contains("got 2"), "{e}");
    let mut f = RunningMetric::new(Metric::F1Score).unwrap();
    f.update_state(&[1.0, 0.0], &[0.5, 0.2], 2).unwrap();
    let e = f.update_state(&[1.0, 0.0, 0.0], &[0.5, 0.2, 0.3], 3).unwrap_err().to_string();
    assert!(e.contains("rows of 2") && e.contains("rows of 3"), "{e}");
}

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

sequential! {
    pub struct Detector: [64] {
        Dense(32, activation = relu),
        Dense(1, activation = sigmoid),
    }
}

sequential! {
    pub struct DetectorLogits: [64] {
        Dense(32, activation = relu),
        Dense(1),
    }
}

/// The shipped digits as a one-against-nine task: is it a 3?
fn threes() -> (Array2<f32>, Array2<f32>) {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (x, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3)).unwrap();
    let y: Array1<f32> = labels.mapv(|l| (l == 3.0) as u8 as f32);
    (x / 16.0, y.insert_axis(kiln::ndarray::Axis(1)))
}

/// Through compile/fit/evaluate: the epoch's AUC is the AUC of every prediction at once (not a
/// mean over batches), precision and recall come from the epoch's counts, and logits get the
/// sigmoid the loss applies.
#[test]
fn epoch_metrics_are_computed_over_the_whole_epoch() -> kiln::Result<()> {
    let (x, y) = threes();
    let mut model = Detector::new();
    model.compile("binary_crossentropy", "adam", &["auc", "precision", "recall"])?;
    let history = model.fit(&x, &y, Fit { epochs: 4, batch_size: 64, verbose: 0, ..Fit::default() })?;
    assert!(history.last("auc").unwrap() > 0.95, "{:?}", history.get("auc"));

    let logs = model.evaluate(&x, &y)?;
    let p = model.predict(&x)?;
    let (ys, ps) = (y.as_slice().unwrap(), p.as_slice().unwrap());
    let whole = |spec: &str| {
        let mut m = RunningMetric::new(spec).unwrap();
        m.update_state(ys, ps, 1).unwrap();
        m.result()
    };
    for key in ["auc", "precision", "recall"] {
        assert!((logs[key] - whole(key)).abs() < 1e-9, "{key}: evaluate {} vs all at once {}", logs[key], whole(key));
    }
    let mut batch_means = 0.0;
    for (yb, pb) in ys.chunks(32).zip(ps.chunks(32)) {
        let mut m = RunningMetric::new("auc")?;
        m.update_state(yb, pb, 1)?;
        batch_means += m.result() / ys.chunks(32).len() as f64;
    }
    assert!((logs["auc"] - batch_means).abs() > 1e-6, "an epoch's AUC is not the mean of batch AUCs");

    // The same network emitting logits, with the loss applying the sigmoid: same metrics.
    let mut logits = DetectorLogits::new();
    for (name, _) in model.weights() {
        logits.set_weight(&name, &model.get_weight(&name).unwrap())?;
    }
    logits.compile(kiln::Loss::BinaryCrossentropy.with_from_logits(true), "adam", &["auc", "precision", "recall"])?;
    let logged = logits.evaluate(&x, &y)?;
    for key in ["auc", "precision", "recall"] {
        assert!((logged[key] - logs[key]).abs() < 1e-6, "{key}: logits {} vs probabilities {}", logged[key], logs[key]);
    }
    Ok(())
}

#[test]
fn metrics_that_cannot_read_the_targets_are_refused_at_compile() {
    let mut model = Detector::new();
    let e = model.compile("binary_crossentropy", "adam", &["sparse_top_k_categorical_accuracy"]).unwrap_err();
    assert!(e.to_string().contains("reads one integer label per row"), "{e}");
    let e = model.compile_with(Compile::new("adam").loss("mse").metric(Metric::auc(Curve::Pr, 0))).unwrap_err();
    assert!(e.to_string().contains("num_thresholds must be > 1, got 0"), "{e}");
}

/// `train_on_batch` and `test_on_batch` give Keras' dict of logs; `test_on_batch` and
/// `predict_on_batch` change nothing and agree with `evaluate` and `predict`.
#[test]
fn on_batch_calls_return_logs() -> kiln::Result<()> {
    let (x, y) = threes();
    let (xb, yb) = (x.slice(kiln::ndarray::s![..100, ..]), y.slice(kiln::ndarray::s![..100, ..]));
    let mut model = Detector::new();
    model.compile("binary_crossentropy", "adam", &["accuracy", "auc"])?;
    let logs = model.train_on_batch(&xb, &yb)?;
    assert_eq!(logs.keys().collect::<Vec<_>>(), ["accuracy", "auc", "loss"]);
    let before: Vec<Vec<f32>> = model.weights().into_iter().map(|(_, p)| p.value).collect();
    let tested = model.test_on_batch(&xb, &yb)?;
    let evaluated = model.evaluate_with(&xb, &yb, kiln::Evaluate { batch_size: 100, verbose: 0 })?;
    assert_eq!(tested, evaluated);
    assert_eq!(model.predict_on_batch(&xb)?, model.predict(&xb)?);
    let after: Vec<Vec<f32>> = model.weights().into_iter().map(|(_, p)| p.value).collect();
    assert_eq!(before, after, "test_on_batch and predict_on_batch leave the weights alone");
    Ok(())
}
