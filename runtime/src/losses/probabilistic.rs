//! Probabilistic losses: the cross-entropies (binary, binary focal, categorical and sparse), the
//! Poisson loss and the KL divergence. The element-wise ones return an element's loss and its
//! derivative with respect to the prediction (averaged over the last axis by the caller); the
//! others reduce a row and write its gradient.
//!
//! Probabilities are clipped as Keras clips them; where a prediction lies outside the clip range
//! the clipped term's derivative is 0.

use super::EPSILON;

/// `σ(z)`, without overflow.
fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

/// `-(y ln q + (1 - y) ln(1 - q))` with `q = p` clipped to `[ε, 1 - ε]`.
pub(super) fn binary_crossentropy(p: f32, y: f32) -> (f32, f32) {
    let q = p.clamp(EPSILON, 1.0 - EPSILON);
    let l = -(y * q.ln() + (1.0 - y) * (1.0 - q).ln());
    let inside = p > EPSILON && p < 1.0 - EPSILON;
    (l, if inside { (q - y) / (q * (1.0 - q)) } else { 0.0 })
}

/// The binary cross-entropy of `σ(z)`, from the logit `z` without clipping:
/// `max(z, 0) - z y + ln(1 + e^-|z|)`, with derivative `σ(z) - y`.
pub(super) fn binary_crossentropy_logits(z: f32, y: f32) -> (f32, f32) {
    let l = z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
    (l, sigmoid(z) - y)
}

/// The focal factor `(1 - p_t)^γ`, where `p_t = y p + (1 - y)(1 - p)` is the probability given
/// to the target (unclipped, as Keras computes it), and its derivative with respect to `p`,
/// `γ (1 - p_t)^(γ-1) (1 - 2y)`.
fn focal_factor(p: f32, y: f32, gamma: f32) -> (f32, f32) {
    let p_t = y * p + (1.0 - y) * (1.0 - p);
    let miss = 1.0 - p_t;
    let d = if gamma == 0.0 { 0.0 } else { gamma * miss.powf(gamma - 1.0) * (1.0 - 2.0 * y) };
    (miss.powf(gamma), d)
}

/// Binary focal cross-entropy on a probability: `(1 - p_t)^γ · bce(p, y)`, the cross-entropy
/// clipped as [`binary_crossentropy`] and the focal factor not.
pub(super) fn binary_focal(p: f32, y: f32, gamma: f32) -> (f32, f32) {
    let (bce, d_bce) = binary_crossentropy(p, y);
    let (f, d_f) = focal_factor(p, y, gamma);
    (f * bce, d_f * bce + f * d_bce)
}

/// Binary focal cross-entropy on a logit `z`: the focal factor of `p = σ(z)` times the
/// cross-entropy from the logit ([`binary_crossentropy_logits`], unclipped, as Keras computes it
/// when `from_logits` is set); d/dz chains the factor's derivative through `σ' = p(1 - p)`.
pub(super) fn binary_focal_logits(z: f32, y: f32, gamma: f32) -> (f32, f32) {
    let (bce, d_bce) = binary_crossentropy_logits(z, y);
    let p = sigmoid(z);
    let (f, d_f) = focal_factor(p, y, gamma);
    (f * bce, d_f * p * (1.0 - p) * bce + f * d_bce)
}

/// `p - y ln(p + ε)`, with derivative `1 - y / (p + ε)`: predictions are rates, targets counts.
pub(super) fn poisson(p: f32, y: f32) -> (f32, f32) {
    let q = p + EPSILON;
    (p - y * q.ln(), 1.0 - y / q)
}

/// `Σ y ln(y / p)` over the row with both clipped to `[ε, 1]`; d/dp = `-y / p` inside the clip
/// range, its ends included (Keras' clip passes the gradient there), 0 outside.
pub(super) fn kl_divergence(p: &[f32], y: &[f32], mut grad: Option<&mut [f32]>) -> f32 {
    let mut total = 0.0f32;
    for (j, (pv, yv)) in p.iter().zip(y).enumerate() {
        let (q, t) = (pv.clamp(EPSILON, 1.0), yv.clamp(EPSILON, 1.0));
        total += t * (t / q).ln();
        if let Some(g) = grad.as_deref_mut() {
            g[j] = if (EPSILON..=1.0).contains(pv) { -t / q } else { 0.0 };
        }
    }
    total
}

/// The categorical cross-entropy of one row: `-Σ y ln q` against one-hot (or soft) targets, or
/// `-ln q[label]` with `sparse` (`y` is then the one label). `q` is the row normalised to sum 1
/// and clipped to `[ε, 1 - ε]`, or with `logits` the softmax of the row; with `fused_softmax` the
/// row is a softmax's output and the gradient is with respect to its input (`p Σy - y`).
pub(super) fn categorical_crossentropy(
    pr: &[f32],
    y: &[f32],
    grad: Option<&mut [f32]>,
    sparse: bool,
    logits: bool,
    fused_softmax: bool,
) -> f32 {
    let width = pr.len();
    // One-hot targets are read in place; a sparse label indexes them.
    let label = if sparse { y[0] as usize } else { usize::MAX };
    let t = |j: usize| if sparse { (j == label) as u8 as f32 } else { y[j] };
    let t_sum: f32 = if sparse { 1.0 } else { y.iter().sum() };
    if logits {
        let max = pr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + pr.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
        if let Some(gr) = grad {
            for (j, g) in gr.iter_mut().enumerate() {
                *g = (pr[j] - lse).exp() * t_sum - t(j);
            }
        }
        (0..width).map(|j| t(j) * (lse - pr[j])).sum::<f32>()
    } else {
        let s: f32 = pr.iter().sum();
        let q = |j: usize| (pr[j] / s).clamp(EPSILON, 1.0 - EPSILON);
        if let Some(gr) = grad {
            for (j, g) in gr.iter_mut().enumerate() {
                *g = if fused_softmax {
                    pr[j] * t_sum - t(j)
                } else {
                    let own = if pr[j] / s > EPSILON { -t(j) / pr[j] } else { 0.0 };
                    own + t_sum / s
                };
            }
        }
        (0..width).map(|j| -t(j) * q(j).ln()).sum::<f32>()
    }
}
