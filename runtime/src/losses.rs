//! Losses, with Keras' names, formulas and reduction (`sum_over_batch_size`: the mean of the
//! per-sample losses, where a regression loss averages over the last axis and a cross-entropy sums
//! over it).
//!
//! Cross-entropies on probabilities clip them to `[1e-7, 1 - 1e-7]` as Keras does. When a model
//! ends in softmax and the loss is a (sparse) categorical cross-entropy, the gradient is computed
//! with respect to the softmax's input as `p - y` in one pass (the fused path), which is both
//! faster and exact where the clipped form would lose precision.

use crate::error::{Error, Result};

const EPSILON: f32 = 1e-7;

/// Which loss formula. Use the constants on [`Loss`] (`Loss::MeanSquaredError`) to build one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// `mean((y - p)²)`.
    MeanSquaredError,
    /// `mean(|y - p|)`.
    MeanAbsoluteError,
    /// Quadratic below `delta`, linear above.
    Huber,
    /// `-mean(y ln p + (1 - y) ln(1 - p))`.
    BinaryCrossentropy,
    /// `-Σ y ln p` with one-hot (or soft) targets.
    CategoricalCrossentropy,
    /// `-ln p[label]` with integer labels.
    SparseCategoricalCrossentropy,
    /// A loss of your own ([`Loss::custom`]).
    Custom,
}

/// A loss you write (Keras' `def my_loss(y_true, y_pred)`): the loss of one sample's row of
/// predictions against its targets (the same width), and, if you can, its gradient. The batch's
/// loss is the mean over rows, as Keras reduces.
///
/// ```
/// use kiln_runtime::{CustomLoss, Loss};
///
/// /// Squared error that counts under-prediction 4 times.
/// #[derive(Debug)]
/// struct Asymmetric;
///
/// impl CustomLoss for Asymmetric {
///     fn name(&self) -> &'static str {
///         "asymmetric"
///     }
///     fn value(&self, p: &[f32], y: &[f32]) -> f32 {
///         p.iter().zip(y).map(|(p, y)| if p < y { 4.0 * (y - p).powi(2) } else { (y - p).powi(2) }).sum::<f32>()
///             / p.len() as f32
///     }
/// }
///
/// static ASYMMETRIC: Asymmetric = Asymmetric;
/// let loss = Loss::custom(&ASYMMETRIC); // in compile, in loss_and_grads, as a metric
/// # let _ = loss;
/// ```
pub trait CustomLoss: std::fmt::Debug + Sync {
    /// The name it is logged under.
    fn name(&self) -> &'static str;
    /// The loss of one row of predictions `p` against targets `y`.
    fn value(&self, p: &[f32], y: &[f32]) -> f32;
    /// Writes d value / d p into `g` and returns true; the default returns false, and kiln
    /// derives the gradient by central differences (two `value` calls per output value, accurate
    /// to about 1e-3 relative: write it when you can).
    fn gradient(&self, _p: &[f32], _y: &[f32], _g: &mut [f32]) -> bool {
        false
    }
}

/// A loss function with its options, chosen by name in `compile` (`"mse"`) or built here:
///
/// ```
/// use kiln_runtime::Loss;
/// let a = Loss::MeanSquaredError;
/// let b = Loss::SparseCategoricalCrossentropy.with_from_logits(true);
/// let c = Loss::huber(0.5);
/// assert_eq!(Loss::from_name("mse").unwrap(), a);
/// # let _ = (b, c);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    kind: LossKind,
    from_logits: bool,
    delta: f32,
    custom: Option<&'static dyn CustomLoss>,
}

impl PartialEq for Loss {
    /// Same formula and options; custom losses are equal when they are the same object (and name).
    fn eq(&self, other: &Self) -> bool {
        let same_custom = match (self.custom, other.custom) {
            // Zero-sized losses may share an address: the name tells them apart.
            (Some(a), Some(b)) => {
                std::ptr::addr_eq(a as *const dyn CustomLoss, b as *const dyn CustomLoss) && a.name() == b.name()
            }
            (None, None) => true,
            _ => false,
        };
        self.kind == other.kind && self.from_logits == other.from_logits && self.delta == other.delta && same_custom
    }
}

