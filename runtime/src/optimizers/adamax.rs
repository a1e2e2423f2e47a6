use super::{Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`: Adam with the
/// infinity norm in place of the second moment.
///
/// Per step t: `m += (g - m)(1 - β₁)`, `u = max(β₂ u, |g|)`, `w -= lr m / ((1 - β₁ᵗ)(u + ε))`.
#[derive(Clone, Debug)]
pub struct Adamax {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the infinity norm.
    pub beta_2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    iterations: u64,
    slots: Slots,
}

impl Adamax {
    /// Adamax with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Adamax { learning_rate, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, iterations: 0, slots: Slots::default() }
    }
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax::new(0.001)
    }
}

impl Optimizer for Adamax {
    super::basics!("adamax");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("adamax", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("adamax", "beta_1", self.beta_1, Range::Fraction)?;
        check("adamax", "beta_2", self.beta_2, Range::Fraction)?;
        check("adamax", "epsilon", self.epsilon, Range::Positive)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        // Keras 3's form: `w -= lr m / ((1 - β₁ᵗ)(u + ε))`, `1 - β₁` from β₁'s decimal.
        let (lr, t, c1) = (self.learning_rate, self.iterations.max(1) as f32, super::one_minus(b1));
        let correction = 1.0 - b1.powf(t);
        let state = self.slots.get(slot, 2, w.len(), 0.0);
        let (m, u) = state.split_at_mut(1);
        for (((w, g), m), u) in w.iter_mut().zip(g).zip(m[0].iter_mut()).zip(u[0].iter_mut()) {
            *m += (g - *m) * c1;
            *u = (b2 * *u).max(g.abs());
            *w -= lr * *m / (correction * (*u + eps));
        }
    }
}
