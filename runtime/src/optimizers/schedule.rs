//! Keras' learning-rate schedules: the learning rate as a function of the optimizer's step count,
//! and [`Scheduled`], the optimizer that follows one.
//!
//! ```ignore
//! let adam = Scheduled::new(Adam::default(), CosineDecay::new(1e-3, 10_000).warmup(1e-2, 500));
//! model.compile("sparse_categorical_crossentropy", adam, &["accuracy"])?;
//! ```

use std::f64::consts::PI;
use std::sync::Arc;

use super::{Optimizer, OptimizerState};
use crate::error::{Error, Result};

/// A learning rate that depends on the step (Keras' `LearningRateSchedule`).
pub trait LearningRateSchedule: std::fmt::Debug + Send + Sync {
    /// The learning rate for step `step` (0 for the first update).
    fn at(&self, step: u64) -> f32;
    /// Checks the parameters (finite, in range), with an error naming the one that is not.
    fn check(&self) -> Result<()>;
}

fn finite(what: &'static str, name: &str, v: f64, positive: bool) -> Result<()> {
    if v.is_finite() && (!positive || v > 0.0) && v >= 0.0 {
        Ok(())
    } else {
        let range = if positive { "finite and > 0" } else { "finite and >= 0" };
        Err(Error::invalid(what, format!("{name} must be {range}, got {v}")))
    }
}

/// `ExponentialDecay(initial, decay_steps, decay_rate, staircase=False)`:
/// `initial · decay_rate^(step / decay_steps)`.
#[derive(Clone, Debug)]
pub struct ExponentialDecay {
    initial: f64,
    steps: f64,
    rate: f64,
    staircase: bool,
}

impl ExponentialDecay {
    /// The schedule, without a staircase.
    pub fn new(initial: f64, decay_steps: u64, decay_rate: f64) -> Self {
        ExponentialDecay { initial, steps: decay_steps as f64, rate: decay_rate, staircase: false }
    }
    /// Decay in whole steps of `decay_steps`.
    pub fn staircase(mut self, on: bool) -> Self {
        self.staircase = on;
        self
    }
}

impl LearningRateSchedule for ExponentialDecay {
    fn at(&self, step: u64) -> f32 {
        let mut p = step as f64 / self.steps;
        if self.staircase {
            p = p.floor();
        }
        (self.initial * self.rate.powf(p)) as f32
    }
    fn check(&self) -> Result<()> {
        finite("ExponentialDecay", "initial_learning_rate", self.initial, false)?;
        finite("ExponentialDecay", "decay_steps", self.steps, true)?;
        finite("ExponentialDecay", "decay_rate", self.rate, false)
    }
}

/// `PiecewiseConstantDecay(boundaries, values)`: `values[0]` up to `boundaries[0]` (included),
/// then `values[1]`, ..., `values[n]` after the last boundary.
#[derive(Clone, Debug)]
pub struct PiecewiseConstantDecay {
    boundaries: Vec<u64>,
    values: Vec<f64>,
}

impl PiecewiseConstantDecay {
    /// One more value than boundaries, boundaries increasing.
    pub fn new(boundaries: &[u64], values: &[f64]) -> Self {
        PiecewiseConstantDecay { boundaries: boundaries.to_vec(), values: values.to_vec() }
    }
}

impl LearningRateSchedule for PiecewiseConstantDecay {
    fn at(&self, step: u64) -> f32 {
        let i = self.boundaries.iter().position(|&b| step <= b).unwrap_or(self.boundaries.len());
        self.values.get(i).copied().unwrap_or(0.0) as f32
    }
    fn check(&self) -> Result<()> {
        if self.values.len() != self.boundaries.len() + 1 || self.boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "PiecewiseConstantDecay",
                format!(
                    "needs increasing boundaries and one more value than boundaries, got {} boundaries and {} values",
                    self.boundaries.len(),
                    self.values.len()
                ),
            ));
        }
        self.values.iter().try_for_each(|v| finite("PiecewiseConstantDecay", "values", *v, false))
    }
}

/// `PolynomialDecay(initial, decay_steps, end_learning_rate=1e-4, power=1.0, cycle=False)`.
#[derive(Clone, Debug)]
pub struct PolynomialDecay {
    initial: f64,
    steps: f64,
    end: f64,
    power: f64,
    cycle: bool,
}

