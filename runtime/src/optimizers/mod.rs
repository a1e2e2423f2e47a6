//! Optimizers with Keras 3's update rules and default hyper-parameters.
//!
//! An optimizer updates one parameter array at a time, identified by a `slot` (the parameter's
//! position in the model's traversal order), and keeps its per-slot state (moments, velocities)
//! itself. Each update is one fused pass over the parameter, its gradient and its state.

/// The `Optimizer` methods that read `name`, `learning_rate` and `iterations` fields as they are.
macro_rules! basics {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }
        fn learning_rate(&self) -> f32 {
            self.learning_rate
        }
        fn set_learning_rate(&mut self, lr: f32) {
            self.learning_rate = lr;
        }
        fn iterations(&self) -> u64 {
            self.iterations
        }
        fn clone_box(&self) -> Box<dyn Optimizer> {
            Box::new(self.clone())
        }
    };
}

/// A step counter and per-slot state arrays (`slots`) as the whole resumable state.
macro_rules! slot_state {
    () => {
        fn begin_step(&mut self) {
            self.iterations += 1;
        }
        fn state(&self) -> OptimizerState {
            OptimizerState { iterations: self.iterations, arrays: self.slots.arrays.clone() }
        }
        fn load_state(&mut self, state: OptimizerState) {
            self.iterations = state.iterations;
            self.slots.arrays = state.arrays;
        }
        fn save_state_into(&self, into: &mut OptimizerState) {
            into.iterations = self.iterations;
            into.arrays.clone_from(&self.slots.arrays);
        }
        fn restore_state(&mut self, from: &OptimizerState) {
            self.iterations = from.iterations;
            self.slots.arrays.clone_from(&from.arrays);
        }
        fn visit_slot_state(&self, slot: usize, f: &mut dyn FnMut(&[f32])) {
            self.slots.visit(slot, f)
        }
    };
}
/// The `Optimizer` methods a wrapper (`Clipped`, `Scheduled`) hands to its `inner` optimizer.
macro_rules! delegate_to_inner {
    () => {
        fn name(&self) -> &'static str {
            self.inner.name()
        }
        fn learning_rate(&self) -> f32 {
            self.inner.learning_rate()
        }
        fn set_learning_rate(&mut self, lr: f32) {
            self.inner.set_learning_rate(lr)
        }
        fn iterations(&self) -> u64 {
            self.inner.iterations()
        }
        fn update(&mut self, slot: usize, value: &mut [f32], grad: &[f32]) {
            self.inner.update(slot, value, grad)
        }
        fn update_shaped(&mut self, slot: usize, value: &mut [f32], grad: &[f32], shape: &[usize]) {
            self.inner.update_shaped(slot, value, grad, shape)
        }
        fn clone_box(&self) -> Box<dyn Optimizer> {
            Box::new(self.clone())
        }
        fn state(&self) -> OptimizerState {
            self.inner.state()
        }
        fn load_state(&mut self, state: OptimizerState) {
            self.inner.load_state(state)
        }
        fn save_state_into(&self, into: &mut OptimizerState) {
            self.inner.save_state_into(into)
        }
        fn restore_state(&mut self, from: &OptimizerState) {
            self.inner.restore_state(from)
        }
        fn visit_slot_state(&self, slot: usize, f: &mut dyn FnMut(&[f32])) {
            self.inner.visit_slot_state(slot, f)
        }
        fn updates_out_of_place(&self) -> bool {
            self.inner.updates_out_of_place()
        }
        fn update_into(&mut self, slot: usize, w: &[f32], new_w: &mut [f32], g: &[f32], shape: &[usize]) -> super::Checked {
            self.inner.update_into(slot, w, new_w, g, shape)
        }
        fn commit_step(&mut self) {
            self.inner.commit_step()
        }
        fn abandon_step(&mut self) {
            self.inner.abandon_step()
        }
    };
}
use {basics, delegate_to_inner, slot_state};

mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod clip;
mod lion;
mod nadam;
mod rmsprop;
mod schedule;
mod sgd;

pub use adafactor::Adafactor;
pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use adamax::Adamax;
pub use clip::{Clip, Clipped, Clipping};
pub use lion::Lion;
pub use nadam::Nadam;
pub use rmsprop::RmsProp;
pub use schedule::{
    CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay, LearningRateSchedule, PiecewiseConstantDecay,
    PolynomialDecay, Scheduled,
};
pub use sgd::Sgd;

use crate::error::{Error, Result};

