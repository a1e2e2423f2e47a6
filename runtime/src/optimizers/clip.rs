//! Gradient clipping on any optimizer, as Keras' `clipnorm`, `global_clipnorm` and `clipvalue`
//! optimizer arguments: `Adam::default().clipnorm(1.0)`.

use super::{Optimizer, OptimizerState};
use crate::error::{Error, Result};

/// How an optimizer clips gradients before using them (none by default). Applied in Keras'
/// order: each weight's gradient to norm `norm`, then all of them together to `global_norm`,
/// then each value to `[-value, value]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clipping {
    /// Keras' `clipnorm`: each weight's gradient rescaled to at most this L2 norm.
    pub norm: Option<f32>,
    /// Keras' `global_clipnorm`: all gradients rescaled together to at most this L2 norm.
    pub global_norm: Option<f32>,
    /// Keras' `clipvalue`: every gradient value clamped to `[-value, value]`.
    pub value: Option<f32>,
}

impl Clipping {
    /// Whether it clips anything.
    pub fn is_none(&self) -> bool {
        *self == Clipping::default()
    }

    /// Scales and clamps one weight's gradient in place (`global` is the factor of the global norm).
    pub(crate) fn apply(&self, grad: &mut [f32], global: f32) {
        if let Some(max) = self.norm {
            let norm = grad.iter().map(|g| (*g as f64) * (*g as f64)).sum::<f64>().sqrt() as f32;
            if norm > max {
                grad.iter_mut().for_each(|g| *g = *g * max / norm);
            }
        }
        if global != 1.0 {
            grad.iter_mut().for_each(|g| *g *= global);
        }
        if let Some(v) = self.value {
            grad.iter_mut().for_each(|g| *g = g.clamp(-v, v));
        }
    }

    /// The factor of `global_norm` given the sum of squares of every (norm-clipped) gradient.
    pub(crate) fn global_factor(&self, sum_of_squares: f64) -> f32 {
        match self.global_norm {
            Some(max) => {
                let norm = sum_of_squares.sqrt() as f32;
                if norm > max { max / norm } else { 1.0 }
            }
            None => 1.0,
        }
    }

    fn check(&self) -> Result<()> {
        for (name, v) in [("clipnorm", self.norm), ("global_clipnorm", self.global_norm), ("clipvalue", self.value)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(Error::invalid(name, format!("must be finite and > 0, got {v}")));
            }
        }
        if self.norm.is_some() && self.global_norm.is_some() {
            return Err(Error::invalid(
                "clipnorm",
                "only one of clipnorm and global_clipnorm can be set (as in Keras)",
            ));
        }
        Ok(())
    }
}

/// An optimizer that clips gradients before its update (see [`Clip`]).
#[derive(Clone, Debug)]
pub struct Clipped<O: Optimizer + Clone> {
    inner: O,
    clip: Clipping,
}

/// `clipnorm`, `global_clipnorm` and `clipvalue` on every optimizer.
pub trait Clip: Optimizer + Clone + Sized {
    /// Keras' `clipnorm`.
    fn clipnorm(self, max: f32) -> Clipped<Self>;
    /// Keras' `global_clipnorm`.
    fn global_clipnorm(self, max: f32) -> Clipped<Self>;
    /// Keras' `clipvalue`.
    fn clipvalue(self, max: f32) -> Clipped<Self>;
}

macro_rules! clip_methods {
    () => {
        fn clipnorm(self, max: f32) -> Clipped<Self> {
            let mut c = Clipped::wrap(self);
            c.clip.norm = Some(max);
            c
        }
        fn global_clipnorm(self, max: f32) -> Clipped<Self> {
            let mut c = Clipped::wrap(self);
            c.clip.global_norm = Some(max);
            c
        }
        fn clipvalue(self, max: f32) -> Clipped<Self> {
            let mut c = Clipped::wrap(self);
            c.clip.value = Some(max);
            c
        }
    };
}

impl<O: Optimizer + Clone> Clipped<O> {
    fn wrap(inner: O) -> Self {
        Clipped { inner, clip: Clipping::default() }
    }
}

impl<O: Optimizer + Clone + 'static> Clip for O {
    clip_methods!();
}

impl<O: Optimizer + Clone + 'static> Optimizer for Clipped<O> {
    super::delegate_to_inner!();
    fn begin_step(&mut self) {
        self.inner.begin_step()
    }
    fn check(&self) -> Result<()> {
        self.clipping().check()?;
        self.inner.check()
    }
    fn clipping(&self) -> Clipping {
        let inner = self.inner.clipping();
        Clipping {
            norm: self.clip.norm.or(inner.norm),
            global_norm: self.clip.global_norm.or(inner.global_norm),
            value: self.clip.value.or(inner.value),
        }
    }
}
