//! Metrics, with Keras' names. `compile` takes their names (`&["accuracy"]`); [`Metric`] holds the
//! same names as typed constants (`&[Metric::Accuracy, Metric::Mae]`), so a misspelt metric is a
//! compile error rather than a run-time one.

use crate::error::{Error, Result};
use crate::losses::{Loss, LossKind};

/// Metric names as constants, for `compile(.., &[Metric::Accuracy])`.
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

    /// Every name `compile` accepts for a metric.
    pub const NAMES: [&'static str; 9] = [
        "accuracy",
        "acc",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "mae",
        "mean_absolute_error",
        "mse",
        "mean_squared_error",
    ];
}

/// A resolved metric formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// Checks a metric name at `compile` time.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if Metric::NAMES.contains(&name) {
        Ok(())
    } else {
        Err(Error::UnknownName { kind: "metric", name: name.to_string(), valid: Metric::NAMES.to_vec() })
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
        _ if loss.kind() == LossKind::BinaryCrossentropy || out_width == 1 => MetricKind::BinaryAccuracy,
        _ if loss.is_sparse() => MetricKind::SparseCategoricalAccuracy,
        _ => MetricKind::CategoricalAccuracy,
    }
}

/// A running mean of one metric over the batches of an epoch.
#[derive(Clone, Debug)]
pub(crate) struct MetricState {
    pub key: String,
    pub kind: MetricKind,
    sum: f64,
    count: f64,
}

impl MetricState {
    pub fn new(key: &str, kind: MetricKind) -> Self {
        MetricState { key: key.to_string(), kind, sum: 0.0, count: 0.0 }
    }

    pub fn reset(&mut self) {
        self.sum = 0.0;
        self.count = 0.0;
    }

    /// Adds `n` rows of predictions `p` (`width` each) against targets `y`. When the model's
    /// outputs are logits (`from_logits`), binary accuracy thresholds at 0 instead of 0.5.
    pub fn update(&mut self, p: &[f32], y: &[f32], n: usize, width: usize, from_logits: bool) {
        let argmax = |r: &[f32]| {
            r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
        };
        let threshold = if from_logits { 0.0 } else { 0.5 };
        let (sum, count) = match self.kind {
            MetricKind::BinaryAccuracy => (
                p.iter().zip(y).filter(|(p, y)| ((**p > threshold) as u8 as f32) == **y).count() as f64,
                p.len() as f64,
            ),
            MetricKind::CategoricalAccuracy => (
                p.chunks_exact(width).zip(y.chunks_exact(width)).filter(|(p, y)| argmax(p) == argmax(y)).count() as f64,
                n as f64,
            ),
            MetricKind::SparseCategoricalAccuracy => {
                (p.chunks_exact(width).zip(y).filter(|(p, y)| argmax(p) as f32 == **y).count() as f64, n as f64)
            }
            MetricKind::MeanAbsoluteError => {
                (p.iter().zip(y).map(|(p, y)| (p - y).abs() as f64).sum::<f64>() / width as f64, n as f64)
            }
            MetricKind::MeanSquaredError => {
                (p.iter().zip(y).map(|(p, y)| ((p - y) * (p - y)) as f64).sum::<f64>() / width as f64, n as f64)
            }
        };
        self.sum += sum;
        self.count += count;
    }

    pub fn result(&self) -> f64 {
        if self.count == 0.0 { 0.0 } else { self.sum / self.count }
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
        let e = check_name("accuracyy").unwrap_err().to_string();
        assert!(e.contains("`accuracyy`") && e.contains("sparse_categorical_accuracy"), "{e}");
    }

    #[test]
    fn accuracies_count_matches() {
        let p = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        let mut s = MetricState::new("acc", MetricKind::SparseCategoricalAccuracy);
        s.update(&p, &[1.0, 0.0, 0.0], 3, 2, false);
        assert!((s.result() - 2.0 / 3.0).abs() < 1e-12);
        let mut c = MetricState::new("acc", MetricKind::CategoricalAccuracy);
        c.update(&p, &[0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 3, 2, false);
        assert_eq!(c.result(), 1.0);
    }
}
