use super::{Checked, Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)`.
///
/// Per step t: `m += (g - m)(1 - β₁)`, `v += (g² - v)(1 - β₂)`,
/// `w -= α m / (√v + ε)` with `α = lr √(1 - β₂ᵗ) / (1 - β₁ᵗ)` (Keras' form, with ε outside the
/// bias correction). With `amsgrad`, `v` is replaced by its running maximum. The constants are
/// formed as Keras 3 forms them: `α` in f32, `1 - β` from the decimal of β (f32(0.001) for
/// β₂ = 0.999, not `1 - 0.999f32`).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    /// Use the running maximum of the second moment.
    pub amsgrad: bool,
    iterations: u64,
    slots: Slots,
}

impl Adam {
    /// Adam with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Adam {
            learning_rate,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            iterations: 0,
            slots: Slots::default(),
        }
    }

    /// With the AMSGrad variant.
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// With Keras' `beta_1` (GANs are often trained with 0.5).
    pub fn beta_1(mut self, beta_1: f32) -> Self {
        self.beta_1 = beta_1;
        self
    }

    /// With Keras' `beta_2`.
    pub fn beta_2(mut self, beta_2: f32) -> Self {
        self.beta_2 = beta_2;
        self
    }

    /// One Adam step on `w`, shared with AdamW.
    fn step(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        // As Keras 3 computes them: the bias correction in f32 from the f32 betas, `1 - beta`
        // from the betas' decimals (see `one_minus`).
        let t = self.iterations.max(1) as f32;
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        let alpha = self.learning_rate * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
        let (c1, c2) = (super::one_minus(b1), super::one_minus(b2));
        let k = if self.amsgrad { 3 } else { 2 };
        let state = self.slots.get(slot, k, w.len(), 0.0);
        let (m, rest) = state.split_at_mut(1);
        let (v, vhat) = rest.split_at_mut(1);
        let (m, v) = (&mut m[0], &mut v[0]);
        if let Some(vhat) = vhat.first_mut() {
            for i in 0..w.len() {
                m[i] += (g[i] - m[i]) * c1;
                v[i] += (g[i] * g[i] - v[i]) * c2;
                vhat[i] = vhat[i].max(v[i]);
                w[i] -= alpha * m[i] / (vhat[i].sqrt() + eps);
            }
        } else {
            // One fused pass over weights, gradients and both moments; large tensors are split
            // across the threads (each element's arithmetic is the same either way).
            let parts = crate::kernels::parallel::threads().min(w.len() / PARALLEL_ELEMENTS).max(1);
            let per = w.len().div_ceil(parts);
            let mut items: [Option<Part<'_>>; MAX_THREADS] = std::array::from_fn(|_| None);
            let (mut w, mut g, mut m, mut v) = (w, g, &mut m[..], &mut v[..]);
            for item in items.iter_mut().take(parts) {
                let k = per.min(w.len());
                let (w0, w1) = std::mem::take(&mut w).split_at_mut(k);
                let (g0, g1) = g.split_at(k);
                let (m0, m1) = std::mem::take(&mut m).split_at_mut(k);
                let (v0, v1) = std::mem::take(&mut v).split_at_mut(k);
                *item = Some((w0, g0, m0, v0));
                (w, g, m, v) = (w1, g1, m1, v1);
            }
            crate::kernels::parallel::for_each_mut(&mut items[..parts], parts > 1, |item| {
                if let Some((w, g, m, v)) = item.take() {
                    adam_update(w, g, m, v, alpha, c1, c2, eps)
                }
            });
        }
    }
}

impl Adam {
    /// One Adam step on `w` written into `nw` and into the spare moments (see
    /// [`Optimizer::update_into`]), after AdamW's decay `w - w · wd · lr` when `decay` is given.
    fn step_into(&mut self, slot: usize, w: &[f32], nw: &mut [f32], g: &[f32], decay: Option<(f32, f32)>) -> Checked {
        let t = self.iterations.max(1) as f32;
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        let alpha = self.learning_rate * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
        let k = Coefficients { alpha, c1: super::one_minus(b1), c2: super::one_minus(b2), eps, decay };
        let (cur, spare) = self.slots.pair(slot, 2, w.len(), 0.0);
        let (m, v) = (&cur[0][..], &cur[1][..]);
        let (nm, nv) = spare.split_at_mut(1);
        let (nm, nv) = (&mut nm[0][..], &mut nv[0][..]);
        let parts = crate::kernels::parallel::threads().min(w.len() / PARALLEL_ELEMENTS).max(1);
        let per = w.len().div_ceil(parts);
        let mut items: [Option<(PartInto<'_>, bool)>; MAX_THREADS] = std::array::from_fn(|_| None);
        {
            let (mut w, mut nw, mut g, mut m, mut v, mut nm, mut nv) = (w, &mut nw[..], g, m, v, nm, nv);
            for item in items.iter_mut().take(parts) {
                let n = per.min(w.len());
                let (w0, w1) = w.split_at(n);
                let (nw0, nw1) = std::mem::take(&mut nw).split_at_mut(n);
                let (g0, g1) = g.split_at(n);
                let (m0, m1) = m.split_at(n);
                let (v0, v1) = v.split_at(n);
                let (nm0, nm1) = std::mem::take(&mut nm).split_at_mut(n);
                let (nv0, nv1) = std::mem::take(&mut nv).split_at_mut(n);
                *item = Some(((w0, nw0, g0, m0, v0, nm0, nv0), true));
                (w, nw, g, m, v, nm, nv) = (w1, nw1, g1, m1, v1, nm1, nv1);
            }
            crate::kernels::parallel::for_each_mut(&mut items[..parts], parts > 1, |item| {
                if let Some(((w, nw, g, m, v, nm, nv), ok)) = item {
                    adam_update_into(w, nw, g, m, v, nm, nv, &k, ok)
                }
            });
        }
        if items[..parts].iter().all(|i| i.as_ref().is_none_or(|(_, ok)| *ok)) {
            return Ok(());
        }
        // Rare: find the value to name.
        let first = |a: &[f32]| crate::kernels::first_non_finite(a).map(|i| a[i]);
        match first(nw) {
            Some(v) => Err((false, v)),
            None => Err((true, self.slots.spare_of(slot).iter().find_map(|a| first(a)).unwrap_or(f32::NAN))),
        }
    }
}

/// The constants of one Adam step, as Keras forms them.
struct Coefficients {
    alpha: f32,
    c1: f32,
    c2: f32,
    eps: f32,
    /// AdamW's weight decay and learning rate, applied first.
    decay: Option<(f32, f32)>,
}


/// One thread's share of an out-of-place update: weights, new weights, gradients, moments, new
/// moments.
type PartInto<'a> = (&'a [f32], &'a mut [f32], &'a [f32], &'a [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);

crate::kernels::simd::multiversion! {
    /// Adam's update of one part, out of place, noting in `ok` whether every new value is finite.
    #[allow(clippy::too_many_arguments)]
    fn adam_update_into(
        w: &[f32], nw: &mut [f32], g: &[f32], m: &[f32], v: &[f32], nm: &mut [f32], nv: &mut [f32],
        k: &Coefficients, ok: &mut bool,
    ) {
        let (alpha, c1, c2, eps) = (k.alpha, k.c1, k.c2, k.eps);
        let mut finite = true;
        for i in 0..w.len() {
            let w0 = match k.decay {
                Some((wd, lr)) => w[i] - w[i] * wd * lr,
                None => w[i],
            };
            let m1 = m[i] + (g[i] - m[i]) * c1;
            let v1 = v[i] + (g[i] * g[i] - v[i]) * c2;
            let w1 = w0 - alpha * m1 / (v1.sqrt() + eps);
            (nm[i], nv[i], nw[i]) = (m1, v1, w1);
            finite &= m1.is_finite() & v1.is_finite() & w1.is_finite();
        }
        *ok = finite;
    }
}

/// Tensors are split into parts of at least this many elements, one per thread.
const PARALLEL_ELEMENTS: usize = 1 << 16;

use crate::kernels::parallel::MAX_THREADS;

/// One thread's share of an update: weights, gradients, first and second moments.
type Part<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);

crate::kernels::simd::multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn adam_update(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], alpha: f32, c1: f32, c2: f32, eps: f32) {
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += (g - *m) * c1;
            *v += (g * g - *v) * c2;
            *w -= alpha * *m / (v.sqrt() + eps);
        }
    }
}

impl Default for Adam {
    fn default() -> Self {
        Adam::new(0.001)
    }
}

impl Optimizer for Adam {
    super::basics!("adam");
    super::slot_state!();
    fn check(&self) -> Result<()> {
        check("adam", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("adam", "beta_1", self.beta_1, Range::Fraction)?;
        check("adam", "beta_2", self.beta_2, Range::Fraction)?;
        check("adam", "epsilon", self.epsilon, Range::Positive)
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        self.step(slot, w, g);
    }
    fn updates_out_of_place(&self) -> bool {
        !self.amsgrad
    }
    fn update_into(&mut self, slot: usize, w: &[f32], new_w: &mut [f32], g: &[f32], _shape: &[usize]) -> Checked {
        self.step_into(slot, w, new_w, g, None)
    }
    fn commit_step(&mut self) {
        self.slots.commit();
    }
    fn abandon_step(&mut self) {
        self.slots.abandon();
        self.iterations -= 1;
    }
}

/// Keras' `AdamW(learning_rate=0.001, weight_decay=0.004, ...)`: Adam with decoupled weight decay,
/// `w -= w · weight_decay · lr` before each Adam step.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// The Adam part (learning rate, betas, epsilon, amsgrad).
    pub adam: Adam,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

impl AdamW {
    /// AdamW with the given learning rate and weight decay.
    pub fn new(learning_rate: f32, weight_decay: f32) -> Self {
        AdamW { adam: Adam::new(learning_rate), weight_decay }
    }
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW::new(0.001, 0.004)
    }
}

impl Optimizer for AdamW {
    fn check(&self) -> Result<()> {
        self.adam.check().map_err(|e| match e {
            crate::Error::InvalidArgument { name, reason } => {
                crate::Error::InvalidArgument { name, reason: reason.replacen("adam's", "adamw's", 1) }
            }
            other => other,
        })?;
        check("adamw", "weight_decay", self.weight_decay, Range::NonNegative)
    }

    fn name(&self) -> &'static str {
        "adamw"
    }
    fn learning_rate(&self) -> f32 {
        self.adam.learning_rate
    }
    fn set_learning_rate(&mut self, lr: f32) {
        self.adam.learning_rate = lr;
    }
    fn iterations(&self) -> u64 {
        self.adam.iterations
    }
    fn begin_step(&mut self) {
        self.adam.iterations += 1;
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
    fn state(&self) -> OptimizerState {
        self.adam.state()
    }
    fn load_state(&mut self, state: OptimizerState) {
        self.adam.load_state(state);
    }
    fn save_state_into(&self, into: &mut OptimizerState) {
        self.adam.save_state_into(into)
    }
    fn restore_state(&mut self, from: &OptimizerState) {
        self.adam.restore_state(from)
    }
    fn visit_slot_state(&self, slot: usize, f: &mut dyn FnMut(&[f32])) {
        self.adam.visit_slot_state(slot, f)
    }
    fn updates_out_of_place(&self) -> bool {
        self.adam.updates_out_of_place()
    }
    fn update_into(&mut self, slot: usize, w: &[f32], new_w: &mut [f32], g: &[f32], _shape: &[usize]) -> Checked {
        let decay = Some((self.weight_decay, self.adam.learning_rate));
        self.adam.step_into(slot, w, new_w, g, decay)
    }
    fn commit_step(&mut self) {
        self.adam.commit_step()
    }
    fn abandon_step(&mut self) {
        self.adam.abandon_step()
    }
    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        // Keras 3 (TensorFlow): `variable.assign_sub(variable * wd * lr)`, in that order.
        let (wd, lr) = (self.weight_decay, self.adam.learning_rate);
        for v in w.iter_mut() {
            *v -= *v * wd * lr;
        }
        self.adam.step(slot, w, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps of Adam computed by hand (in f64) from Keras' update rule.
    #[test]
    fn adam_steps_match_the_formula() {
        let mut o = Adam::default();
        let mut w = [0.5f32, -1.0];
        let gs = [[0.1f64, -0.2], [0.3, 0.05]];
        let (mut m, mut v, mut want) = ([0.0f64; 2], [0.0f64; 2], [0.5f64, -1.0]);
        for (t, g) in gs.iter().enumerate() {
            let t = t as i32 + 1;
            let alpha = 0.001 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
            for i in 0..2 {
                m[i] += (g[i] - m[i]) * 0.1;
                v[i] += (g[i] * g[i] - v[i]) * 0.001;
                want[i] -= alpha * m[i] / (v[i].sqrt() + 1e-7);
            }
            o.begin_step();
            o.update(0, &mut w, &[g[0] as f32, g[1] as f32]);
        }
        for i in 0..2 {
            assert!((w[i] as f64 - want[i]).abs() < 1e-7, "{} vs {}", w[i], want[i]);
        }
    }

    #[test]
    fn adamw_decays_before_the_adam_step() {
        let mut o = AdamW::new(0.1, 0.5);
        let mut w = [2.0f32];
        o.begin_step();
        o.update(0, &mut w, &[0.0]);
        // w·(1 - 0.5·0.1) = 1.9, and a zero gradient leaves Adam's step at zero.
        assert!((w[0] - 1.9).abs() < 1e-6, "{}", w[0]);
    }

    #[test]
    fn amsgrad_keeps_the_running_maximum() {
        let mut a = Adam::default().amsgrad(true);
        let mut b = Adam::default();
        let (mut wa, mut wb) = ([0.0f32], [0.0f32]);
        for g in [1.0, 0.01, 0.01] {
            a.begin_step();
            a.update(0, &mut wa, &[g]);
            b.begin_step();
            b.update(0, &mut wb, &[g]);
        }
        // With the large first gradient remembered, AMSGrad's later steps are smaller.
        assert!(wa[0] > wb[0]);
    }
}
