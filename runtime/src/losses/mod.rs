//! Losses, with Keras' names, formulas and reduction (`sum_over_batch_size`: the mean of the
//! per-sample losses, where an element-wise loss averages over the last axis and a cross-entropy,
//! a divergence, a similarity or the categorical hinge sums over it).
//!
//! Cross-entropies on probabilities clip them to `[1e-7, 1 - 1e-7]` as Keras does. When a model
//! ends in softmax and the loss is a (sparse) categorical cross-entropy, the gradient is computed
//! with respect to the softmax's input as `p - y` in one pass (the fused path), which is both
//! faster and exact where the clipped form would lose precision.
//!
//! The formulas live in one file per family, as Keras groups them: regression (mean squared and
//! absolute error, Huber, log-cosh, cosine similarity), probabilistic (the cross-entropies,
//! binary focal cross-entropy, Poisson, KL divergence) and hinge (hinge, squared and categorical
//! hinge); each keeps a loss's value and its exact gradient side by side. This file holds the
//! [`Loss`] type, the name lookup and the reduction over a batch; your own losses are in
//! `custom.rs`.

mod custom;
mod hinge;
mod probabilistic;
mod regression;

pub use custom::CustomLoss;

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
    /// `mean(ln cosh(p - y))`.
    LogCosh,
    /// `-Σ ŷ p̂`, the negative cosine similarity of the l2-normalised rows.
    CosineSimilarity,
    /// `-mean(y ln p + (1 - y) ln(1 - p))`.
    BinaryCrossentropy,
    /// `mean((1 - p_t)^γ · bce)`, binary cross-entropy down-weighted where it is already right.
    BinaryFocalCrossentropy,
    /// `-Σ y ln p` with one-hot (or soft) targets.
    CategoricalCrossentropy,
    /// `-ln p[label]` with integer labels.
    SparseCategoricalCrossentropy,
    /// `mean(p - y ln(p + ε))`.
    Poisson,
    /// `Σ y ln(y / p)`, both clipped to `[ε, 1]`.
    KLDivergence,
    /// `mean(max(1 - y p, 0))`, 0/1 labels read as -1/1.
    Hinge,
    /// `mean(max(1 - y p, 0)²)`, 0/1 labels read as -1/1.
    SquaredHinge,
    /// `max(max((1 - y) p) - Σ y p + 1, 0)` with one-hot targets.
    CategoricalHinge,
    /// A loss of your own ([`Loss::custom`]).
    Custom,
}

impl LossKind {
    /// Whether the loss reads one independent probability per value (binary and binary focal
    /// cross-entropy): their metrics apply a sigmoid to logits and `accuracy` is binary.
    pub fn is_binary(self) -> bool {
        matches!(self, LossKind::BinaryCrossentropy | LossKind::BinaryFocalCrossentropy)
    }
}

