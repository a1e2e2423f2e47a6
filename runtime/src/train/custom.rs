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

use ndarray::{ArrayBase, ArrayView, Axis, Data, Dimension};

use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::{Ctx, Role, sized};
use crate::losses::Loss;
use crate::model::dynamic::DynModel;
use crate::model::{MAX_PORTS, Model};
use crate::optimizers::Optimizer;
use crate::random::Stream;

use super::data;

/// The gradient of a loss with respect to every parameter of a model, by parameter name, in the
/// model's traversal order.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    names: Vec<String>,
    values: Vec<Vec<f32>>,
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

/// After a forward pass on `n` samples: the total of `loss` over every output, its gradient with
/// respect to each output, and which outputs took the fused softmax gradient.
fn output_grads(
    m: &dyn DynModel,
    ys: &[data::Rows<'_>],
    loss: &Loss,
    n: usize,
) -> (f32, Vec<Vec<f32>>, [bool; MAX_PORTS]) {
    let meta = m.meta();
    let no = meta.outputs.len();
    let mut grads: Vec<Vec<f32>> = vec![Vec::new(); no];
    let mut fused = [false; MAX_PORTS];
    let mut total = 0.0;
    for k in 0..no {
        fused[k] = super::fuses(&meta, loss, k);
        let (width, rows) = (meta.outputs[k].last(), n * super::loss_rows(&meta.outputs[k]));
        let g = sized(&mut grads[k], rows * width);
        total += loss.compute(m.output(k), &ys[k].data, rows, width, Some(g), fused[k]);
    }
    (total, grads, fused)
}

/// The loss of `m` on one batch and its gradients (`loss` applies to every output).
pub(crate) fn loss_and_grads(
    m: &mut dyn DynModel,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
    loss: &Loss,
) -> Result<(f32, Gradients)> {
    let meta = m.meta();
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, &y, n, &[*loss], "y")?;
    meta.outputs.iter().try_for_each(|o| loss.check_gradient(o.last()))?;
    let _ftz = FlushDenormals::new();
    let xb = super::slices(xs.iter().map(|r| &r.data[..]));
    let (ni, no) = (meta.inputs.len(), meta.outputs.len());
    // A step outside `fit` draws from a stream of its own, so it leaves the model's untouched.
    let mut stream = Stream::new(m.train_state().seed() ^ m.train_state().stream().position());
    let mut ctx = Ctx::new(n, true, &mut stream);
    // The forward pass moves the moving statistics: a move to a value they may not hold is undone.
    let mut state = Vec::new();
    m.visit_weights(&mut |_, p| state.extend(p.role().eq(&Role::State).then_some(&p.value[..]).into_iter().flatten()));
    m.run(&xb[..ni], &mut ctx);
    if let Some((what, value)) = super::step::refused_state(m) {
        let mut at = 0;
        m.visit_weights_mut(&mut |p| {
            if p.role() == Role::State {
                let len = p.len();
                p.value.copy_from_slice(&state[at..at + len]);
                at += len;
            }
        });
        return Err(Error::NonFiniteUpdate { what, value });
    }
    let (total, grads, fused) = output_grads(m, &ys, loss, n);
    let dys = super::slices(grads.iter().map(|g| &g[..]));
    m.run_backward(&xb[..ni], &dys[..no], &fused[..no], &mut ctx);
    let (mut names, mut values) = (Vec::new(), Vec::new());
    // State (moving statistics) has no gradient, so it has no entry.
    m.visit_weights(&mut |name, p| {
        if p.role() != Role::State {
            names.push(name.to_string());
            values.push(p.grad.clone());
        }
    });
    Ok((total, Gradients { names, values }))
}

/// The gradient of the loss with respect to each input (saliency maps, adversarial examples), in
/// inference mode (dropout off, moving statistics), nothing updated.
pub(crate) fn input_gradients(
    m: &mut dyn DynModel,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
    loss: &Loss,
) -> Result<Vec<ndarray::ArrayD<f32>>> {
    let meta = m.meta();
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, &y, n, &[*loss], "y")?;
    meta.outputs.iter().try_for_each(|o| loss.check_gradient(o.last()))?;
    let _ftz = FlushDenormals::new();
    let xb = super::slices(xs.iter().map(|r| &r.data[..]));
    let (ni, no) = (meta.inputs.len(), meta.outputs.len());
    // Parameter gradients are rewritten by the pass: keep them as they were.
    let mut kept = Vec::new();
    m.visit_weights(&mut |_, p| kept.push(p.grad.clone()));
    let mut stream = Stream::new(0);
    let mut ctx = Ctx::new(n, false, &mut stream);
    m.run(&xb[..ni], &mut ctx);
    let (_, grads, fused) = output_grads(m, &ys, loss, n);
    let dys = super::slices(grads.iter().map(|g| &g[..]));
    m.backward_to_inputs(&xb[..ni], &dys[..no], &fused[..no], &mut ctx);
    let mut out = Vec::with_capacity(ni);
    for (i, port) in meta.inputs.iter().enumerate() {
        let shape: Vec<usize> = std::iter::once(n).chain(port.shape.iter().copied()).collect();
        let g = m.input_grad_of(i, &dys[..no]);
        if g.len() != n * port.size() {
            return Err(Error::invalid(
                "input_gradients",
                format!("{} does not compute gradients with respect to its inputs", meta.name),
            ));
        }
        out.push(ndarray::ArrayD::from_shape_vec(shape, g.to_vec()).map_err(|e| Error::invalid("x", e.to_string()))?);
    }
    let mut i = 0;
    m.visit_weights_mut(&mut |p| {
        p.grad.copy_from_slice(&kept[i]);
        i += 1;
    });
    Ok(out)
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
            return Err(Error::invalid("grads", format!("the gradients are not those of {}'s parameters", model.meta().name)));
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

/// Consecutive batches of `size` rows of `x` and `y` (the last one holds the remainder).
///
/// Errors, as `fit` does: a `size` of 0, or `x` and `y` with different row counts.
pub fn batches<'a, S1, D1, S2, D2>(
    x: &'a ArrayBase<S1, D1>,
    y: &'a ArrayBase<S2, D2>,
    size: usize,
) -> Result<impl Iterator<Item = (ArrayView<'a, f32, D1>, ArrayView<'a, f32, D2>)>>
where
    S1: Data<Elem = f32>,
    D1: Dimension,
    S2: Data<Elem = f32>,
    D2: Dimension,
{
    super::check_batch_size(size)?;
    let rows = |s: &[usize]| s.first().copied().unwrap_or(0);
    if rows(x.shape()) != rows(y.shape()) {
        return Err(Error::InvalidData {
            what: "y".into(),
            reason: format!(
                "it has {} rows but x has {}: x and y need one row per sample",
                rows(y.shape()),
                rows(x.shape())
            ),
        });
    }
    Ok(x.axis_chunks_iter(Axis(0), size).zip(y.axis_chunks_iter(Axis(0), size)))
}