#[allow(non_upper_case_globals)]
impl Loss {
    /// `mean_squared_error` (`mse`).
    pub const MeanSquaredError: Loss = Loss::of(LossKind::MeanSquaredError);
    /// `mean_absolute_error` (`mae`).
    pub const MeanAbsoluteError: Loss = Loss::of(LossKind::MeanAbsoluteError);
    /// `huber` with delta 1.0 (see [`Loss::huber`]).
    pub const Huber: Loss = Loss::of(LossKind::Huber);
    /// `binary_crossentropy` on probabilities.
    pub const BinaryCrossentropy: Loss = Loss::of(LossKind::BinaryCrossentropy);
    /// `categorical_crossentropy` on probabilities, one-hot targets.
    pub const CategoricalCrossentropy: Loss = Loss::of(LossKind::CategoricalCrossentropy);
    /// `sparse_categorical_crossentropy` on probabilities, integer labels.
    pub const SparseCategoricalCrossentropy: Loss = Loss::of(LossKind::SparseCategoricalCrossentropy);

    const fn of(kind: LossKind) -> Loss {
        Loss { kind, from_logits: false, delta: 1.0, custom: None }
    }

    /// A loss of your own (see [`CustomLoss`]), for `compile`, custom loops and metrics.
    pub fn custom(loss: &'static dyn CustomLoss) -> Loss {
        Loss { custom: Some(loss), ..Loss::of(LossKind::Custom) }
    }

    /// Every name [`Loss::from_name`] accepts.
    pub const NAMES: [&'static str; 13] = [
        "mean_squared_error",
        "mse",
        "mean_absolute_error",
        "mae",
        "huber",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "Huber",
        "BinaryCrossentropy",
        "CategoricalCrossentropy",
    ];