/// An optimizer: `compile` takes one by name (`"adam"`) or as a value (`Adam::new(1e-3)`).
pub trait Optimizer: std::fmt::Debug + Send + Sync {
    /// Keras' name (`adam`, `sgd`, ...).
    fn name(&self) -> &'static str;
    /// The current learning rate.
    fn learning_rate(&self) -> f32;
    /// Changes the learning rate (schedules, callbacks).
    fn set_learning_rate(&mut self, lr: f32);
    /// How many steps have begun.
    fn iterations(&self) -> u64;
    /// Starts a training step; every [`update`](Self::update) until the next call belongs to it.
    fn begin_step(&mut self);
    /// Updates parameter `slot` given its gradient.
    fn update(&mut self, slot: usize, value: &mut [f32], grad: &[f32]);
    /// [`update`](Self::update) knowing the parameter's shape, which `fit` and `apply` pass
    /// (Adafactor factors the last two axes); the default ignores it.
    fn update_shaped(&mut self, slot: usize, value: &mut [f32], grad: &[f32], _shape: &[usize]) {
        self.update(slot, value, grad)
    }
    /// A boxed copy, state included (models are `Clone`).
    fn clone_box(&self) -> Box<dyn Optimizer>;
    /// The step count and per-parameter state (moments, velocities), for checkpoints.
    fn state(&self) -> OptimizerState;
    /// Restores what [`state`](Self::state) returned, so training resumes exactly.
    fn load_state(&mut self, state: OptimizerState);
    /// Copies the state into `into`, reusing its buffers: what a refused step puts back. The
    /// default goes through [`state`](Self::state).
    fn save_state_into(&self, into: &mut OptimizerState) {
        *into = self.state();
    }
    /// Puts back a state copied by [`save_state_into`](Self::save_state_into). The default goes
    /// through [`load_state`](Self::load_state).
    fn restore_state(&mut self, from: &OptimizerState) {
        self.load_state(from.clone())
    }
    /// Calls `f` with each state array kept for parameter `slot` (Adam: its two moments), so that
    /// a step which would leave one non-finite is refused naming the parameter. The default
    /// visits none: an optimizer of your own that keeps state should visit it.
    fn visit_slot_state(&self, _slot: usize, _f: &mut dyn FnMut(&[f32])) {}
    /// Whether the optimizer updates out of place ([`update_into`](Self::update_into)): a step
    /// then writes new weights and state beside the current ones and makes them current only
    /// when every value is finite, at no extra cost. Otherwise (the default) a step copies the
    /// weights and the state first, to put back if it must be refused.
    fn updates_out_of_place(&self) -> bool {
        false
    }
    /// Updates parameter `slot` out of place: reads the weights `w`, writes the new ones into
    /// `new_w`, writes the new state into spare buffers of its own (the current state stays
    /// current until [`commit_step`](Self::commit_step)), and reports a NaN or infinite new
    /// weight or state value. Called only when [`updates_out_of_place`](Self::updates_out_of_place);
    /// the default updates a copy in place.
    fn update_into(&mut self, slot: usize, w: &[f32], new_w: &mut [f32], g: &[f32], shape: &[usize]) -> Checked {
        new_w.copy_from_slice(w);
        self.update_shaped(slot, new_w, g, shape);
        match crate::kernels::first_non_finite(new_w) {
            Some(i) => Err((false, new_w[i])),
            None => Ok(()),
        }
    }
    /// Makes the state every [`update_into`](Self::update_into) of this step wrote current.
    fn commit_step(&mut self) {}
    /// Forgets the step begun by [`begin_step`](Self::begin_step) whose updates were
    /// [`update_into`](Self::update_into)'s: the state and the step count are those before it.
    fn abandon_step(&mut self) {}
    /// Checks every hyper-parameter against its valid range; `compile` and `apply` call it, so a
    /// negative learning rate or a beta of 1 is an error naming the parameter, never a silent
    /// divergence. The default checks the learning rate.
    fn check(&self) -> Result<()> {
        check(self.name(), "learning_rate", self.learning_rate(), Range::NonNegative)
    }
    /// How gradients are clipped before the update (Keras' `clipnorm`, `global_clipnorm`,
    /// `clipvalue`; see [`Clip`]). None by default.
    fn clipping(&self) -> Clipping {
        Clipping::default()
    }
}

