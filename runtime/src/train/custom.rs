//! Custom training loops, Keras' `GradientTape` pattern: a model gives the loss and gradients for
//! a batch, the user inspects, clips or combines them, and an optimizer applies them.
//!
//! ```ignore
//! let mut opt = Adam::default();
//! for (xb, yb) in batches(&x, &y, 32) {
//!     let (loss, mut grads) = model.loss_and_grads(&xb, &yb, &Loss::SparseCategoricalCrossentropy)?;
//!     grads.clip_by_global_norm(1.0)?;
//!     opt.apply(&mut model, &grads)?;
//! }
//! ```

use ndarray::{ArrayBase, ArrayView, Axis, Data, Dimension, Slice};

use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::Role;
use crate::model::Model;
use crate::model::dynamic::DynModel;
use crate::optimizers::Optimizer;

/// The gradient of a loss with respect to every parameter of a model, by parameter name, in the
/// model's traversal order.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    pub(super) names: Vec<String>,
    pub(super) values: Vec<Vec<f32>>,
}

impl Gradients {
    /// Sums these gradients over a data-parallel group (see `Model::distribute`), each process's
    /// weighted by the rows it computed them on: every process then holds the mean over all the
    /// rows, the same bits everywhere. For a custom step (`fit_with`) on a distributed model,
    /// between computing the gradients and applying them; with layers that keep state (moving
    /// statistics), [`crate::distributed::all_reduce_state`] after the step as well.
    pub fn all_reduce(&mut self, group: &dyn crate::distributed::Collective, local_rows: usize) {
        let mut v = vec![local_rows as f32];
        self.values.iter().for_each(|g| v.extend_from_slice(g));
        crate::distributed::weighted_mean(group, &mut v, &mut Vec::new());
        let mut at = 1;
        for g in &mut self.values {
            let len = g.len();
            g.copy_from_slice(&v[at..at + len]);
            at += len;
        }
    }

    /// Zero gradients for every parameter of `model` (to accumulate into, or to fill by hand).
    pub fn zeros_like<M: Model>(model: &M) -> Self {
        Self::zeros_of(model)
    }

    /// Each parameter's current gradient (what the last backward pass wrote); state (moving
    /// statistics) has no gradient, so it has no entry.
    pub(super) fn of(model: &dyn DynModel) -> Self {
        let (mut names, mut values) = (Vec::new(), Vec::new());
        model.visit_weights(&mut |name, p| {
            if p.role() != Role::State {
                names.push(name.to_string());
                values.push(p.grad.clone());
            }
        });
        Gradients { names, values }
    }

    fn zeros_of(model: &dyn DynModel) -> Self {
        let (mut names, mut values) = (Vec::new(), Vec::new());
        model.visit_weights(&mut |name, p| {
            if p.role() != Role::State {
                names.push(name.to_string());
                values.push(vec![0.0; p.len()]);
            }
        });
        Gradients { names, values }
    }

