use super::{Checked, Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)`.
///
/// `v = ρ v + (1 - ρ) g²`; `w -= lr · g / √(v + ε)` (centred: `√(v - ḡ² + ε)` with `ḡ` the running
/// mean of g); with momentum the increment feeds a velocity first.
///
/// kiln applies this dense formula to every weight, an `Embedding`'s included: the rows of ids
/// absent from a batch get a zero gradient, so their `v` decays too. Keras on TensorFlow hands an
/// Embedding's gradient to the optimizer as sparse `IndexedSlices` and updates it otherwise, so
/// a model with an Embedding trained with RMSprop drifts from Keras' run in that layer; the other
/// layers follow Keras exactly.
#[derive(Clone, Debug)]
pub struct RmsProp {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the squared-gradient average.
    pub rho: f32,
    /// Momentum on the increments.
    pub momentum: f32,
    /// Inside the square root.
    pub epsilon: f32,
    /// Normalise by the variance rather than the second moment.
    pub centered: bool,
    iterations: u64,
    slots: Slots,
}

impl RmsProp {
    /// RMSprop with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        RmsProp {
            learning_rate,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            iterations: 0,
            slots: Slots::default(),
        }
    }
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp::new(0.001)
    }
}

impl Optimizer for RmsProp {
    super::basics!("rmsprop");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("rmsprop", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("rmsprop", "rho", self.rho, Range::Fraction)?;
        check("rmsprop", "momentum", self.momentum, Range::Fraction)?;
        check("rmsprop", "epsilon", self.epsilon, Range::Positive)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let (lr, rho, mom, eps, centered) = (self.learning_rate, self.rho, self.momentum, self.epsilon, self.centered);
        // Keras 3's `1 - rho` is formed from rho's decimal (see `one_minus`).
        let c = super::one_minus(rho);
        let s = self.slots.get(slot, 3, w.len(), 0.0);
        let (v, rest) = s.split_at_mut(1);
        let (avg, vel) = rest.split_at_mut(1);
        let (v, avg, vel) = (&mut v[0], &mut avg[0], &mut vel[0]);
        for i in 0..w.len() {
            v[i] = rho * v[i] + c * (g[i] * g[i]);
            let mut denom = v[i];
            if centered {
                avg[i] = rho * avg[i] + c * g[i];
                denom -= avg[i] * avg[i];
            }
            let inc = lr * g[i] / (denom + eps).sqrt();
            if mom > 0.0 {
                vel[i] = mom * vel[i] + inc;
                w[i] -= vel[i];
            } else {
                w[i] -= inc;
            }
        }
    }

    // The same arithmetic, out of place (see `Optimizer::update_into`); the average and the
    // velocity are written only where they are used, as in place.
    fn updates_out_of_place(&self) -> bool {
        true
    }
    fn update_into(&mut self, slot: usize, w: &[f32], nw: &mut [f32], g: &[f32], _shape: &[usize]) -> Checked {
        let (lr, rho, mom, eps, centered) = (self.learning_rate, self.rho, self.momentum, self.epsilon, self.centered);
        let c = super::one_minus(rho);
        let (cur, spare) = self.slots.pair(slot, 3, w.len(), 0.0);
        let (v, avg, vel) = (&cur[0], &cur[1], &cur[2]);
        let (nv, rest) = spare.split_at_mut(1);
        let (navg, nvel) = rest.split_at_mut(1);
        let (nv, navg, nvel) = (&mut nv[0], &mut navg[0], &mut nvel[0]);
        let mut finite = true;
        for i in 0..w.len() {
            nv[i] = rho * v[i] + c * (g[i] * g[i]);
            let mut denom = nv[i];
            if centered {
                navg[i] = rho * avg[i] + c * g[i];
                denom -= navg[i] * navg[i];
                finite &= navg[i].is_finite();
            }
            let inc = lr * g[i] / (denom + eps).sqrt();
            if mom > 0.0 {
                nvel[i] = mom * vel[i] + inc;
                nw[i] = w[i] - nvel[i];
                finite &= nvel[i].is_finite();
            } else {
                nw[i] = w[i] - inc;
            }
            finite &= nv[i].is_finite() & nw[i].is_finite();
        }
        if finite {
            return Ok(());
        }
        let first = |a: &[f32]| a.iter().copied().find(|v| !v.is_finite());
        match first(nw) {
            Some(v) => Err((false, v)),
            None => Err((true, self.slots.spare_of(slot).iter().find_map(|a| first(a)).unwrap_or(f32::NAN))),
        }
    }
    fn commit_step(&mut self) {
        self.slots.commit();
    }
    fn abandon_step(&mut self) {
        self.slots.abandon();
        self.iterations -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_matches_the_formula() {
        let mut o = RmsProp::default();
        let mut w = [1.0f32];
        o.begin_step();
        o.update(0, &mut w, &[0.2]);
        let v = 0.1f64 * 0.04;
        let want = 1.0 - 0.001 * 0.2 / (v + 1e-7).sqrt();
        assert!((w[0] as f64 - want).abs() < 1e-6, "{} vs {want}", w[0]);
    }
}
