//! Metrics, with Keras' names and formulas. `compile` takes their names (`&["accuracy", "auc"]`);
//! [`Metric`] holds the same names as typed constants (`&[Metric::Accuracy, Metric::Mae]`), so a
//! misspelt metric is a compile error rather than a run-time one, and builds metrics with
//! arguments (`Metric::auc(Curve::Pr, 200)`, `Metric::top_k(3)`) for [`Compile::metric`](crate::Compile::metric).
//!
//! Every metric is stateful across the batches of an epoch the way Keras computes it: the
//! accuracies and errors are running means, Precision/Recall/AUC/F-scores keep confusion counts, R²
//! keeps sums, so an epoch's AUC is the AUC of the epoch, not a mean of per-batch AUCs.
//! [`RunningMetric`] is the same object for custom loops (`update_state`, `result`, `reset_state`).

use crate::error::{Error, Result};
use crate::losses::{Loss, LossKind};

/// Metric names as constants, for `compile(.., &[Metric::Accuracy])`, and metrics with arguments.
///
/// Each constant is the name of Keras' metric class in snake case, which is also the key it gets
/// in [`History`](crate::History) (as in Keras, a metric given by name is reported under the name
/// given: `"mae"` under `mae`, `Metric::Mae` under `mean_absolute_error`).
pub struct Metric;

#[allow(non_upper_case_globals)]
impl Metric {
    /// Accuracy, resolved from the shapes as Keras does: binary when the model has one output,
    /// sparse categorical when targets are labels, categorical otherwise.
    pub const Accuracy: &'static str = "accuracy";
    /// Fraction of predictions on the right side of 0.5.
    pub const BinaryAccuracy: &'static str = "binary_accuracy";
    /// Fraction of rows whose arg-max matches the one-hot target's.
    pub const CategoricalAccuracy: &'static str = "categorical_accuracy";
    /// Fraction of rows whose arg-max equals the integer label.
    pub const SparseCategoricalAccuracy: &'static str = "sparse_categorical_accuracy";
    /// Mean absolute error.
    pub const Mae: &'static str = "mean_absolute_error";
    /// Mean squared error.
    pub const Mse: &'static str = "mean_squared_error";
    /// `tp / (tp + fp)` at threshold 0.5, over every output value.
    pub const Precision: &'static str = "precision";
    /// `tp / (tp + fn)` at threshold 0.5, over every output value.
    pub const Recall: &'static str = "recall";
    /// Area under the ROC curve, 200 thresholds, Keras' interpolation.
    pub const Auc: &'static str = "auc";
    /// F1 per class (Keras' `average=None`), reported as `f1_score_0`, `f1_score_1`, ...
    pub const F1Score: &'static str = "f1_score";
    /// Fraction of rows whose one-hot target is among the 5 highest predictions.
    pub const TopKCategoricalAccuracy: &'static str = "top_k_categorical_accuracy";
    /// Fraction of rows whose label is among the 5 highest predictions.
    pub const SparseTopKCategoricalAccuracy: &'static str = "sparse_top_k_categorical_accuracy";
    /// Square root of the mean squared error over the epoch.
    pub const RootMeanSquaredError: &'static str = "root_mean_squared_error";
    /// `100 · mean(|y - p| / max(|y|, 1e-7))`.
    pub const Mape: &'static str = "mean_absolute_percentage_error";
    /// Coefficient of determination per output column, averaged uniformly.
    pub const R2Score: &'static str = "r2_score";

    /// Every name `compile` accepts for a metric.
    pub const NAMES: [&'static str; 20] = [
        "accuracy",
        "acc",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "mae",
        "mean_absolute_error",
        "mse",
        "mean_squared_error",
        "precision",
        "recall",
        "auc",
        "f1_score",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "root_mean_squared_error",
        "rmse",
        "mape",
        "mean_absolute_percentage_error",
        "r2_score",
    ];

