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
use crate::losses::Loss;

mod running;

pub use running::RunningMetric;
pub(crate) use running::Probs;

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
        _ if loss.kind().is_binary() || out_width == 1 => MetricKind::BinaryAccuracy,
        _ if loss.is_sparse() => MetricKind::SparseCategoricalAccuracy,
        _ => MetricKind::CategoricalAccuracy,
    }
}