    /// Resolves a Keras loss name (`"mse"`, `"categorical_crossentropy"`, `"Huber"`, ...).
    pub fn from_name(name: &str) -> Result<Loss> {
        let kind = match name {
            "mean_squared_error" | "mse" | "MSE" | "MeanSquaredError" => LossKind::MeanSquaredError,
            "mean_absolute_error" | "mae" | "MAE" | "MeanAbsoluteError" => LossKind::MeanAbsoluteError,
            "huber" | "Huber" => LossKind::Huber,
            "binary_crossentropy" | "BinaryCrossentropy" => LossKind::BinaryCrossentropy,
            "categorical_crossentropy" | "CategoricalCrossentropy" => LossKind::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
                LossKind::SparseCategoricalCrossentropy
            }
            _ => {
                let mut valid = Self::NAMES.to_vec();
                valid.push("SparseCategoricalCrossentropy");
                return Err(Error::UnknownName { kind: "loss", name: name.to_string(), valid });
            }
        };
        Ok(Loss::of(kind))
    }

    /// Huber loss with the given `delta` (Keras' default is 1.0).
    pub fn huber(delta: f32) -> Loss {
        Loss { delta, ..Loss::Huber }
    }

    /// Whether the model's outputs are logits rather than probabilities (cross-entropies only).
    pub fn with_from_logits(self, from_logits: bool) -> Loss {
        Loss { from_logits, ..self }
    }

    /// The formula.
    pub fn kind(&self) -> LossKind {
        self.kind
    }

    /// Whether predictions are read as logits.
    pub fn from_logits(&self) -> bool {
        self.from_logits
    }

    /// Keras' function name, e.g. `mean_squared_error`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            LossKind::MeanSquaredError => "mean_squared_error",
            LossKind::MeanAbsoluteError => "mean_absolute_error",
            LossKind::Huber => "huber",
            LossKind::BinaryCrossentropy => "binary_crossentropy",
            LossKind::CategoricalCrossentropy => "categorical_crossentropy",
            LossKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            LossKind::Custom => self.custom.map_or("custom", |c| c.name()),
        }
    }

    /// Whether targets are integer labels, one per row.
    pub fn is_sparse(&self) -> bool {
        self.kind == LossKind::SparseCategoricalCrossentropy
    }

    /// Whether this loss, on the output of a softmax, can hand back the gradient with respect to
    /// the softmax's input directly.
    pub fn fuses_softmax(&self) -> bool {
        !self.from_logits
            && matches!(self.kind, LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy)
    }

    /// The target width this loss needs for a model output `width` wide.
    pub fn target_width(&self, width: usize) -> usize {
        if self.is_sparse() { 1 } else { width }
    }

    /// Checks targets once before training: labels are integers in range, probabilities in [0, 1].
    pub fn check_targets(&self, y: &[f32], width: usize, what: &str) -> Result<()> {
        let tw = self.target_width(width);
        for (row, t) in y.chunks_exact(tw).enumerate() {
            if let Some(v) = t.iter().find(|v| !v.is_finite()) {
                return Err(Error::InvalidData { what: what.into(), reason: format!("row {row} holds {v}") });
            }
            let bad = |reason: String| Err(Error::InvalidData { what: what.into(), reason });
            match self.kind {
                LossKind::SparseCategoricalCrossentropy => {
                    let l = t[0];
                    if l < 0.0 || l.fract() != 0.0 || l as usize >= width {
                        return bad(format!(
                            "row {row} has label {l}, but sparse_categorical_crossentropy needs integer labels in 0..{width} for a model with {width} outputs"
                        ));
                    }
                }
                LossKind::BinaryCrossentropy | LossKind::CategoricalCrossentropy => {
                    if let Some(v) = t.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                        return bad(format!("row {row} holds {v}, but {} needs targets in [0, 1]", self.name()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Keras' weighted loss: `Σ wᵢ lᵢ / n` over `n` rows (the weighted sum over the batch size,
    /// not over the weights' sum), with one weight per sample and `n / weights.len()` rows per
    /// sample (the positions of a sequence output share their sample's weight). With `grad`,
    /// writes the gradient of that value, as [`compute`](Self::compute) does.
    #[allow(clippy::too_many_arguments)]
    pub fn compute_weighted(
        &self,
        p: &[f32],
        y: &[f32],
        n: usize,
        width: usize,
        weights: &[f32],
        mut grad: Option<&mut [f32]>,
        fused_softmax: bool,
    ) -> f32 {
        let per = (n / weights.len().max(1)).max(1);
        let yw = if self.is_sparse() { 1 } else { width };
        let mut total = 0.0f64;
        for r in 0..n {
            let w = weights[r / per];
            let row = grad.as_deref_mut().map(|g| &mut g[r * width..(r + 1) * width]);
            let l = match row {
                Some(g) => {
                    let l = self.compute(
                        &p[r * width..(r + 1) * width],
                        &y[r * yw..(r + 1) * yw],
                        1,
                        width,
                        Some(&mut *g),
                        fused_softmax,
                    );
                    let scale = w / n as f32;
                    g.iter_mut().for_each(|v| *v *= scale);
                    l
                }
                None => self.compute(&p[r * width..(r + 1) * width], &y[r * yw..(r + 1) * yw], 1, width, None, false),
            };
            total += w as f64 * l as f64;
        }
        (total / n.max(1) as f64) as f32
    }

    /// The mean loss over `n` rows of predictions `p` (`width` each) against targets `y`.
    ///
    /// With `grad`, also writes d(mean loss)/d(p), or with `fused_softmax` d(mean loss)/d(logits)
    /// where `p` is the output of a softmax (see [`Loss::fuses_softmax`]).
    pub fn compute(
        &self,
        p: &[f32],
        y: &[f32],
        n: usize,
        width: usize,
        grad: Option<&mut [f32]>,
        fused_softmax: bool,
    ) -> f32 {
        let inv_n = 1.0 / n as f32;
        let mut total = 0.0f64;
        let mut grad = grad;
        let mean = match self.kind {
            LossKind::MeanSquaredError | LossKind::MeanAbsoluteError | LossKind::Huber => {
                let scale = inv_n / width as f32;
                let d = self.delta;
                for (i, (pv, yv)) in p.iter().zip(y).enumerate() {
                    let e = pv - yv;
                    let (l, g) = match self.kind {
                        LossKind::MeanSquaredError => (e * e, 2.0 * e),
                        LossKind::MeanAbsoluteError => (e.abs(), e.signum() * (e != 0.0) as u8 as f32),
                        _ if e.abs() <= d => (0.5 * e * e, e),
                        _ => (d * (e.abs() - 0.5 * d), d * e.signum()),
                    };
                    total += l as f64;
                    if let Some(g_out) = grad.as_deref_mut() {
                        g_out[i] = g * scale;
                    }
                }
                total / (n * width) as f64
            }
            LossKind::BinaryCrossentropy => {
                let scale = inv_n / width as f32;
                for (i, (pv, yv)) in p.iter().zip(y).enumerate() {
                    let (l, g) = if self.from_logits {
                        let z = *pv;
                        let l = z.max(0.0) - z * yv + (-z.abs()).exp().ln_1p();
                        let s = if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) };
                        (l, s - yv)
                    } else {
                        let q = pv.clamp(EPSILON, 1.0 - EPSILON);
                        let l = -(yv * q.ln() + (1.0 - yv) * (1.0 - q).ln());
                        let inside = *pv > EPSILON && *pv < 1.0 - EPSILON;
                        (l, if inside { (q - yv) / (q * (1.0 - q)) } else { 0.0 })
                    };
                    total += l as f64;
                    if let Some(g_out) = grad.as_deref_mut() {
                        g_out[i] = g * scale;
                    }
                }
                total / (n * width) as f64
            }
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                let sparse = self.is_sparse();
                for r in 0..n {
                    let pr = &p[r * width..(r + 1) * width];
                    // One-hot targets are read in place; sparse labels index them.
                    let label = if sparse { y[r] as usize } else { usize::MAX };
                    let yr = if sparse { &[][..] } else { &y[r * width..(r + 1) * width] };
                    let t = |j: usize| if sparse { (j == label) as u8 as f32 } else { yr[j] };
                    let t_sum: f32 = if sparse { 1.0 } else { yr.iter().sum() };
                    let gr = grad.as_deref_mut().map(|g| &mut g[r * width..(r + 1) * width]);
                    total += if self.from_logits {
                        let max = pr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max + pr.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
                        if let Some(gr) = gr {
                            for (j, g) in gr.iter_mut().enumerate() {
                                *g = ((pr[j] - lse).exp() * t_sum - t(j)) * inv_n;
                            }
                        }
                        (0..width).map(|j| t(j) * (lse - pr[j])).sum::<f32>() as f64
                    } else {
                        let s: f32 = pr.iter().sum();
                        let q = |j: usize| (pr[j] / s).clamp(EPSILON, 1.0 - EPSILON);
                        if let Some(gr) = gr {
                            for (j, g) in gr.iter_mut().enumerate() {
                                *g = if fused_softmax {
                                    (pr[j] * t_sum - t(j)) * inv_n
                                } else {
                                    let own = if pr[j] / s > EPSILON { -t(j) / pr[j] } else { 0.0 };
                                    (own + t_sum / s) * inv_n
                                };
                            }
                        }
                        (0..width).map(|j| -t(j) * q(j).ln()).sum::<f32>() as f64
                    };
                }
                total / n as f64
            }
            LossKind::Custom => {
                let Some(custom) = self.custom else { return f32::NAN };
                // One row's copy to nudge, for the derived gradient (custom losses only).
                let mut nudged = Vec::new();
                for r in 0..n {
                    let (pr, yr) = (&p[r * width..(r + 1) * width], &y[r * width..(r + 1) * width]);
                    total += custom.value(pr, yr) as f64;
                    if let Some(g) = grad.as_deref_mut() {
                        let gr = &mut g[r * width..(r + 1) * width];
                        if !custom.gradient(pr, yr, gr) {
                            nudged.clear();
                            nudged.extend_from_slice(pr);
                            for j in 0..width {
                                let h = 1e-3 * pr[j].abs().max(1.0);
                                nudged[j] = pr[j] + h;
                                let up = custom.value(&nudged, yr) as f64;
                                nudged[j] = pr[j] - h;
                                let down = custom.value(&nudged, yr) as f64;
                                nudged[j] = pr[j];
                                gr[j] = ((up - down) / (2.0 * h as f64)) as f32;
                            }
                        }
                        gr.iter_mut().for_each(|v| *v *= inv_n);
                    }
                }
                total / n as f64
            }
        };
        mean as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let e = Loss::from_name("msee").unwrap_err().to_string();
        assert!(
            e.contains("unknown loss `msee`") && e.contains("mse") && e.contains("sparse_categorical_crossentropy"),
            "{e}"
        );
    }

    #[test]
    fn values_match_keras_formulas() {
        let p = [0.2, 0.8, 0.6, 0.4];
        let y = [0.0, 1.0, 1.0, 0.0];
        let mse = Loss::MeanSquaredError.compute(&p, &y, 2, 2, None, false);
        assert!((mse - (0.04 + 0.04 + 0.16 + 0.16) / 4.0).abs() < 1e-6);
        let cce = Loss::CategoricalCrossentropy.compute(&p, &y, 2, 2, None, false);
        assert!((cce - (-(0.8f32.ln()) - 0.6f32.ln()) / 2.0).abs() < 1e-6);
        let scce = Loss::SparseCategoricalCrossentropy.compute(&p, &[1.0, 0.0], 2, 2, None, false);
        assert!((scce - cce).abs() < 1e-6);
        let h = Loss::huber(0.5).compute(&[2.0, 0.1], &[0.0, 0.0], 1, 2, None, false);
        assert!((h - (0.5 * (2.0 - 0.25) + 0.5 * 0.01) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn sparse_labels_out_of_range_are_rejected() {
        let e = Loss::SparseCategoricalCrossentropy.check_targets(&[1.0, 10.0], 10, "y").unwrap_err().to_string();
        assert!(e.contains("row 1 has label 10") && e.contains("0..10"), "{e}");
    }
}