    /// Keras' `Precision(thresholds=threshold)`.
    pub fn precision(threshold: f32) -> MetricSpec {
        MetricSpec::new("precision", MetricKind::Precision { threshold })
    }
    /// Keras' `Recall(thresholds=threshold)`.
    pub fn recall(threshold: f32) -> MetricSpec {
        MetricSpec::new("recall", MetricKind::Recall { threshold })
    }
    /// Keras' `AUC(num_thresholds, curve)`, with `summation_method="interpolation"`.
    pub fn auc(curve: Curve, num_thresholds: usize) -> MetricSpec {
        MetricSpec::new("auc", MetricKind::Auc { curve, num_thresholds })
    }
    /// Keras' `F1Score(average, threshold)`; `threshold: None` takes each row's arg-max as its
    /// prediction.
    pub fn f1(average: ClassAverage, threshold: Option<f32>) -> MetricSpec {
        MetricSpec::new("f1_score", MetricKind::FBeta { beta: 1.0, average, threshold })
    }
    /// Keras' `FBetaScore(average, beta, threshold)`.
    pub fn fbeta(beta: f32, average: ClassAverage, threshold: Option<f32>) -> MetricSpec {
        MetricSpec::new("fbeta_score", MetricKind::FBeta { beta, average, threshold })
    }
    /// Keras' `TopKCategoricalAccuracy(k)`.
    pub fn top_k(k: usize) -> MetricSpec {
        MetricSpec::new("top_k_categorical_accuracy", MetricKind::TopK { k })
    }
    /// Keras' `SparseTopKCategoricalAccuracy(k)`.
    pub fn sparse_top_k(k: usize) -> MetricSpec {
        MetricSpec::new("sparse_top_k_categorical_accuracy", MetricKind::SparseTopK { k })
    }
    /// A function of your own as a metric (Keras' `metrics=[my_fn]`): the mean of its per-row
    /// values over the epoch, logged under its name.
    pub fn custom(f: &'static dyn crate::losses::CustomLoss) -> MetricSpec {
        MetricSpec::new(f.name(), MetricKind::Custom(CustomFn(f)))
    }
}

/// A [`CustomLoss`](crate::losses::CustomLoss) used as a metric; equal when the same object.
#[derive(Clone, Copy, Debug)]
pub struct CustomFn(pub &'static dyn crate::losses::CustomLoss);

impl PartialEq for CustomFn {
    fn eq(&self, other: &Self) -> bool {
        // Zero-sized functions may share an address: the name tells them apart.
        std::ptr::addr_eq(
            self.0 as *const dyn crate::losses::CustomLoss,
            other.0 as *const dyn crate::losses::CustomLoss,
        ) && self.0.name() == other.0.name()
    }
}

/// Which curve [`Metric::auc`] integrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// True-positive rate against false-positive rate (Keras' default).
    Roc,
    /// Precision against recall, with Keras' (Davis & Goadrich) interpolation.
    Pr,
}

/// How an F-score combines its classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassAverage {
    /// One score per class (Keras' default): logged as `name_0`, `name_1`, ...
    None,
    /// From the counts summed over classes.
    Micro,
    /// The mean of the per-class scores.
    Macro,
    /// The per-class scores weighted by each class's number of true instances.
    Weighted,
}

/// A metric with its arguments and the key it is logged under; [`Compile::metric`](crate::Compile::metric)
/// takes one. A plain name converts into one that is resolved from the loss and shapes when compiling.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSpec {
    name: String,
    kind: Option<MetricKind>,
}

impl MetricSpec {
    fn new(name: &str, kind: MetricKind) -> Self {
        MetricSpec { name: name.to_string(), kind: Some(kind) }
    }