/// `1 - x` as Keras 3 forms it where `x` is a hyper-parameter held as a Python float (Adam's and
/// Adamax' `1 - self.beta_1`, RMSprop's `1 - rho`): in double precision from the decimal the
/// user wrote, rounded to f32 where it meets a tensor. kiln holds `x` as an f32, whose decimal
/// is recovered as the shortest one that rounds to it: `one_minus(0.999)` is f32(0.001), where
/// `1.0 - 0.999f32` is 0.00099998713, a bias that moved whole training runs away from Keras.
/// (Optimizers that cast the hyper-parameter to the variable's dtype first, as Keras' Lion and
/// Nadam do, subtract in f32 instead.)
pub(crate) fn one_minus(x: f32) -> f32 {
    let mut scale = 1.0f64;
    for _ in 0..10 {
        scale *= 10.0;
        let decimal = (x as f64 * scale).round() / scale;
        if decimal as f32 == x {
            return (1.0 - decimal) as f32;
        }
    }
    (1.0 - x as f64) as f32
}

/// The valid range of a hyper-parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Range {
    /// Finite and >= 0 (learning rates, weight decay).
    NonNegative,
    /// Finite and > 0 (epsilon).
    Positive,
    /// In [0, 1) (betas, rho, momentum).
    Fraction,
}

/// Checks one hyper-parameter of optimizer `opt`.
pub(crate) fn check(opt: &str, name: &'static str, value: f32, range: Range) -> Result<()> {
    let (ok, text) = match range {
        Range::NonNegative => (value.is_finite() && value >= 0.0, "finite and >= 0"),
        Range::Positive => (value.is_finite() && value > 0.0, "finite and > 0"),
        Range::Fraction => ((0.0..1.0).contains(&value), "in [0, 1)"),
    };
    if ok { Ok(()) } else { Err(Error::invalid(name, format!("{opt}'s {name} must be {text}, got {value}"))) }
}

/// What [`Optimizer::update_into`] found: `Err((in_state, value))` when a new weight (`false`)
/// or a new state value (`true`) is NaN or infinite.
pub type Checked = std::result::Result<(), (bool, f32)>;

/// An optimizer's resumable state: the step count and its state arrays, in slot order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Steps taken.
    pub iterations: u64,
    /// State arrays (for Adam: each parameter's first then second moment).
    pub arrays: Vec<Vec<f32>>,
}

impl Clone for Box<dyn Optimizer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Anything `compile` accepts as an optimizer: a name or an optimizer value.
pub trait IntoOptimizer {
    /// Resolves to a boxed optimizer.
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>>;
}

impl<O: Optimizer + 'static> IntoOptimizer for O {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        Ok(Box::new(self))
    }
}

impl IntoOptimizer for &str {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        from_name(self)
    }
}

impl IntoOptimizer for Box<dyn Optimizer> {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        Ok(self)
    }
}

/// Every optimizer name [`from_name`] accepts (case-insensitive, as in Keras).
pub const NAMES: [&str; 9] = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "adamax", "lion", "adafactor"];

/// Resolves an optimizer name to one with Keras' default hyper-parameters.
pub fn from_name(name: &str) -> Result<Box<dyn Optimizer>> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "sgd" => Box::new(Sgd::default()),
        "adam" => Box::new(Adam::default()),
        "adamw" => Box::new(AdamW::default()),
        "rmsprop" => Box::new(RmsProp::default()),
        "adagrad" => Box::new(Adagrad::default()),
        "nadam" => Box::new(Nadam::default()),
        "adamax" => Box::new(Adamax::default()),
        "lion" => Box::new(Lion::default()),
        "adafactor" => Box::new(Adafactor::default()),
        _ if crate::losses::Loss::from_name(name).is_ok() => return Err(crate::error::swapped(name, "a loss", "optimizer")),
        _ => return Err(Error::UnknownName { kind: "optimizer", name: name.to_string(), valid: NAMES.to_vec() }),
    })
}

/// Per-slot state arrays, created at a slot's first update and reused after; and, for updates
/// out of place, spare arrays the next state is written into, swapped in by `commit`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    pub arrays: Vec<Vec<f32>>,
    /// Arrays per slot (the `k` of the last [`get`](Self::get)).
    per: usize,
    spare: Vec<Vec<f32>>,
    /// The slots written by `pair` since the last `commit` or `abandon`.
    touched: Vec<usize>,
}

impl Slots {
    /// The state of `slot` (`len` values per array, `k` arrays), zero-filled (or `init`) at first use.
    pub fn get(&mut self, slot: usize, k: usize, len: usize, init: f32) -> &mut [Vec<f32>] {
        self.per = k;
        let start = slot * k;
        if self.arrays.len() < start + k {
            self.arrays.resize(start + k, Vec::new());
        }
        for a in &mut self.arrays[start..start + k] {
            if a.len() != len {
                *a = vec![init; len];
            }
        }
        &mut self.arrays[start..start + k]
    }