/// A loss function with its options, chosen by name in `compile` (`"mse"`) or built here:
///
/// ```
/// use kiln_runtime::Loss;
/// let a = Loss::MeanSquaredError;
/// let b = Loss::SparseCategoricalCrossentropy.with_from_logits(true);
/// let c = Loss::huber(0.5);
/// let d = Loss::binary_focal_crossentropy(3.0);
/// assert_eq!(Loss::from_name("mse").unwrap(), a);
/// assert_eq!(Loss::from_name("binary_focal_crossentropy").unwrap(), Loss::binary_focal_crossentropy(2.0));
/// # let _ = (b, c, d);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    kind: LossKind,
    from_logits: bool,
    delta: f32,
    gamma: f32,
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
        self.kind == other.kind
            && self.from_logits == other.from_logits
            && self.delta == other.delta
            && self.gamma == other.gamma
            && same_custom
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
    /// `log_cosh`.
    pub const LogCosh: Loss = Loss::of(LossKind::LogCosh);
    /// `cosine_similarity` along the last axis (negative: -1 is the best).
    pub const CosineSimilarity: Loss = Loss::of(LossKind::CosineSimilarity);
    /// `binary_crossentropy` on probabilities.
    pub const BinaryCrossentropy: Loss = Loss::of(LossKind::BinaryCrossentropy);
    /// `binary_focal_crossentropy` on probabilities with gamma 2.0 (see
    /// [`Loss::binary_focal_crossentropy`]).
    pub const BinaryFocalCrossentropy: Loss = Loss::of(LossKind::BinaryFocalCrossentropy);
    /// `categorical_crossentropy` on probabilities, one-hot targets.
    pub const CategoricalCrossentropy: Loss = Loss::of(LossKind::CategoricalCrossentropy);
    /// `sparse_categorical_crossentropy` on probabilities, integer labels.
    pub const SparseCategoricalCrossentropy: Loss = Loss::of(LossKind::SparseCategoricalCrossentropy);
    /// `poisson`, on positive predictions (rates) against counts.
    pub const Poisson: Loss = Loss::of(LossKind::Poisson);
    /// `kl_divergence` (`kld`) between probability rows.
    pub const KLDivergence: Loss = Loss::of(LossKind::KLDivergence);
    /// `hinge`, targets -1/1 (or 0/1).
    pub const Hinge: Loss = Loss::of(LossKind::Hinge);
    /// `squared_hinge`, targets -1/1 (or 0/1).
    pub const SquaredHinge: Loss = Loss::of(LossKind::SquaredHinge);
    /// `categorical_hinge`, one-hot targets.
    pub const CategoricalHinge: Loss = Loss::of(LossKind::CategoricalHinge);

    const fn of(kind: LossKind) -> Loss {
        Loss { kind, from_logits: false, delta: 1.0, gamma: 2.0, custom: None }
    }

    /// A loss of your own (see [`CustomLoss`]), for `compile`, custom loops and metrics.
    pub fn custom(loss: &'static dyn CustomLoss) -> Loss {
        Loss { custom: Some(loss), ..Loss::of(LossKind::Custom) }
    }

    /// Errors, naming the ways to give one, when the loss is a custom one with no gradient for
    /// rows of `width` values and has not opted into the approximate one.
    pub(crate) fn check_gradient(&self, width: usize) -> crate::error::Result<()> {
        let Some(c) = self.custom else { return Ok(()) };
        let (p, y, mut g) = (vec![0.5f32; width], vec![0.5f32; width], vec![0.0f32; width]);
        if c.approximate_gradient() || c.gradient(&p, &y, &mut g) {
            return Ok(());
        }
        Err(crate::error::Error::invalid(
            "loss",
            format!(
                "custom loss `{}` gives no gradient: write its `gradient`, write it as math with \
                 #[kiln::loss] (its exact gradient is generated), or opt into one derived by central \
                 differences (accurate to about 1e-3) with `fn approximate_gradient(&self) -> bool {{ true }}`",
                c.name()
            ),
        ))
    }

    /// The row width a custom loss reads, when it reads one only.
    pub(crate) fn custom_width(&self) -> Option<usize> {
        self.custom.and_then(|c| c.width())
    }

    /// Every name [`Loss::from_name`] lists: Keras' function names, then its class names.
    pub const NAMES: [&'static str; 31] = [
        "mean_squared_error",
        "mse",
        "mean_absolute_error",
        "mae",
        "huber",
        "log_cosh",
        "cosine_similarity",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "poisson",
        "kl_divergence",
        "kld",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "Huber",
        "LogCosh",
        "CosineSimilarity",
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "Poisson",
        "KLDivergence",
        "Hinge",
        "SquaredHinge",
        "CategoricalHinge",
    ];

    /// Resolves a Keras loss name (`"mse"`, `"categorical_crossentropy"`, `"Huber"`, ...), with
    /// Keras' default arguments.
    pub fn from_name(name: &str) -> Result<Loss> {
        let kind = match name {
            "mean_squared_error" | "mse" | "MSE" | "MeanSquaredError" => LossKind::MeanSquaredError,
            "mean_absolute_error" | "mae" | "MAE" | "MeanAbsoluteError" => LossKind::MeanAbsoluteError,
            "huber" | "Huber" => LossKind::Huber,
            "log_cosh" | "LogCosh" => LossKind::LogCosh,
            "cosine_similarity" | "CosineSimilarity" => LossKind::CosineSimilarity,
            "binary_crossentropy" | "BinaryCrossentropy" => LossKind::BinaryCrossentropy,
            "binary_focal_crossentropy" | "BinaryFocalCrossentropy" => LossKind::BinaryFocalCrossentropy,
            "categorical_crossentropy" | "CategoricalCrossentropy" => LossKind::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
                LossKind::SparseCategoricalCrossentropy
            }
            "poisson" | "Poisson" => LossKind::Poisson,
            "kl_divergence" | "kld" | "KLD" | "KLDivergence" => LossKind::KLDivergence,
            "hinge" | "Hinge" => LossKind::Hinge,
            "squared_hinge" | "SquaredHinge" => LossKind::SquaredHinge,
            "categorical_hinge" | "CategoricalHinge" => LossKind::CategoricalHinge,
            _ if crate::optimizers::NAMES.contains(&name.to_ascii_lowercase().as_str()) => {
                return Err(crate::error::swapped(name, "an optimizer", "loss"));
            }
            _ => return Err(Error::UnknownName { kind: "loss", name: name.to_string(), valid: Self::NAMES.to_vec() }),
        };
        Ok(Loss::of(kind))
    }

    /// Huber loss with the given `delta` (Keras' default is 1.0).
    pub fn huber(delta: f32) -> Loss {
        Loss { delta, ..Loss::Huber }
    }

    /// Binary focal cross-entropy with the focusing parameter `gamma` (Keras' default is 2.0; 0
    /// is the binary cross-entropy). Keras' other arguments keep their defaults: no class
    /// balancing (`apply_class_balancing=False`, so `alpha` is unused) and no label smoothing;
    /// [`with_from_logits`](Self::with_from_logits) reads predictions as logits.
    pub fn binary_focal_crossentropy(gamma: f32) -> Loss {
        Loss { gamma, ..Loss::BinaryFocalCrossentropy }
    }

    /// Whether the model's outputs are logits rather than probabilities (cross-entropies only):
    /// Keras' `SparseCategoricalCrossentropy(from_logits=True)` is
    /// `Loss::SparseCategoricalCrossentropy.with_from_logits(true)`.
    pub fn with_from_logits(self, from_logits: bool) -> Loss {
        Loss { from_logits, ..self }
    }

    /// The formula.
    pub fn kind(&self) -> LossKind {
        self.kind
    }

    /// Whether predictions are read as logits (a getter; set it with
    /// [`with_from_logits`](Self::with_from_logits)).
    pub fn from_logits(&self) -> bool {
        self.from_logits
    }

    /// The focusing parameter of the binary focal cross-entropy (2.0 unless set).
    pub fn gamma(&self) -> f32 {
        self.gamma
    }

    /// Keras' function name, e.g. `mean_squared_error`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            LossKind::MeanSquaredError => "mean_squared_error",
            LossKind::MeanAbsoluteError => "mean_absolute_error",
            LossKind::Huber => "huber",
            LossKind::LogCosh => "log_cosh",
            LossKind::CosineSimilarity => "cosine_similarity",
            LossKind::BinaryCrossentropy => "binary_crossentropy",
            LossKind::BinaryFocalCrossentropy => "binary_focal_crossentropy",
            LossKind::CategoricalCrossentropy => "categorical_crossentropy",
            LossKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            LossKind::Poisson => "poisson",
            LossKind::KLDivergence => "kl_divergence",
            LossKind::Hinge => "hinge",
            LossKind::SquaredHinge => "squared_hinge",
            LossKind::CategoricalHinge => "categorical_hinge",
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
                            "row {row} has label {}, but sparse_categorical_crossentropy needs integer labels in 0..{width} for a model with {width} outputs",
                            crate::error::read_as(l)
                        ));
                    }
                }
                LossKind::BinaryCrossentropy
                | LossKind::BinaryFocalCrossentropy
                | LossKind::CategoricalCrossentropy => {
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
        let yw = self.target_width(width);
        // Read once for the whole batch, as Keras does.
        let signs = self.hinge_signs(&y[..n * yw]);
        let mut total = 0.0f64;
        for r in 0..n {
            let w = weights[r / per];
            let (pr, yr) = (&p[r * width..(r + 1) * width], &y[r * yw..(r + 1) * yw]);
            let row = grad.as_deref_mut().map(|g| &mut g[r * width..(r + 1) * width]);
            let l = match row {
                Some(g) => {
                    let l = self.rows(pr, yr, 1, width, Some(&mut *g), fused_softmax, signs) as f32;
                    let scale = w / n as f32;
                    g.iter_mut().for_each(|v| *v *= scale);
                    l
                }
                None => self.rows(pr, yr, 1, width, None, false, signs) as f32,
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
        let signs = self.hinge_signs(&y[..(n * self.target_width(width)).min(y.len())]);
        self.rows(p, y, n, width, grad, fused_softmax, signs) as f32
    }

    /// Whether `hinge` and `squared_hinge` read these targets as 0/1 labels, to map to -1/1:
    /// Keras does when every target of the batch is 0 or 1, and takes them as they are otherwise.
    fn hinge_signs(&self, y: &[f32]) -> bool {
        matches!(self.kind, LossKind::Hinge | LossKind::SquaredHinge) && y.iter().all(|v| *v == 0.0 || *v == 1.0)
    }

    /// The mean loss over `n` rows, and its gradient into `grad`; `zero_one` says whether the
    /// hinges map 0/1 targets to -1/1 (see [`hinge_signs`](Self::hinge_signs)).
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        p: &[f32],
        y: &[f32],
        n: usize,
        width: usize,
        grad: Option<&mut [f32]>,
        fused_softmax: bool,
        zero_one: bool,
    ) -> f64 {
        let (delta, gamma) = (self.delta, self.gamma);
        let sign = |y: f32| if zero_one { 2.0 * y - 1.0 } else { y };
        match self.kind {
            LossKind::MeanSquaredError => elementwise(p, y, n, width, grad, regression::squared_error),
            LossKind::MeanAbsoluteError => elementwise(p, y, n, width, grad, regression::absolute_error),
            LossKind::Huber => elementwise(p, y, n, width, grad, |p, y| regression::huber(p, y, delta)),
            LossKind::LogCosh => elementwise(p, y, n, width, grad, regression::log_cosh),
            LossKind::CosineSimilarity => by_row(p, y, n, width, width, grad, regression::cosine_similarity),
            LossKind::BinaryCrossentropy if self.from_logits => {
                elementwise(p, y, n, width, grad, probabilistic::binary_crossentropy_logits)
            }
            LossKind::BinaryCrossentropy => elementwise(p, y, n, width, grad, probabilistic::binary_crossentropy),
            LossKind::BinaryFocalCrossentropy if self.from_logits => {
                elementwise(p, y, n, width, grad, |z, y| probabilistic::binary_focal_logits(z, y, gamma))
            }
            LossKind::BinaryFocalCrossentropy => {
                elementwise(p, y, n, width, grad, |p, y| probabilistic::binary_focal(p, y, gamma))
            }
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                let (sparse, logits) = (self.is_sparse(), self.from_logits);
                by_row(p, y, n, width, self.target_width(width), grad, |p, y, g| {
                    probabilistic::categorical_crossentropy(p, y, g, sparse, logits, fused_softmax)
                })
            }
            LossKind::Poisson => elementwise(p, y, n, width, grad, probabilistic::poisson),
            LossKind::KLDivergence => by_row(p, y, n, width, width, grad, probabilistic::kl_divergence),
            LossKind::Hinge => elementwise(p, y, n, width, grad, |p, y| hinge::hinge(p, sign(y))),
            LossKind::SquaredHinge => elementwise(p, y, n, width, grad, |p, y| hinge::squared_hinge(p, sign(y))),
            LossKind::CategoricalHinge => by_row(p, y, n, width, width, grad, hinge::categorical_hinge),
            LossKind::Custom => match self.custom {
                Some(custom) => custom::rows(custom, p, y, n, width, grad),
                None => f64::NAN,
            },
        }
    }
}