    /// Logs the metric under `name` (Keras' `name=` argument).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The key it is logged under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the name and the arguments.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::invalid("metrics", format!("metric `{}`: {what}", self.name)));
        match self.kind {
            None if !Metric::NAMES.contains(&self.name.as_str()) => {
                Err(Error::UnknownName { kind: "metric", name: self.name.clone(), valid: Metric::NAMES.to_vec() })
            }
            Some(MetricKind::Precision { threshold } | MetricKind::Recall { threshold })
                if !(0.0..=1.0).contains(&threshold) =>
            {
                bad(&format!("the threshold must be in [0, 1], got {threshold}"))
            }
            Some(MetricKind::FBeta { threshold: Some(t), .. }) if !(0.0..=1.0).contains(&t) => {
                bad(&format!("the threshold must be in [0, 1], got {t}"))
            }
            Some(MetricKind::FBeta { beta, .. }) if !(beta.is_finite() && beta > 0.0) => {
                bad(&format!("beta must be finite and > 0, got {beta}"))
            }
            Some(MetricKind::Auc { num_thresholds, .. }) if num_thresholds < 2 => {
                bad(&format!("num_thresholds must be > 1, got {num_thresholds}"))
            }
            Some(MetricKind::TopK { k } | MetricKind::SparseTopK { k }) if k == 0 => bad("k must be at least 1"),
            _ => Ok(()),
        }
    }

    /// The formula, resolving a plain name from the loss and the output width.
    pub(crate) fn kind(&self, loss: &Loss, out_width: usize) -> MetricKind {
        self.kind.unwrap_or_else(|| resolve(&self.name, loss, out_width))
    }
}

impl From<&str> for MetricSpec {
    fn from(name: &str) -> Self {
        MetricSpec { name: name.to_string(), kind: None }
    }
}

/// A resolved metric formula.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    /// `binary_accuracy` (threshold 0.5).
    BinaryAccuracy,
    /// `categorical_accuracy`.
    CategoricalAccuracy,
    /// `sparse_categorical_accuracy`.
    SparseCategoricalAccuracy,
    /// `mean_absolute_error`.
    MeanAbsoluteError,
    /// `mean_squared_error`.
    MeanSquaredError,
    /// `precision`.
    Precision {
        /// A value counts as positive above this.
        threshold: f32,
    },
    /// `recall`.
    Recall {
        /// A value counts as positive above this.
        threshold: f32,
    },
    /// `auc`.
    Auc {
        /// ROC or PR.
        curve: Curve,
        /// Thresholds, evenly spaced over [0, 1].
        num_thresholds: usize,
    },
    /// `fbeta_score` / `f1_score`.
    FBeta {
        /// Weight of recall against precision.
        beta: f32,
        /// How classes combine.
        average: ClassAverage,
        /// `None`: each row's maximum is its prediction.
        threshold: Option<f32>,
    },
    /// `top_k_categorical_accuracy`.
    TopK {
        /// How many of the highest predictions count.
        k: usize,
    },
    /// `sparse_top_k_categorical_accuracy`.
    SparseTopK {
        /// How many of the highest predictions count.
        k: usize,
    },
    /// `root_mean_squared_error`.
    RootMeanSquaredError,
    /// `mean_absolute_percentage_error`.
    MeanAbsolutePercentageError,
    /// `r2_score` (uniform average over columns, no regressors).
    R2Score,
    /// A function of your own ([`Metric::custom`]).
    Custom(CustomFn),
}

impl MetricKind {
    /// Whether it reads integer labels (one per row) rather than targets shaped like the output.
    pub fn takes_labels(&self) -> bool {
        matches!(self, MetricKind::SparseCategoricalAccuracy | MetricKind::SparseTopK { .. })
    }
}

/// Resolves a checked name once the output width and the loss are known (Keras resolves
/// `accuracy` the same way, from the shapes and the loss).
pub(crate) fn resolve(name: &str, loss: &Loss, out_width: usize) -> MetricKind {
    match name {
        "binary_accuracy" => MetricKind::BinaryAccuracy,
        "categorical_accuracy" => MetricKind::CategoricalAccuracy,
        "sparse_categorical_accuracy" => MetricKind::SparseCategoricalAccuracy,
        "mae" | "mean_absolute_error" => MetricKind::MeanAbsoluteError,
        "mse" | "mean_squared_error" => MetricKind::MeanSquaredError,
        "precision" => MetricKind::Precision { threshold: 0.5 },
        "recall" => MetricKind::Recall { threshold: 0.5 },
        "auc" => MetricKind::Auc { curve: Curve::Roc, num_thresholds: 200 },
        "f1_score" => MetricKind::FBeta { beta: 1.0, average: ClassAverage::None, threshold: None },
        "top_k_categorical_accuracy" => MetricKind::TopK { k: 5 },
        "sparse_top_k_categorical_accuracy" => MetricKind::SparseTopK { k: 5 },
        "root_mean_squared_error" | "rmse" => MetricKind::RootMeanSquaredError,
        "mape" | "mean_absolute_percentage_error" => MetricKind::MeanAbsolutePercentageError,
        "r2_score" => MetricKind::R2Score,
        _ if loss.kind() == LossKind::BinaryCrossentropy || out_width == 1 => MetricKind::BinaryAccuracy,
        _ if loss.is_sparse() => MetricKind::SparseCategoricalAccuracy,
        _ => MetricKind::CategoricalAccuracy,
    }
}