impl PolynomialDecay {
    /// Linear decay to 1e-4 over `decay_steps`, Keras' defaults.
    pub fn new(initial: f64, decay_steps: u64) -> Self {
        PolynomialDecay { initial, steps: decay_steps as f64, end: 1e-4, power: 1.0, cycle: false }
    }
    /// The rate reached after `decay_steps`.
    pub fn end_learning_rate(mut self, end: f64) -> Self {
        self.end = end;
        self
    }
    /// The polynomial's power.
    pub fn power(mut self, power: f64) -> Self {
        self.power = power;
        self
    }
    /// Start again past `decay_steps`, over a multiple of it.
    pub fn cycle(mut self, on: bool) -> Self {
        self.cycle = on;
        self
    }
}

impl LearningRateSchedule for PolynomialDecay {
    fn at(&self, step: u64) -> f32 {
        let mut s = step as f64;
        let mut steps = self.steps;
        if self.cycle {
            let m = if s == 0.0 { 1.0 } else { (s / steps).ceil() };
            steps *= m;
        } else {
            s = s.min(steps);
        }
        ((self.initial - self.end) * (1.0 - s / steps).powf(self.power) + self.end) as f32
    }
    fn check(&self) -> Result<()> {
        finite("PolynomialDecay", "initial_learning_rate", self.initial, false)?;
        finite("PolynomialDecay", "decay_steps", self.steps, true)?;
        finite("PolynomialDecay", "end_learning_rate", self.end, false)?;
        finite("PolynomialDecay", "power", self.power, false)
    }
}

/// `InverseTimeDecay(initial, decay_steps, decay_rate, staircase=False)`:
/// `initial / (1 + decay_rate · step / decay_steps)`.
#[derive(Clone, Debug)]
pub struct InverseTimeDecay {
    initial: f64,
    steps: f64,
    rate: f64,
    staircase: bool,
}

impl InverseTimeDecay {
    /// The schedule, without a staircase.
    pub fn new(initial: f64, decay_steps: u64, decay_rate: f64) -> Self {
        InverseTimeDecay { initial, steps: decay_steps as f64, rate: decay_rate, staircase: false }
    }
    /// Decay in whole steps of `decay_steps`.
    pub fn staircase(mut self, on: bool) -> Self {
        self.staircase = on;
        self
    }
}

impl LearningRateSchedule for InverseTimeDecay {
    fn at(&self, step: u64) -> f32 {
        let mut p = step as f64 / self.steps;
        if self.staircase {
            p = p.floor();
        }
        (self.initial / (1.0 + self.rate * p)) as f32
    }
    fn check(&self) -> Result<()> {
        finite("InverseTimeDecay", "initial_learning_rate", self.initial, false)?;
        finite("InverseTimeDecay", "decay_steps", self.steps, true)?;
        finite("InverseTimeDecay", "decay_rate", self.rate, false)
    }
}

/// `CosineDecay(initial, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0)`: an
/// optional linear warm-up from `initial` to `warmup_target`, then a half cosine down to
/// `alpha` times the peak over `decay_steps`.
#[derive(Clone, Debug)]
pub struct CosineDecay {
    initial: f64,
    steps: f64,
    alpha: f64,
    warmup: Option<(f64, f64)>,
}

impl CosineDecay {
    /// Decay from `initial` to 0 over `decay_steps`.
    pub fn new(initial: f64, decay_steps: u64) -> Self {
        CosineDecay { initial, steps: decay_steps as f64, alpha: 0.0, warmup: None }
    }
    /// The fraction of the peak the decay ends at.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
    /// A linear warm-up to `target` over `steps` steps before the decay.
    pub fn warmup(mut self, target: f64, steps: u64) -> Self {
        self.warmup = Some((target, steps as f64));
        self
    }
}