    /// The current state of `slot` and spare arrays to write its next state into (see
    /// [`get`](Self::get)); `commit` makes them current.
    pub fn pair(&mut self, slot: usize, k: usize, len: usize, init: f32) -> (&[Vec<f32>], &mut [Vec<f32>]) {
        self.get(slot, k, len, init);
        let start = slot * k;
        if self.spare.len() < start + k {
            self.spare.resize(start + k, Vec::new());
        }
        for a in &mut self.spare[start..start + k] {
            if a.len() != len {
                *a = vec![0.0; len];
            }
        }
        self.touched.push(slot);
        (&self.arrays[start..start + k], &mut self.spare[start..start + k])
    }

    /// The spare arrays of `slot`, as the last `pair` left them.
    pub fn spare_of(&self, slot: usize) -> &[Vec<f32>] {
        let start = slot * self.per;
        self.spare.get(start..start + self.per).unwrap_or(&[])
    }

    /// Makes the spare arrays of the slots written since the last commit current.
    pub fn commit(&mut self) {
        for slot in self.touched.drain(..) {
            for i in slot * self.per..(slot + 1) * self.per {
                std::mem::swap(&mut self.arrays[i], &mut self.spare[i]);
            }
        }
    }

    /// Forgets what was written into the spare arrays.
    pub fn abandon(&mut self) {
        self.touched.clear();
    }

    /// Calls `f` with each state array of `slot` (none before its first update).
    pub fn visit(&self, slot: usize, f: &mut dyn FnMut(&[f32])) {
        let start = slot * self.per;
        self.arrays.iter().skip(start).take(self.per).for_each(|a| f(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_keras_defaults() {
        for n in NAMES {
            assert_eq!(from_name(n).unwrap().name(), n);
        }
        assert_eq!(from_name("Adam").unwrap().learning_rate(), 0.001);
        assert_eq!(from_name("sgd").unwrap().learning_rate(), 0.01);
        let e = from_name("adamm").unwrap_err().to_string();
        assert!(e.contains("unknown optimizer `adamm`") && e.contains("rmsprop"), "{e}");
    }

    /// Updating out of place (what a training step does) gives the bits updating in place gives,
    /// state included; an abandoned step leaves the state and step count as they were.
    #[test]
    fn out_of_place_updates_are_the_in_place_ones() {
        let mut rms = RmsProp::default();
        (rms.centered, rms.momentum) = (true, 0.5);
        let optimizers: Vec<Box<dyn Optimizer>> = vec![
            Box::new(Sgd::new(0.1)),
            Box::new(Sgd::new(0.1).momentum(0.9)),
            Box::new(Sgd::new(0.1).momentum(0.9).nesterov(true)),
            Box::new(RmsProp::default()),
            Box::new(rms),
            Box::new(Adam::default()),
            Box::new(AdamW::default()),
        ];
        let grads = [[0.1f32, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2]];
        for mut a in optimizers {
            assert!(a.updates_out_of_place(), "{}", a.name());
            let mut b = a.clone();
            let (mut wa, mut wb) = ([0.5f32, -1.0, 2.0], vec![0.5f32, -1.0, 2.0]);
            for g in grads {
                a.begin_step();
                a.update(0, &mut wa, &g);
                b.begin_step();
                let mut new = vec![0.0; 3];
                b.update_into(0, &wb, &mut new, &g, &[3]).unwrap();
                b.commit_step();
                wb = new;
                // A step begun and abandoned changes nothing.
                let kept = b.state();
                b.begin_step();
                b.update_into(0, &wb, &mut [0.0; 3], &[f32::INFINITY; 3], &[3]).unwrap_err();
                b.abandon_step();
                assert_eq!(b.state(), kept, "{}", a.name());
            }
            assert_eq!(wa.map(f32::to_bits).to_vec(), wb.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{}", a.name());
            assert_eq!(a.state(), b.state(), "{}", a.name());
        }
    }

    /// Python's `1 - 0.999` is 0.0010000000000000009, f32(0.001) once it meets a tensor.
    #[test]
    fn one_minus_is_formed_from_the_decimal_as_keras_forms_it() {
        assert_eq!(one_minus(0.999), 0.001f32);
        assert_eq!(one_minus(0.9), 0.1f32);
        assert_ne!(1.0 - 0.999f32, 0.001f32, "the f32 subtraction Keras does not do");
        assert_eq!(one_minus(0.95), (1.0f64 - 0.95) as f32);
        assert_eq!(one_minus(0.0), 1.0);
        assert_eq!(one_minus(0.1234568), (1.0 - 0.1234568f64) as f32);
        assert_eq!(one_minus(1e-12), 1.0, "no short decimal: from the f32 itself");
    }
}