/// How a metric turns the model's outputs into probabilities: unchanged, or through the sigmoid
/// or softmax that a `from_logits` loss applies inside itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probs {
    AsIs,
    Sigmoid,
    Softmax,
}

impl Probs {
    /// What the loss of an output implies.
    pub fn of(loss: &Loss, width: usize) -> Probs {
        match loss.from_logits() {
            false => Probs::AsIs,
            true if width == 1 || loss.kind() == LossKind::BinaryCrossentropy => Probs::Sigmoid,
            true => Probs::Softmax,
        }
    }
}

/// What a metric accumulates between resets.
#[derive(Clone, Debug)]
enum Acc {
    /// A running mean (accuracies, errors, top-k).
    Mean { sum: f64, count: f64 },
    /// Confusion counts at one threshold (precision, recall).
    Counts { tp: f64, fp: f64, fn_: f64 },
    /// Positive and negative weight per threshold bucket (AUC).
    Buckets { pos: Vec<f64>, neg: Vec<f64> },
    /// Per-class confusion counts and support (F-scores).
    PerClass { tp: Vec<f64>, fp: Vec<f64>, fn_: Vec<f64>, support: Vec<f64> },
    /// Per-column sums (R²).
    R2 { sum: Vec<f64>, sq: Vec<f64>, res: Vec<f64>, count: f64 },
}

/// One metric's state over the batches of an epoch, an evaluation or a custom loop; Keras'
/// `update_state` / `result` / `reset_state`.
///
/// ```
/// use kiln_runtime::metrics::{Metric, RunningMetric};
/// let mut auc = RunningMetric::new(Metric::Auc)?;
/// auc.update_state(&[0.0, 1.0, 1.0], &[0.2, 0.9, 0.4], 1)?;
/// auc.update_state(&[0.0], &[0.6], 1)?;
/// assert!((auc.result() - 0.75).abs() < 1e-6);
/// # Ok::<(), kiln_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RunningMetric {
    pub(crate) key: String,
    pub(crate) kind: MetricKind,
    probs: Probs,
    acc: Acc,
    scratch: Vec<f32>,
}

impl RunningMetric {
    /// A metric by name or built with arguments ([`Metric::auc`], ...). `accuracy` needs the loss
    /// to resolve, so it is refused here: name the accuracy (`binary_accuracy`, ...) instead.
    pub fn new(spec: impl Into<MetricSpec>) -> Result<Self> {
        let spec = spec.into();
        spec.check()?;
        if spec.kind.is_none() && matches!(spec.name.as_str(), "accuracy" | "acc") {
            return Err(Error::invalid(
                "metric",
                "`accuracy` is resolved from the loss when compiling; outside compile name it: \
                 binary_accuracy, categorical_accuracy or sparse_categorical_accuracy",
            ));
        }
        let kind = spec.kind(&Loss::MeanSquaredError, 0);
        Ok(RunningMetric::resolved(&spec.name, kind, Probs::AsIs))
    }

