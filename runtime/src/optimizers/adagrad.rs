use super::{Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)`:
/// `a += g²`, `w -= lr · g / √(a + ε)`.
#[derive(Clone, Debug)]
pub struct Adagrad {
    /// Step size.
    pub learning_rate: f32,
    /// Starting value of the accumulators.
    pub initial_accumulator_value: f32,
    /// Inside the square root.
    pub epsilon: f32,
    iterations: u64,
    slots: Slots,
}

impl Adagrad {
    /// Adagrad with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Adagrad { learning_rate, initial_accumulator_value: 0.1, epsilon: 1e-7, iterations: 0, slots: Slots::default() }
    }
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad::new(0.001)
    }
}

impl Optimizer for Adagrad {
    super::basics!("adagrad");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("adagrad", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("adagrad", "initial_accumulator_value", self.initial_accumulator_value, Range::NonNegative)?;
        check("adagrad", "epsilon", self.epsilon, Range::Positive)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let (lr, eps) = (self.learning_rate, self.epsilon);
        let acc = &mut self.slots.get(slot, 1, w.len(), self.initial_accumulator_value)[0];
        for ((w, g), a) in w.iter_mut().zip(g).zip(acc.iter_mut()) {
            *a += g * g;
            *w -= lr * g / (*a + eps).sqrt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_matches_the_formula() {
        let mut o = Adagrad::default();
        let mut w = [1.0f32];
        o.begin_step();
        o.update(0, &mut w, &[0.3]);
        let want = 1.0 - 0.001 * 0.3 / (0.1f64 + 0.09 + 1e-7).sqrt();
        assert!((w[0] as f64 - want).abs() < 1e-6, "{} vs {want}", w[0]);
    }
}
