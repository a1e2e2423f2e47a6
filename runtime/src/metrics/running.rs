//! [`RunningMetric`]: a metric's state across the batches of an epoch (running means, confusion
//! counts, AUC buckets, sums), updated batch by batch and read as Keras computes it.

use super::*;

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
            true if width == 1 || loss.kind().is_binary() => Probs::Sigmoid,
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
