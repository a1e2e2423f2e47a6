//! Regression losses: the element-wise errors (squared, absolute, Huber, log-cosh), each an
//! element's loss and its derivative with respect to the prediction `p` (averaged over the last
//! axis by the caller), and the cosine similarity of a row.

use std::f32::consts::LN_2;

/// `(p - y)²`.
pub(super) fn squared_error(p: f32, y: f32) -> (f32, f32) {
    let e = p - y;
    (e * e, 2.0 * e)
}

/// `|p - y|`, with derivative 0 where `p = y`.
pub(super) fn absolute_error(p: f32, y: f32) -> (f32, f32) {
    let e = p - y;
    (e.abs(), e.signum() * (e != 0.0) as u8 as f32)
}

/// `½e²` for `|e| ≤ delta`, `delta (|e| - ½delta)` beyond, with `e = p - y`.
pub(super) fn huber(p: f32, y: f32, delta: f32) -> (f32, f32) {
    let e = p - y;
    if e.abs() <= delta { (0.5 * e * e, e) } else { (delta * (e.abs() - 0.5 * delta), delta * e.signum()) }
}

/// `ln cosh(e)` with `e = p - y`, computed as Keras does, `e + softplus(-2e) - ln 2`, which stays
/// finite where `cosh` overflows; its derivative is `tanh(e)`.
pub(super) fn log_cosh(p: f32, y: f32) -> (f32, f32) {
    let e = p - y;
    (e + softplus(-2.0 * e) - LN_2, e.tanh())
}

/// `ln(1 + eˣ)`, without overflow.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Keras' l2 normalisation factor: `1 / ‖x‖`, at most `1 / ε` (so a zero row stays zero), and
/// whether it is `1 / ‖x‖` (then it depends on `x`).
fn inverse_norm(x: &[f32]) -> (f32, bool) {
    let inv = 1.0 / x.iter().map(|v| v * v).sum::<f32>().sqrt();
    let cap = 1.0 / super::EPSILON;
    if inv <= cap { (inv, true) } else { (cap, false) }
}

/// `-Σ ŷ p̂` over the row, where `ŷ` and `p̂` are `y` and `p` l2-normalised (Keras' negative
/// cosine similarity: -1 when they point the same way, 0 when either is zero). With `p̂ = p / ‖p‖`,
/// d/dp = `-(ŷ - (ŷ·p̂) p̂) / ‖p‖`; where the norm is capped (`‖p‖ < ε`) it is the constant `1/ε`
/// and d/dp = `-ŷ / ε`.
pub(super) fn cosine_similarity(p: &[f32], y: &[f32], grad: Option<&mut [f32]>) -> f32 {
    let ((ip, varies), (iy, _)) = (inverse_norm(p), inverse_norm(y));
    let cos: f32 = p.iter().zip(y).map(|(p, y)| (y * iy) * (p * ip)).sum();
    if let Some(g) = grad {
        for ((g, p), y) in g.iter_mut().zip(p).zip(y) {
            let (y_hat, p_hat) = (y * iy, p * ip);
            *g = if varies { -ip * (y_hat - cos * p_hat) } else { -ip * y_hat };
        }
    }
    -cos
}