    /// `(name, gradient)` pairs in the model's parameter order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[f32])> {
        self.names.iter().map(|n| &n[..]).zip(self.values.iter().map(|v| &v[..]))
    }

    /// The gradient of one parameter.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.names.iter().position(|n| n == name).map(|i| &self.values[i][..])
    }

    /// The gradient of one parameter, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.names.iter().position(|n| n == name).map(|i| &mut self.values[i][..])
    }

    /// `sqrt(Σ g²)` over every parameter.
    pub fn global_norm(&self) -> f32 {
        self.values.iter().flatten().map(|g| (*g as f64) * (*g as f64)).sum::<f64>().sqrt() as f32
    }

    /// Clamps every value to `[min, max]` (Keras' `clipvalue` is `[-v, v]`). Errors, changing
    /// nothing, when `min > max` or either is NaN.
    pub fn clip_by_value(&mut self, min: f32, max: f32) -> Result<()> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::invalid("clip_by_value", format!("needs min <= max, got min {min} and max {max}")));
        }
        self.values.iter_mut().flatten().for_each(|g| *g = g.clamp(min, max));
        Ok(())
    }

    /// Rescales each parameter's gradient whose norm exceeds `max` to norm `max` (Keras'
    /// `clipnorm`). Errors, changing nothing, unless `max` is finite and at least 0.
    pub fn clip_by_norm(&mut self, max: f32) -> Result<()> {
        check_norm("clip_by_norm", max)?;
        for v in &mut self.values {
            let norm = v.iter().map(|g| (*g as f64) * (*g as f64)).sum::<f64>().sqrt() as f32;
            if norm > max {
                v.iter_mut().for_each(|g| *g *= max / norm);
            }
        }
        Ok(())
    }

    /// Rescales all gradients together when their global norm exceeds `max` (Keras'
    /// `global_clipnorm`). Errors, changing nothing, unless `max` is finite and at least 0.
    pub fn clip_by_global_norm(&mut self, max: f32) -> Result<()> {
        check_norm("clip_by_global_norm", max)?;
        let norm = self.global_norm();
        if norm > max {
            self.scale(max / norm);
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f32) {
        self.values.iter_mut().flatten().for_each(|g| *g *= factor);
    }

    /// Adds another model's (or batch's) gradients, parameter by parameter; they must have the
    /// same parameters.
    pub fn add(&mut self, other: &Gradients) -> Result<()> {
        if self.names != other.names || self.values.iter().zip(&other.values).any(|(a, b)| a.len() != b.len()) {
            return Err(Error::invalid("gradients", "the two sets of gradients are of different parameters"));
        }
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }
}

fn check_norm(name: &'static str, max: f32) -> Result<()> {
    if !(max.is_finite() && max >= 0.0) {
        return Err(Error::invalid(name, format!("the largest norm must be finite and >= 0, got {max}")));
    }
    Ok(())
}

/// `opt.apply(&mut model, &grads)`: one optimizer step with gradients computed (and perhaps
/// changed) by the user. Frozen parameters are left alone.
pub trait ApplyGradients {
    /// Applies `grads` to `model`'s parameters, as one step.
    fn apply<M: Model>(&mut self, model: &mut M, grads: &Gradients) -> Result<()>;
}

impl<O: Optimizer + ?Sized> ApplyGradients for O {
    fn apply<M: Model>(&mut self, model: &mut M, grads: &Gradients) -> Result<()> {
        apply(self, model, grads)
    }
}

fn apply<O: Optimizer + ?Sized>(opt: &mut O, model: &mut dyn DynModel, grads: &Gradients) -> Result<()> {
    {
        let mut expected = Vec::new();
        model.visit_weights(&mut |n, p| {
            if p.role() != Role::State {
                expected.push((n.to_string(), p.len()));
            }
        });
        let fits = expected.len() == grads.names.len()
            && expected.iter().zip(grads.iter()).all(|((n, len), (gn, g))| n == gn && *len == g.len());
        if !fits {
            return Err(Error::invalid(
                "grads",
                format!("the gradients are not those of {}'s parameters", model.meta().name),
            ));
        }
        opt.check()?;
        let mut trainable = Vec::new();
        model.visit_weights(&mut |_, p| {
            if p.role() != Role::State {
                trainable.push(p.is_trainable());
            }
        });
        if let Some(((name, g), i)) = grads.iter().zip(trainable).filter(|(_, t)| *t).find_map(|((n, g), _)| {
            crate::kernels::first_non_finite(g).map(|i| ((n, g), i))
        }) {
            return Err(Error::InvalidData {
                what: "grads".into(),
                reason: format!("the gradient of {name} holds {} at index {i}: refused, nothing changed", g[i]),
            });
        }
        let _ftz = FlushDenormals::new();
        // The optimizer's clipping (clipnorm, global_clipnorm, clipvalue) on a copy.
        let clip = opt.clipping();
        let mut clipped = None;
        if !clip.is_none() {
            let mut values = grads.values.clone();
            let per_weight = crate::optimizers::Clipping { global_norm: None, value: None, ..clip };
            values.iter_mut().for_each(|v| per_weight.apply(v, 1.0));
            let sum = values.iter().flatten().map(|g| (*g as f64) * (*g as f64)).sum::<f64>();
            let rest = crate::optimizers::Clipping { norm: None, ..clip };
            let global = clip.global_factor(sum);
            values.iter_mut().for_each(|v| rest.apply(v, global));
            clipped = Some(values);
        }
        let values = clipped.as_ref().unwrap_or(&grads.values);
        super::step::update_all(model, opt, &mut Default::default(), |g| Some(&values[g][..]))
            .map_err(super::step::Stopped::refused)
    }
}