    pub(crate) fn resolved(key: &str, kind: MetricKind, probs: Probs) -> Self {
        let acc = match kind {
            MetricKind::Precision { .. } | MetricKind::Recall { .. } => Acc::Counts { tp: 0.0, fp: 0.0, fn_: 0.0 },
            MetricKind::Auc { num_thresholds, .. } => {
                Acc::Buckets { pos: vec![0.0; num_thresholds], neg: vec![0.0; num_thresholds] }
            }
            MetricKind::FBeta { .. } => {
                Acc::PerClass { tp: Vec::new(), fp: Vec::new(), fn_: Vec::new(), support: Vec::new() }
            }
            MetricKind::R2Score => Acc::R2 { sum: Vec::new(), sq: Vec::new(), res: Vec::new(), count: 0.0 },
            _ => Acc::Mean { sum: 0.0, count: 0.0 },
        };
        RunningMetric { key: key.to_string(), kind, probs, acc, scratch: Vec::new() }
    }

    /// The formula.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// Every running sum of the state, in a fixed order, for summing over the processes of a
    /// data-parallel run (every sum is additive over rows).
    pub(crate) fn visit_sums(&mut self, f: &mut dyn FnMut(&mut [f64])) {
        match &mut self.acc {
            Acc::Mean { sum, count } => {
                let mut v = [*sum, *count];
                f(&mut v);
                (*sum, *count) = (v[0], v[1]);
            }
            Acc::Counts { tp, fp, fn_ } => {
                let mut v = [*tp, *fp, *fn_];
                f(&mut v);
                (*tp, *fp, *fn_) = (v[0], v[1], v[2]);
            }
            Acc::Buckets { pos, neg } => {
                f(pos);
                f(neg);
            }
            Acc::PerClass { tp, fp, fn_, support } => [tp, fp, fn_, support].into_iter().for_each(|v| f(v)),
            Acc::R2 { sum, sq, res, count } => {
                [sum, sq, res].into_iter().for_each(|v| f(v));
                let mut c = [*count];
                f(&mut c);
                *count = c[0];
            }
        }
    }

    /// Forgets every batch seen.
    pub fn reset_state(&mut self) {
        match &mut self.acc {
            Acc::Mean { sum, count } => (*sum, *count) = (0.0, 0.0),
            Acc::Counts { tp, fp, fn_ } => (*tp, *fp, *fn_) = (0.0, 0.0, 0.0),
            Acc::Buckets { pos, neg } => pos.iter_mut().chain(neg.iter_mut()).for_each(|v| *v = 0.0),
            Acc::PerClass { tp, fp, fn_, support } => {
                for v in [tp, fp, fn_, support] {
                    v.clear();
                }
            }
            Acc::R2 { sum, sq, res, count } => {
                for v in [sum, sq, res] {
                    v.clear();
                }
                *count = 0.0;
            }
        }
    }

    /// Adds a batch: predictions `y_pred` in rows of `width`, and targets shaped like them (or
    /// one integer label per row for the sparse metrics).
    pub fn update_state(&mut self, y_true: &[f32], y_pred: &[f32], width: usize) -> Result<()> {
        if width == 0 || !y_pred.len().is_multiple_of(width) {
            return Err(Error::invalid(
                "y_pred",
                format!("{} predictions do not split into rows of {width}", y_pred.len()),
            ));
        }
        let rows = y_pred.len() / width;
        let want = if self.kind.takes_labels() { rows } else { y_pred.len() };
        if y_true.len() != want {
            return Err(Error::invalid(
                "y_true",
                format!("{} expects {want} targets for {rows} rows of {width}, got {}", self.key, y_true.len()),
            ));
        }
        if let Acc::PerClass { tp, .. } | Acc::R2 { sum: tp, .. } = &self.acc
            && !tp.is_empty()
            && tp.len() != width
        {
            return Err(Error::invalid(
                "y_pred",
                format!("{} has seen rows of {} values; this batch has rows of {width}", self.key, tp.len()),
            ));
        }
        self.update(y_pred, y_true, rows, width, false);
        Ok(())
    }