impl LearningRateSchedule for CosineDecay {
    fn at(&self, step: u64) -> f32 {
        let s = step as f64;
        let (peak, warm) = self.warmup.unwrap_or((self.initial, 0.0));
        if self.warmup.is_some() && s < warm {
            return (self.initial + (peak - self.initial) * s / warm) as f32;
        }
        let s = (s - warm).min(self.steps);
        let cosine = 0.5 * (1.0 + (PI * s / self.steps).cos());
        (peak * ((1.0 - self.alpha) * cosine + self.alpha)) as f32
    }
    fn check(&self) -> Result<()> {
        finite("CosineDecay", "initial_learning_rate", self.initial, false)?;
        finite("CosineDecay", "decay_steps", self.steps, true)?;
        finite("CosineDecay", "alpha", self.alpha, false)?;
        if let Some((t, s)) = self.warmup {
            finite("CosineDecay", "warmup_target", t, false)?;
            finite("CosineDecay", "warmup_steps", s, true)?;
        }
        Ok(())
    }
}

/// `CosineDecayRestarts(initial, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0)`: cosine
/// decays that restart, each period `t_mul` times longer and peaking `m_mul` times lower.
#[derive(Clone, Debug)]
pub struct CosineDecayRestarts {
    initial: f64,
    first: f64,
    t_mul: f64,
    m_mul: f64,
    alpha: f64,
}

impl CosineDecayRestarts {
    /// Keras' defaults: periods doubling, peaks unchanged, decaying to 0.
    pub fn new(initial: f64, first_decay_steps: u64) -> Self {
        CosineDecayRestarts { initial, first: first_decay_steps as f64, t_mul: 2.0, m_mul: 1.0, alpha: 0.0 }
    }
    /// How much longer each period is.
    pub fn t_mul(mut self, v: f64) -> Self {
        self.t_mul = v;
        self
    }
    /// How much lower each peak is.
    pub fn m_mul(mut self, v: f64) -> Self {
        self.m_mul = v;
        self
    }
    /// The fraction of the peak each decay ends at.
    pub fn alpha(mut self, v: f64) -> Self {
        self.alpha = v;
        self
    }
}

impl LearningRateSchedule for CosineDecayRestarts {
    fn at(&self, step: u64) -> f32 {
        let mut fraction = step as f64 / self.first;
        let restarts = if self.t_mul == 1.0 {
            let i = fraction.floor();
            fraction -= i;
            i
        } else {
            let i = ((1.0 - fraction * (1.0 - self.t_mul)).ln() / self.t_mul.ln()).floor();
            let done = (1.0 - self.t_mul.powf(i)) / (1.0 - self.t_mul);
            fraction = (fraction - done) / self.t_mul.powf(i);
            i
        };
        let cosine = 0.5 * self.m_mul.powf(restarts) * (1.0 + (PI * fraction).cos());
        (self.initial * ((1.0 - self.alpha) * cosine + self.alpha)) as f32
    }
    fn check(&self) -> Result<()> {
        finite("CosineDecayRestarts", "initial_learning_rate", self.initial, false)?;
        finite("CosineDecayRestarts", "first_decay_steps", self.first, true)?;
        finite("CosineDecayRestarts", "t_mul", self.t_mul, true)?;
        finite("CosineDecayRestarts", "m_mul", self.m_mul, false)?;
        finite("CosineDecayRestarts", "alpha", self.alpha, false)
    }
}

/// An optimizer whose learning rate follows a schedule: before each step it sets the rate to
/// `schedule.at(step)`, as Keras does with `learning_rate=<a schedule>`. Its state is the inner
/// optimizer's (the step count is in it), so a checkpoint resumes the schedule where it was.
#[derive(Clone, Debug)]
pub struct Scheduled<O: Optimizer + Clone> {
    inner: O,
    schedule: Arc<dyn LearningRateSchedule>,
}

impl<O: Optimizer + Clone> Scheduled<O> {
    /// `inner` with its learning rate from `schedule`.
    pub fn new(inner: O, schedule: impl LearningRateSchedule + 'static) -> Self {
        Scheduled { inner, schedule: Arc::new(schedule) }
    }
}

impl<O: Optimizer + Clone + 'static> Optimizer for Scheduled<O> {
    super::delegate_to_inner!();
    fn begin_step(&mut self) {
        self.inner.set_learning_rate(self.schedule.at(self.inner.iterations()));
        self.inner.begin_step();
    }
    fn check(&self) -> Result<()> {
        self.schedule.check()?;
        self.inner.check()
    }
    fn clipping(&self) -> super::Clipping {
        self.inner.clipping()
    }
}