/// What [`batches`] splits: one array (`&x`), or a tuple of arrays for several inputs or outputs
/// (`(&a, &b)`), of `f32` or integers; a batch is a view of each, of the same kind.
pub trait Batchable<'a> {
    /// One batch: a view, or a tuple of views.
    type Batch;
    /// The row count (first axis) of each array.
    fn row_counts(&self) -> Vec<usize>;
    /// Rows `from..to` of each array.
    fn rows(&self, from: usize, to: usize) -> Self::Batch;
}

impl<'a, T: 'a, S: Data<Elem = T>, D: Dimension> Batchable<'a> for &'a ArrayBase<S, D> {
    type Batch = ArrayView<'a, T, D>;
    fn row_counts(&self) -> Vec<usize> {
        vec![self.shape().first().copied().unwrap_or(0)]
    }
    fn rows(&self, from: usize, to: usize) -> Self::Batch {
        let this: &'a ArrayBase<S, D> = self;
        if this.ndim() == 0 {
            return this.view();
        }
        this.slice_axis(Axis(0), Slice::from(from..to))
    }
}

macro_rules! tuple_batchable {
    ($(($($t:ident $v:ident),+))*) => {$(
        impl<'a, $($t: Batchable<'a>),+> Batchable<'a> for ($($t,)+) {
            type Batch = ($($t::Batch,)+);
            fn row_counts(&self) -> Vec<usize> {
                let ($($v,)+) = self;
                let mut out = Vec::new();
                $(out.extend($v.row_counts());)+
                out
            }
            fn rows(&self, from: usize, to: usize) -> Self::Batch {
                let ($($v,)+) = self;
                ($($v.rows(from, to),)+)
            }
        }
    )*};
}

tuple_batchable! {
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, E e)
}

/// Consecutive batches of `size` rows of `x` and `y` (the last one holds the remainder), each a
/// view of one array or a tuple of views (several inputs or outputs, as `fit` takes them):
///
/// ```ignore
/// for (xb, (labels, scores)) in batches(&x, (&labels, &scores), 32)? {
///     let (loss, grads) = model.loss_and_grads(&xb, (&labels, &scores), &losses)?;
/// }
/// ```
///
/// Errors, as `fit` does: a `size` of 0, or arrays with different row counts.
pub fn batches<'a, X: Batchable<'a>, Y: Batchable<'a>>(
    x: X,
    y: Y,
    size: usize,
) -> Result<impl Iterator<Item = (X::Batch, Y::Batch)>> {
    super::check_batch_size(size)?;
    let (xr, yr) = (x.row_counts(), y.row_counts());
    let n = xr.first().copied().unwrap_or(0);
    if let Some((i, r)) = xr.iter().enumerate().find(|(_, r)| **r != n) {
        return Err(Error::InvalidData {
            what: format!("x (array {i})"),
            reason: format!("it has {r} rows but the first array of x has {n}: every array needs one row per sample"),
        });
    }
    if let Some((i, r)) = yr.iter().enumerate().find(|(_, r)| **r != n) {
        let which = if yr.len() > 1 { format!("y (array {i})") } else { "y".to_string() };
        return Err(Error::InvalidData {
            what: which,
            reason: format!("it has {r} rows but x has {n}: x and y need one row per sample"),
        });
    }
    Ok((0..n.div_ceil(size)).map(move |b| {
        let (from, to) = (b * size, ((b + 1) * size).min(n));
        (x.rows(from, to), y.rows(from, to))
    }))
}
