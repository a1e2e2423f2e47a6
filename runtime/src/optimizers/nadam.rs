use super::{Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`: Adam with
/// Nesterov momentum and Keras' momentum schedule `μₜ = β₁ (1 - ½ · 0.96ᵗ)`.
///
/// Per step t, with `Πₜ = μ₁ ⋯ μₜ`: `m += (g - m)(1 - β₁)`, `v += (g² - v)(1 - β₂)`,
/// `m̂ = μₜ₊₁ m / (1 - Πₜ μₜ₊₁) + (1 - μₜ) g / (1 - Πₜ)`, `v̂ = v / (1 - β₂ᵗ)`,
/// `w -= lr m̂ / (√v̂ + ε)`. The running product `Πₜ` is part of the saved state.
#[derive(Clone, Debug)]
pub struct Nadam {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    iterations: u64,
    /// `Πₜ`, the product of the momentum schedule up to the current step.
    u_product: f32,
    slots: Slots,
}

impl Nadam {
    /// Nadam with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Nadam {
            learning_rate,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            iterations: 0,
            u_product: 1.0,
            slots: Slots::default(),
        }
    }

    /// `μₜ`, the momentum at step t.
    fn mu(&self, t: u64) -> f32 {
        self.beta_1 * (1.0 - 0.5 * 0.96f32.powf(t as f32))
    }
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam::new(0.001)
    }
}

impl Optimizer for Nadam {
    super::basics!("nadam");
    fn check(&self) -> Result<()> {
        check("nadam", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("nadam", "beta_1", self.beta_1, Range::Fraction)?;
        check("nadam", "beta_2", self.beta_2, Range::Fraction)?;
        check("nadam", "epsilon", self.epsilon, Range::Positive)
    }

    fn begin_step(&mut self) {
        self.iterations += 1;
        self.u_product *= self.mu(self.iterations);
    }
    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let t = self.iterations.max(1);
        let (u_t, u_next) = (self.mu(t), self.mu(t + 1));
        let (prod, prod_next) = (self.u_product, self.u_product * u_next);
        let (lr, b1, b2, eps) = (self.learning_rate, self.beta_1, self.beta_2, self.epsilon);
        let b2_power = 1.0 - b2.powf(t as f32);
        let (cm, cg) = (u_next / (1.0 - prod_next), (1.0 - u_t) / (1.0 - prod));
        let state = self.slots.get(slot, 2, w.len(), 0.0);
        let (m, v) = state.split_at_mut(1);
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m[0].iter_mut()).zip(v[0].iter_mut()) {
            *m += (g - *m) * (1.0 - b1);
            *v += (g * g - *v) * (1.0 - b2);
            let m_hat = cm * *m + cg * g;
            let v_hat = *v / b2_power;
            *w -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    /// The momentum product travels as a one-element array in front of the moments.
    fn state(&self) -> OptimizerState {
        let mut arrays = Vec::with_capacity(self.slots.arrays.len() + 1);
        arrays.push(vec![self.u_product]);
        arrays.extend(self.slots.arrays.iter().cloned());
        OptimizerState { iterations: self.iterations, arrays }
    }
    fn load_state(&mut self, state: OptimizerState) {
        self.iterations = state.iterations;
        let mut arrays = state.arrays.into_iter();
        self.u_product = match arrays.next() {
            Some(p) if p.len() == 1 => p[0],
            // No saved product (a fresh state): recompute it from the step count.
            _ => (1..=self.iterations).map(|t| self.mu(t)).product(),
        };
        self.slots.arrays = arrays.collect();
    }
    fn save_state_into(&self, into: &mut OptimizerState) {
        into.iterations = self.iterations;
        into.arrays.resize(self.slots.arrays.len() + 1, Vec::new());
        into.arrays[0].clear();
        into.arrays[0].push(self.u_product);
        into.arrays[1..].iter_mut().zip(&self.slots.arrays).for_each(|(a, b)| a.clone_from(b));
    }
    fn restore_state(&mut self, from: &OptimizerState) {
        self.iterations = from.iterations;
        self.u_product = from.arrays[0][0];
        let rest = &from.arrays[1..];
        self.slots.arrays.resize(rest.len(), Vec::new());
        self.slots.arrays.iter_mut().zip(rest).for_each(|(a, b)| a.clone_from(b));
    }
    fn visit_slot_state(&self, slot: usize, f: &mut dyn FnMut(&[f32])) {
        self.slots.visit(slot, f)
    }
}
