use super::{Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Lion(learning_rate=0.001, beta_1=0.9, beta_2=0.99)`: a step of fixed size in the sign
/// of an interpolated momentum.
///
/// Per step: `w -= lr · sign(β₁ m + (1 - β₁) g)`, then `m = β₂ m + (1 - β₂) g`. Every step moves
/// each weight by exactly `lr` (or 0), so Lion usually wants a learning rate 3–10× smaller than
/// Adam's.
#[derive(Clone, Debug)]
pub struct Lion {
    /// Step size.
    pub learning_rate: f32,
    /// Interpolation between momentum and gradient for the step.
    pub beta_1: f32,
    /// Decay of the momentum.
    pub beta_2: f32,
    iterations: u64,
    slots: Slots,
}

impl Lion {
    /// Lion with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Lion { learning_rate, beta_1: 0.9, beta_2: 0.99, iterations: 0, slots: Slots::default() }
    }

    /// With other betas.
    pub fn betas(mut self, beta_1: f32, beta_2: f32) -> Self {
        self.beta_1 = beta_1;
        self.beta_2 = beta_2;
        self
    }
}

impl Default for Lion {
    fn default() -> Self {
        Lion::new(0.001)
    }
}

impl Optimizer for Lion {
    super::basics!("lion");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("lion", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("lion", "beta_1", self.beta_1, Range::Fraction)?;
        check("lion", "beta_2", self.beta_2, Range::Fraction)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let (lr, b1, b2) = (self.learning_rate, self.beta_1, self.beta_2);
        let m = &mut self.slots.get(slot, 1, w.len(), 0.0)[0];
        for ((w, g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
            let c = *m * b1 + g * (1.0 - b1);
            // sign(0) is 0, as in Keras: a weight whose interpolated momentum is zero stays put.
            let s = if c > 0.0 {
                1.0
            } else if c < 0.0 {
                -1.0
            } else {
                0.0
            };
            *w -= lr * s;
            *m = *m * b2 + g * (1.0 - b2);
        }
    }
}