    /// Adds `n` rows of predictions `p` (`width` each) against targets `y`, unchecked. With
    /// `from_logits`, binary accuracy thresholds at 0 instead of 0.5; the other metrics see the
    /// probabilities the loss computes (see [`Probs`]).
    pub(crate) fn update(&mut self, p: &[f32], y: &[f32], n: usize, width: usize, from_logits: bool) {
        let p = match self.probs {
            Probs::AsIs => p,
            probs => {
                self.scratch.clear();
                self.scratch.extend_from_slice(p);
                if probs == Probs::Softmax {
                    crate::kernels::activation::softmax_rows(&mut self.scratch, width);
                } else {
                    self.scratch.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
                }
                &self.scratch[..]
            }
        };
        let argmax = |r: &[f32]| {
            r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
        };
        // TensorFlow's `in_top_k`: the target is in the top k unless k values beat it strictly;
        // a non-finite target score is never in.
        let in_top_k = |r: &[f32], t: usize, k: usize| {
            r.get(t).is_some_and(|&s| s.is_finite() && r.iter().filter(|&&v| v > s).count() < k)
        };
        let threshold = if from_logits && self.probs == Probs::AsIs { 0.0 } else { 0.5 };
        let rows = || p.chunks_exact(width).zip(y.chunks_exact(width));
        let mean = match self.kind {
            MetricKind::BinaryAccuracy => Some((
                p.iter().zip(y).filter(|(p, y)| ((**p > threshold) as u8 as f32) == **y).count() as f64,
                p.len() as f64,
            )),
            MetricKind::CategoricalAccuracy => {
                Some((rows().filter(|(p, y)| argmax(p) == argmax(y)).count() as f64, n as f64))
            }
            MetricKind::SparseCategoricalAccuracy => {
                Some((p.chunks_exact(width).zip(y).filter(|(p, y)| argmax(p) as f32 == **y).count() as f64, n as f64))
            }
            MetricKind::TopK { k } => {
                Some((rows().filter(|(p, y)| in_top_k(p, argmax(y), k)).count() as f64, n as f64))
            }
            MetricKind::SparseTopK { k } => Some((
                p.chunks_exact(width).zip(y).filter(|(p, y)| **y >= 0.0 && in_top_k(p, **y as usize, k)).count() as f64,
                n as f64,
            )),
            MetricKind::MeanAbsoluteError => {
                Some((p.iter().zip(y).map(|(p, y)| (p - y).abs() as f64).sum::<f64>() / width as f64, n as f64))
            }
            MetricKind::MeanSquaredError => {
                Some((p.iter().zip(y).map(|(p, y)| ((p - y) * (p - y)) as f64).sum::<f64>() / width as f64, n as f64))
            }
            MetricKind::RootMeanSquaredError => {
                Some((p.iter().zip(y).map(|(p, y)| ((p - y) * (p - y)) as f64).sum::<f64>(), p.len() as f64))
            }
            MetricKind::Custom(CustomFn(f)) => Some((rows().map(|(p, y)| f.value(p, y) as f64).sum::<f64>(), n as f64)),
            MetricKind::MeanAbsolutePercentageError => Some((
                p.iter().zip(y).map(|(p, y)| 100.0 * ((y - p) / y.abs().max(1e-7)).abs() as f64).sum::<f64>(),
                p.len() as f64,
            )),
            _ => None,
        };
        match (&mut self.acc, self.kind) {
            (Acc::Mean { sum, count }, _) => {
                let (s, c) = mean.unwrap_or_default();
                *sum += s;
                *count += c;
            }
            (Acc::Counts { tp, fp, fn_ }, MetricKind::Precision { threshold } | MetricKind::Recall { threshold }) => {
                for (&p, &y) in p.iter().zip(y) {
                    match (p > threshold, y != 0.0) {
                        (true, true) => *tp += 1.0,
                        (true, false) => *fp += 1.0,
                        (false, true) => *fn_ += 1.0,
                        (false, false) => {}
                    }
                }
            }
            (Acc::Buckets { pos, neg }, _) => {
                // Keras' evenly spaced thresholds: a prediction in (i/(T-1), (i+1)/(T-1)] lands in
                // bucket i and counts as positive at thresholds 0..=i.
                let last = pos.len() - 1;
                for (&p, &y) in p.iter().zip(y) {
                    let b = (((p * last as f32).ceil() - 1.0).max(0.0) as usize).min(last);
                    pos[b] += y as f64;
                    neg[b] += 1.0 - y as f64;
                }
            }
            (Acc::PerClass { tp, fp, fn_, support }, MetricKind::FBeta { threshold, .. }) => {
                for v in [&mut *tp, &mut *fp, &mut *fn_, &mut *support] {
                    v.resize(width, 0.0);
                }
                for (pr, yr) in rows() {
                    let cut = pr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                    for j in 0..width {
                        let hit = match threshold {
                            None => pr[j] >= cut && pr[j].abs() > 1e-9,
                            Some(t) => pr[j] > t,
                        } as u8 as f64;
                        let t = yr[j] as f64;
                        tp[j] += hit * t;
                        fp[j] += hit * (1.0 - t);
                        fn_[j] += (1.0 - hit) * t;
                        support[j] += t;
                    }
                }
            }
            (Acc::R2 { sum, sq, res, count }, _) => {
                for v in [&mut *sum, &mut *sq, &mut *res] {
                    v.resize(width, 0.0);
                }
                for (pr, yr) in rows() {
                    for j in 0..width {
                        let (t, e) = (yr[j] as f64, (yr[j] - pr[j]) as f64);
                        sum[j] += t;
                        sq[j] += t * t;
                        res[j] += e * e;
                    }
                }
                *count += n as f64;
            }
            _ => unreachable!("accumulator built for its kind in `resolved`"),
        }
    }

