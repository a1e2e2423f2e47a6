use super::{Checked, Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`.
///
/// With momentum: `v = momentum·v - lr·g`, then `w += v` (or, with Nesterov,
/// `w += momentum·v - lr·g`).
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Step size.
    pub learning_rate: f32,
    /// Velocity decay; 0 is plain gradient descent.
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    iterations: u64,
    slots: Slots,
}

impl Sgd {
    /// Plain SGD with the given learning rate.
    pub fn new(learning_rate: f32) -> Self {
        Sgd { learning_rate, momentum: 0.0, nesterov: false, iterations: 0, slots: Slots::default() }
    }

    /// With momentum.
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// With Nesterov momentum.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd::new(0.01)
    }
}

impl Optimizer for Sgd {
    super::basics!("sgd");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("sgd", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("sgd", "momentum", self.momentum, Range::Fraction)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let lr = self.learning_rate;
        if self.momentum == 0.0 {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= lr * g;
            }
            return;
        }
        let (m, nesterov) = (self.momentum, self.nesterov);
        let v = &mut self.slots.get(slot, 1, w.len(), 0.0)[0];
        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
            *v = m * *v - lr * g;
            *w += if nesterov { m * *v - lr * g } else { *v };
        }
    }

    // The same arithmetic, out of place (see `Optimizer::update_into`).
    fn updates_out_of_place(&self) -> bool {
        true
    }
    fn update_into(&mut self, slot: usize, w: &[f32], nw: &mut [f32], g: &[f32], _shape: &[usize]) -> Checked {
        let lr = self.learning_rate;
        let mut finite = true;
        if self.momentum == 0.0 {
            for ((nw, w), g) in nw.iter_mut().zip(w).zip(g) {
                *nw = w - lr * g;
                finite &= nw.is_finite();
            }
            return if finite { Ok(()) } else { Err((false, nw.iter().copied().find(|v| !v.is_finite()).unwrap_or(f32::NAN))) };
        }
        let (m, nesterov) = (self.momentum, self.nesterov);
        let (cur, spare) = self.slots.pair(slot, 1, w.len(), 0.0);
        let (v, nv) = (&cur[0], &mut spare[0]);
        for ((((nw, w), g), v), nv) in nw.iter_mut().zip(w).zip(g).zip(v).zip(nv.iter_mut()) {
            *nv = m * v - lr * g;
            *nw = w + if nesterov { m * *nv - lr * g } else { *nv };
            finite &= nw.is_finite() & nv.is_finite();
        }
        if finite {
            return Ok(());
        }
        let first = |a: &[f32]| a.iter().copied().find(|v| !v.is_finite());
        match first(nw) {
            Some(v) => Err((false, v)),
            None => Err((true, first(&self.slots.spare_of(slot)[0]).unwrap_or(f32::NAN))),
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
    fn momentum_steps_match_hand_computation() {
        let mut o = Sgd::new(0.1).momentum(0.9);
        let mut w = [1.0f32];
        o.begin_step();
        o.update(0, &mut w, &[0.5]); // v = -0.05, w = 0.95
        o.begin_step();
        o.update(0, &mut w, &[0.5]); // v = -0.045 - 0.05 = -0.095, w = 0.855
        assert!((w[0] - 0.855).abs() < 1e-6, "{}", w[0]);
        let mut n = Sgd::new(0.1).momentum(0.9).nesterov(true);
        let mut w = [1.0f32];
        n.begin_step();
        n.update(0, &mut w, &[0.5]); // v = -0.05, w += 0.9·(-0.05) - 0.05 = 0.905
        assert!((w[0] - 0.905).abs() < 1e-6, "{}", w[0]);
    }
}