/// The mean over `n` rows of `width` of a loss that averages one element's loss over the last
/// axis; `f(p, y)` is an element's loss and its derivative with respect to `p`. Writes d(mean
/// loss)/d(p) into `grad`.
fn elementwise(
    p: &[f32],
    y: &[f32],
    n: usize,
    width: usize,
    mut grad: Option<&mut [f32]>,
    f: impl Fn(f32, f32) -> (f32, f32),
) -> f64 {
    let scale = 1.0 / n as f32 / width as f32;
    let mut total = 0.0f64;
    for (i, (pv, yv)) in p.iter().zip(y).enumerate() {
        let (l, g) = f(*pv, *yv);
        total += l as f64;
        if let Some(g_out) = grad.as_deref_mut() {
            g_out[i] = g * scale;
        }
    }
    total / (n * width) as f64
}

/// The mean over `n` rows of a loss that reduces each row to one value; `f(p, y, g)` is a row's
/// loss against its `target_width` targets, and writes the row's gradient into `g` when given.
/// Writes d(mean loss)/d(p) into `grad`.
fn by_row(
    p: &[f32],
    y: &[f32],
    n: usize,
    width: usize,
    target_width: usize,
    mut grad: Option<&mut [f32]>,
    mut f: impl FnMut(&[f32], &[f32], Option<&mut [f32]>) -> f32,
) -> f64 {
    let inv_n = 1.0 / n as f32;
    let mut total = 0.0f64;
    for r in 0..n {
        let (pr, yr) = (&p[r * width..(r + 1) * width], &y[r * target_width..(r + 1) * target_width]);
        match grad.as_deref_mut() {
            Some(g) => {
                let gr = &mut g[r * width..(r + 1) * width];
                total += f(pr, yr, Some(&mut *gr)) as f64;
                gr.iter_mut().for_each(|v| *v *= inv_n);
            }
            None => total += f(pr, yr, None) as f64,
        }
    }
    total / n as f64
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
        assert!(e.contains("SparseCategoricalCrossentropy") && e.contains("categorical_hinge"), "{e}");
    }

    #[test]
    fn every_listed_name_resolves_to_a_loss_of_that_name() {
        for name in Loss::NAMES {
            let loss = Loss::from_name(name).unwrap();
            assert_eq!(Loss::from_name(loss.name()).unwrap(), loss, "{name}");
        }
        assert_eq!(Loss::from_name("KLD").unwrap(), Loss::KLDivergence);
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
        // 0/1 labels are -1/1: margins 1 - (-1)(0.2) = 1.2 and 1 - 0.8 = 0.2, ...
        let hinge = Loss::Hinge.compute(&p, &y, 2, 2, None, false);
        assert!((hinge - (1.2 + 0.2 + 0.4 + 1.4) / 4.0).abs() < 1e-6, "{hinge}");
        // ... but not when another target of the batch is neither 0 nor 1.
        let hinge = Loss::Hinge.compute(&p, &[0.0, 1.0, 1.0, -1.0], 2, 2, None, false);
        assert!((hinge - (1.0 + 0.2 + 0.4 + 1.4) / 4.0).abs() < 1e-6, "{hinge}");
        let focal = Loss::binary_focal_crossentropy(0.0).compute(&p, &y, 2, 2, None, false);
        let bce = Loss::BinaryCrossentropy.compute(&p, &y, 2, 2, None, false);
        assert!((focal - bce).abs() < 1e-6, "{focal} {bce}");
    }

    #[test]
    fn weighted_hinge_reads_the_labels_of_the_whole_batch() {
        let (p, y) = ([0.2, 0.8, 0.6, 0.4], [0.0, 1.0, 1.0, -1.0]);
        let plain = Loss::Hinge.compute(&p, &y, 2, 2, None, false);
        let weighted = Loss::Hinge.compute_weighted(&p, &y, 2, 2, &[1.0, 1.0], None, false);
        assert!((plain - weighted).abs() < 1e-7, "{plain} {weighted}");
    }

    #[test]
    fn sparse_labels_out_of_range_are_rejected() {
        let e = Loss::SparseCategoricalCrossentropy.check_targets(&[1.0, 10.0], 10, "y").unwrap_err().to_string();
        assert!(e.contains("row 1 has label 10") && e.contains("0..10"), "{e}");
    }
}