    /// The value over everything since the last reset (Keras' `result()`); per-class F-scores
    /// give their mean here and each class in [`results`](Self::results).
    pub fn result(&self) -> f64 {
        let r = self.results();
        r.iter().map(|(_, v)| v).sum::<f64>() / r.len().max(1) as f64
    }

    /// Every value the metric logs, with its key (one, or one per class).
    pub fn results(&self) -> Vec<(String, f64)> {
        let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
        let one = |v: f64| vec![(self.key.clone(), v)];
        match (&self.acc, self.kind) {
            (Acc::Mean { sum, count }, MetricKind::RootMeanSquaredError) => one(div(*sum, *count).sqrt()),
            (Acc::Mean { sum, count }, _) => one(div(*sum, *count)),
            (Acc::Counts { tp, fp, .. }, MetricKind::Precision { .. }) => one(div(*tp, tp + fp)),
            (Acc::Counts { tp, fn_, .. }, _) => one(div(*tp, tp + fn_)),
            (Acc::Buckets { pos, neg }, MetricKind::Auc { curve, .. }) => one(auc(pos, neg, curve)),
            (Acc::PerClass { tp, fp, fn_, support }, MetricKind::FBeta { beta, average, .. }) => {
                fbeta(tp, fp, fn_, support, beta as f64, average)
                    .into_iter()
                    .map(|(k, v)| (k.map_or_else(|| self.key.clone(), |k| format!("{}_{k}", self.key)), v))
                    .collect()
            }
            (Acc::R2 { sum, sq, res, count }, _) => {
                let scores: Vec<f64> = (0..sum.len())
                    .map(|j| {
                        let mean = sum[j] / count;
                        let r = 1.0 - res[j] / (sq[j] - sum[j] * mean);
                        if r.is_infinite() { 0.0 } else { r }
                    })
                    .collect();
                one(div(scores.iter().sum(), scores.len() as f64))
            }
            _ => unreachable!("accumulator built for its kind in `resolved`"),
        }
    }
}

/// Keras' AUC from per-bucket positive and negative weights.
fn auc(pos: &[f64], neg: &[f64], curve: Curve) -> f64 {
    let t = pos.len();
    // Counts at threshold i: everything in bucket i and above.
    let (mut tp, mut fp) = (vec![0.0; t], vec![0.0; t]);
    let (mut a, mut b) = (0.0, 0.0);
    for i in (0..t).rev() {
        a += pos[i];
        b += neg[i];
        (tp[i], fp[i]) = (a, b);
    }
    let (p_all, n_all) = (a, b);
    let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    match curve {
        Curve::Roc => (0..t - 1)
            .map(|i| {
                let (x0, x1) = (div(fp[i], n_all), div(fp[i + 1], n_all));
                let (y0, y1) = (div(tp[i], p_all), div(tp[i + 1], p_all));
                (x0 - x1) * (y0 + y1) / 2.0
            })
            .sum(),
        // Davis & Goadrich's interpolation of precision between thresholds, as Keras does.
        Curve::Pr => (0..t - 1)
            .map(|i| {
                let dtp = tp[i] - tp[i + 1];
                let (p0, p1) = (tp[i] + fp[i], tp[i + 1] + fp[i + 1]);
                let slope = div(dtp, (p0 - p1).max(0.0));
                let intercept = tp[i + 1] - slope * p1;
                let ratio = if p0 > 0.0 && p1 > 0.0 { div(p0, p1.max(0.0)) } else { 1.0 };
                div(slope * (dtp + intercept * ratio.ln()), (tp[i + 1] + (p_all - tp[i + 1])).max(0.0))
            })
            .sum(),
    }
}

