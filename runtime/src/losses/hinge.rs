//! Hinge losses, for classifiers that output scores: `hinge` and `squared_hinge` per element
//! (against -1/1 targets, the caller mapping 0/1 labels; averaged over the last axis by the
//! caller) and `categorical_hinge` per row against one-hot targets.
//!
//! Where a margin is exactly 0 the derivative is the one of its active side, as Keras' `maximum`
//! passes the gradient to its first argument on a tie.

/// `max(1 - y p, 0)`, with derivative `-y` where the margin `1 - y p` is not negative.
pub(super) fn hinge(p: f32, y: f32) -> (f32, f32) {
    let margin = 1.0 - y * p;
    if margin >= 0.0 { (margin, -y) } else { (0.0, 0.0) }
}

/// `max(1 - y p, 0)²`, with derivative `-2y max(1 - y p, 0)`.
pub(super) fn squared_hinge(p: f32, y: f32) -> (f32, f32) {
    let margin = (1.0 - y * p).max(0.0);
    (margin * margin, -2.0 * y * margin)
}

/// `max(neg - pos + 1, 0)` over the row, with `pos = Σ y p` (the target's score) and
/// `neg = max((1 - y) p)` (the best other score). Where the loss is active, d/dp = `-y` plus
/// `(1 - y)` on the arg-max of `neg`, shared equally between tied maxima as Keras' `max` shares
/// its gradient.
pub(super) fn categorical_hinge(p: &[f32], y: &[f32], grad: Option<&mut [f32]>) -> f32 {
    let pos: f32 = p.iter().zip(y).map(|(p, y)| y * p).sum();
    let other = |j: usize| (1.0 - y[j]) * p[j];
    let neg = (0..p.len()).map(other).fold(f32::NEG_INFINITY, f32::max);
    let margin = neg - pos + 1.0;
    if let Some(g) = grad {
        if margin >= 0.0 {
            let ties = (0..p.len()).filter(|&j| other(j) == neg).count() as f32;
            for (j, g) in g.iter_mut().enumerate() {
                let at_max = if other(j) == neg { (1.0 - y[j]) / ties } else { 0.0 };
                *g = at_max - y[j];
            }
        } else {
            g.fill(0.0);
        }
    }
    margin.max(0.0)
}
