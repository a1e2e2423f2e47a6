use super::{Optimizer, OptimizerState, Range, Slots, check};
use crate::error::Result;

/// Keras' `Adafactor(learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
/// clip_threshold=1.0, relative_step=True)`: second moments factored into row and column means
/// for weights of rank 2 and more (memory of `rows + cols` instead of `rows × cols`), a step
/// relative to the weight's RMS, and the update clipped by its own RMS.
///
/// Per step t: `ρ = min(lr, 1/√t)`, `α = max(ε₂, rms(w)) ρ`, `β = 1 - t^decay`; with `g² + ε₁`,
/// rank ≥ 2: `r = β r + (1-β) mean_last(g²)`, `c = β c + (1-β) mean_second_last(g²)`,
/// `v = (r / mean(r)) ⊗ c`; rank < 2: `v = β v + (1-β) g²`. Then `u = g / √v`,
/// `w -= α u / max(1, rms(u) / clip_threshold)`.
#[derive(Clone, Debug)]
pub struct Adafactor {
    /// Upper bound of the relative step.
    pub learning_rate: f32,
    /// Exponent of the second-moment decay, `β = 1 - t^decay`.
    pub beta_2_decay: f32,
    /// Added to the squared gradient.
    pub epsilon_1: f32,
    /// Smallest weight RMS the step is relative to.
    pub epsilon_2: f32,
    /// Largest RMS of the update.
    pub clip_threshold: f32,
    iterations: u64,
    slots: Slots,
    /// The unclipped update, reused across steps.
    scratch: Vec<f32>,
}

impl Adafactor {
    /// Adafactor with the given learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Adafactor {
            learning_rate,
            beta_2_decay: -0.8,
            epsilon_1: 1e-30,
            epsilon_2: 1e-3,
            clip_threshold: 1.0,
            iterations: 0,
            slots: Slots::default(),
            scratch: Vec::new(),
        }
    }
}

impl Default for Adafactor {
    fn default() -> Self {
        Adafactor::new(0.001)
    }
}

/// The root mean square, in f32 as Keras' `_rms` (in f64 the update lands units away from Keras').
fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

impl Optimizer for Adafactor {
    super::basics!("adafactor");
    super::slot_state!();

    fn check(&self) -> Result<()> {
        check("adafactor", "learning_rate", self.learning_rate, Range::NonNegative)?;
        check("adafactor", "epsilon_1", self.epsilon_1, Range::Positive)?;
        check("adafactor", "epsilon_2", self.epsilon_2, Range::Positive)?;
        check("adafactor", "clip_threshold", self.clip_threshold, Range::Positive)?;
        if !(self.beta_2_decay.is_finite() && self.beta_2_decay < 0.0) {
            return Err(crate::Error::invalid(
                "beta_2_decay",
                format!("adafactor's beta_2_decay must be finite and < 0, got {}", self.beta_2_decay),
            ));
        }
        Ok(())
    }

    fn update(&mut self, slot: usize, w: &mut [f32], g: &[f32]) {
        let shape = [w.len()];
        self.update_shaped(slot, w, g, &shape);
    }

    fn update_shaped(&mut self, slot: usize, w: &mut [f32], g: &[f32], shape: &[usize]) {
        let t = self.iterations.max(1) as f32;
        let rho = self.learning_rate.min(1.0 / t.sqrt());
        let alpha = self.epsilon_2.max(rms(w)) * rho;
        let beta = 1.0 - t.powf(self.beta_2_decay);
        let eps1 = self.epsilon_1;
        // State: rank ≥ 2 keeps r [.., rows] and c [.., cols] plus a scratch v; else v alone.
        let (cols, rows) = match shape {
            [.., r, c] => (*c, *r),
            _ => (0, 0),
        };
        let factored = shape.len() >= 2 && cols > 0 && rows > 0;
        let u = crate::layers::sized(&mut self.scratch, w.len());
        if factored {
            let blocks = w.len() / (rows * cols);
            // One state array per weight: the row means, then the column means.
            let state = &mut self.slots.get(slot, 1, blocks * (rows + cols), 0.0)[0];
            let (r, c) = state.split_at_mut(blocks * rows);
            for b in 0..blocks {
                let gb = &g[b * rows * cols..(b + 1) * rows * cols];
                let (rb, cb) = (&mut r[b * rows..(b + 1) * rows], &mut c[b * cols..(b + 1) * cols]);
                for i in 0..rows {
                    let mean = gb[i * cols..(i + 1) * cols].iter().map(|x| x * x + eps1).sum::<f32>() / cols as f32;
                    rb[i] = beta * rb[i] + (1.0 - beta) * mean;
                }
                for j in 0..cols {
                    let mean = (0..rows).map(|i| gb[i * cols + j] * gb[i * cols + j] + eps1).sum::<f32>() / rows as f32;
                    cb[j] = beta * cb[j] + (1.0 - beta) * mean;
                }
                let r_mean = rb.iter().sum::<f32>() / rows as f32;
                for (i, ri) in rb.iter().enumerate() {
                    for (j, cj) in cb.iter().enumerate() {
                        let k = b * rows * cols + i * cols + j;
                        u[k] = g[k] / (ri / r_mean * cj).sqrt();
                    }
                }
            }
        } else {
            let v = &mut self.slots.get(slot, 1, w.len(), 0.0)[0];
            for ((v, u), g) in v.iter_mut().zip(u.iter_mut()).zip(g) {
                *v = beta * *v + (1.0 - beta) * (g * g + eps1);
                *u = g / v.sqrt();
            }
        }
        // Keras' order: the update scaled down first, then times alpha.
        let d = 1.0f32.max(rms(u) / self.clip_threshold);
        for (w, u) in w.iter_mut().zip(u.iter()) {
            *w -= alpha * (u / d);
        }
    }
}