/// Keras' F-beta from per-class counts: `None` keys are the averaged score, `Some(j)` class j.
fn fbeta(
    tp: &[f64],
    fp: &[f64],
    fn_: &[f64],
    support: &[f64],
    beta: f64,
    average: ClassAverage,
) -> Vec<(Option<usize>, f64)> {
    const EPS: f64 = 1e-7;
    let score = |tp: f64, fp: f64, fn_: f64| {
        let (p, r) = (tp / (tp + fp + EPS), tp / (tp + fn_ + EPS));
        p * r / (beta * beta * p + r + EPS) * (1.0 + beta * beta)
    };
    let per_class: Vec<f64> = (0..tp.len()).map(|j| score(tp[j], fp[j], fn_[j])).collect();
    match average {
        ClassAverage::None => per_class.into_iter().enumerate().map(|(j, v)| (Some(j), v)).collect(),
        ClassAverage::Micro => vec![(None, score(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum()))],
        ClassAverage::Macro => vec![(None, per_class.iter().sum::<f64>() / per_class.len().max(1) as f64)],
        ClassAverage::Weighted => {
            let total: f64 = support.iter().sum();
            vec![(None, per_class.iter().zip(support).map(|(f, s)| f * s / (total + EPS)).sum())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_resolves_from_loss_and_shapes() {
        assert_eq!(
            resolve("accuracy", &Loss::SparseCategoricalCrossentropy, 10),
            MetricKind::SparseCategoricalAccuracy
        );
        assert_eq!(resolve("accuracy", &Loss::CategoricalCrossentropy, 10), MetricKind::CategoricalAccuracy);
        assert_eq!(resolve("acc", &Loss::BinaryCrossentropy, 1), MetricKind::BinaryAccuracy);
        assert_eq!(resolve("accuracy", &Loss::MeanSquaredError, 1), MetricKind::BinaryAccuracy);
    }

    #[test]
    fn unknown_metric_lists_valid_names() {
        let e = MetricSpec::from("accuracyy").check().unwrap_err().to_string();
        assert!(e.contains("`accuracyy`") && e.contains("sparse_categorical_accuracy"), "{e}");
    }

    #[test]
    fn accuracies_count_matches() {
        let p = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        let mut s = RunningMetric::resolved("acc", MetricKind::SparseCategoricalAccuracy, Probs::AsIs);
        s.update(&p, &[1.0, 0.0, 0.0], 3, 2, false);
        assert!((s.result() - 2.0 / 3.0).abs() < 1e-12);
        let mut c = RunningMetric::resolved("acc", MetricKind::CategoricalAccuracy, Probs::AsIs);
        c.update(&p, &[0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 3, 2, false);
        assert_eq!(c.result(), 1.0);
    }

    #[test]
    fn perfect_and_reversed_rankings_give_auc_one_and_zero() {
        let mut a = RunningMetric::new("auc").unwrap();
        a.update_state(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.2, 0.8, 0.9], 1).unwrap();
        assert!((a.result() - 1.0).abs() < 1e-9, "{}", a.result());
        a.reset_state();
        a.update_state(&[1.0, 1.0, 0.0, 0.0], &[0.1, 0.2, 0.8, 0.9], 1).unwrap();
        assert!(a.result().abs() < 1e-9, "{}", a.result());
    }
}
