//! One training step: the forward pass, the losses and metrics, the backward pass, the checks
//! that nothing is NaN, and the optimizer's update; and the running means of an epoch.

use crate::distributed::Collective;
use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::{Ctx, Role, sized};
use crate::metrics::RunningMetric;
use crate::model::Meta;
use crate::model::dynamic::DynModel;
use crate::optimizers::{Clipping, Optimizer, OptimizerState};

use super::compile::{Compiled, OutputSpec};
use super::{History, Logs, StepBuffers, TrainState, compiled, data, loss_rows, range, slices, with_state};

/// Running means of one epoch (or one evaluation): total loss, each output's loss, each metric.
pub(super) struct Tracker {
    total: f64,
    per_output: Vec<f64>,
    /// Each `add_loss` term of the model (`Model::ADDED_LOSSES`), summed over rows.
    added: Vec<f64>,
    rows: usize,
    metrics: Vec<(usize, RunningMetric)>,
}

impl Tracker {
    pub(super) fn new(meta: &Meta, c: &Compiled) -> Self {
        Tracker {
            total: 0.0,
            per_output: vec![0.0; meta.outputs.len()],
            added: vec![0.0; meta.added_losses.len()],
            rows: 0,
            metrics: c.metric_states(meta),
        }
    }

    /// Sums the epoch's running values over a data-parallel group, so every process logs the
    /// losses and metrics of all the rows.
    pub(super) fn all_sum(&mut self, group: &dyn Collective, bufs: &mut (Vec<f64>, Vec<f64>)) {
        let (v, all) = bufs;
        v.clear();
        v.push(self.total);
        v.push(self.rows as f64);
        v.extend_from_slice(&self.per_output);
        v.extend_from_slice(&self.added);
        for (_, m) in &mut self.metrics {
            m.visit_sums(&mut |s| v.extend_from_slice(s));
        }
        crate::distributed::all_sum(group, v, all);
        let mut at = 2;
        (self.total, self.rows) = (v[0], v[1] as usize);
        let k = self.per_output.len();
        self.per_output.copy_from_slice(&v[at..at + k]);
        at += k;
        let a = self.added.len();
        self.added.copy_from_slice(&v[at..at + a]);
        at += a;
        for (_, m) in &mut self.metrics {
            m.visit_sums(&mut |s| {
                s.copy_from_slice(&v[at..at + s.len()]);
                at += s.len();
            });
        }
    }

    pub(super) fn reset(&mut self) {
        self.total = 0.0;
        self.per_output.iter_mut().for_each(|v| *v = 0.0);
        self.added.iter_mut().for_each(|v| *v = 0.0);
        self.rows = 0;
        self.metrics.iter_mut().for_each(|(_, m)| m.reset_state());
    }

    pub(super) fn logs(&self, meta: &Meta, prefix: &str, into: &mut Logs) {
        let rows = self.rows.max(1) as f64;
        into.insert(format!("{prefix}loss"), self.total / rows);
        if meta.outputs.len() > 1 {
            for (o, l) in meta.outputs.iter().zip(&self.per_output) {
                into.insert(format!("{prefix}{}_loss", o.name), l / rows);
            }
        }
        for (name, l) in meta.added_losses.iter().zip(&self.added) {
            into.insert(format!("{prefix}{name}"), l / rows);
        }
        for (_, s) in &self.metrics {
            for (key, v) in s.results() {
                into.insert(format!("{prefix}{key}"), v);
            }
        }
    }

    /// Losses and metrics of the model's current outputs on `n` rows; writes the weighted loss
    /// gradients into `grads` when given. Returns the batch's total (weighted) loss.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn observe(
        &mut self,
        m: &mut dyn DynModel,
        c: &Compiled,
        ys: &[&[f32]],
        n: usize,
        grads: Option<&mut [Vec<f32>]>,
        sample_weight: Option<&[f32]>,
    ) -> f32 {
        let outputs = m.meta().outputs;
        let per_output = &mut self.per_output;
        let total = weighted_loss(m, &c.outputs, &c.fused, ys, n, grads, sample_weight, |k, l| {
            per_output[k] += l as f64 * n as f64;
        });
        for (i, a) in self.added.iter_mut().enumerate() {
            *a += m.added_loss(i) * n as f64;
        }
        for (k, s) in &mut self.metrics {
            let port = &outputs[*k];
            s.update(m.output(*k), ys[*k], n * loss_rows(port), port.last(), c.outputs[*k].loss.from_logits());
        }
        self.total += total as f64 * n as f64;
        self.rows += n;
        total
    }
}

/// The total loss of `m`'s current outputs on `n` rows: each output's loss times its weight, plus
/// the model's own losses (weight regularization, activity penalties, `add_loss` terms). With
/// `grads`, writes each output's weighted loss gradient (fused where `fused[k]`); `each` gets each
/// output's own loss. `fit`, `train_on_batch` and `loss_and_grads` all count the loss here, so a
/// custom loop computes the bits `fit` does.
#[allow(clippy::too_many_arguments)]
pub(super) fn weighted_loss(
    m: &mut dyn DynModel,
    outs: &[OutputSpec],
    fused: &[bool],
    ys: &[&[f32]],
    n: usize,
    mut grads: Option<&mut [Vec<f32>]>,
    sample_weight: Option<&[f32]>,
    mut each: impl FnMut(usize, f32),
) -> f32 {
    let mut total = 0.0f32;
    let outputs = m.meta().outputs;
    for (k, out) in outs.iter().enumerate() {
        let (p, width, rows) = (m.output(k), outputs[k].last(), n * loss_rows(&outputs[k]));
        let mut g = grads.as_deref_mut().map(|g| sized(&mut g[k], rows * width));
        let fused = g.is_some() && fused[k];
        let l = match sample_weight {
            Some(w) => out.loss.compute_weighted(p, ys[k], rows, width, w, g.as_deref_mut(), fused),
            None => out.loss.compute(p, ys[k], rows, width, g.as_deref_mut(), fused),
        };
        if let Some(g) = g
            && out.weight != 1.0
        {
            g.iter_mut().for_each(|v| *v *= out.weight);
        }
        total += out.weight * l;
        each(k, l);
    }
    total + (regularization(m) + m.activity_penalty()) as f32
}

/// Adds each trainable weight's regularization gradient to its gradient, after a backward pass.
pub(super) fn add_regularizer_grads(m: &mut dyn DynModel) {
    m.visit_weights_mut(&mut |p| {
        if let Some(r) = p.regularizer
            && p.is_trainable()
        {
            r.add_gradient(&p.value, &mut p.grad);
        }
    });
}

/// A step that was not applied: which value was not finite, and that value.
pub(crate) struct Stopped {
    pub(super) what: String,
    pub(super) value: f32,
}

impl Stopped {
    /// The error `fit` and `train_on_batch` return, with the epochs finished before.
    pub(super) fn at(self, epoch: usize, batch: usize, history: &History) -> Error {
        Error::NonFiniteLoss {
            what: self.what,
            epoch: epoch + 1,
            batch,
            value: self.value,
            history: Box::new(history.clone()),
        }
    }

    /// The error of a refused update outside `fit` (`apply`, `apply_gradients`).
    pub(crate) fn refused(self) -> Error {
        Error::NonFiniteUpdate { what: self.what, value: self.value }
    }
}

/// One gradient step on one batch; returns the batch's loss. A NaN or infinite loss, gradient,
/// moving statistic or updated weight or optimizer state stops it, with weights, moving
/// statistics and optimizer state as they were before it.
#[allow(clippy::too_many_arguments)]
pub(super) fn step(
    m: &mut dyn DynModel,
    c: &mut Compiled,
    bufs: &mut StepBuffers,
    tracker: &mut Tracker,
    xs: &[&[f32]],
    ys: &[&[f32]],
    sw: Option<&[f32]>,
    ctx: &mut Ctx<'_>,
    dist: Dist<'_>,
) -> std::result::Result<f32, Stopped> {
    // Layers update their state (moving statistics) in the forward pass: keep it to restore.
    keep_state(m, &mut bufs.state);
    let r = step_unchecked(m, c, &mut bufs.grads, &mut bufs.undo, tracker, xs, ys, sw, ctx, dist);
    if r.is_err() {
        restore_state(m, &bufs.state);
    }
    r
}

/// Copies every state weight's values (moving statistics) into `into`, in traversal order.
pub(super) fn keep_state(m: &mut dyn DynModel, into: &mut Vec<f32>) {
    into.clear();
    m.visit_weights_mut(&mut |p| {
        if p.role() == crate::layers::Role::State {
            into.extend_from_slice(&p.value);
        }
    });
}

/// Puts back the state weights [`keep_state`] kept.
pub(super) fn restore_state(m: &mut dyn DynModel, kept: &[f32]) {
    if kept.is_empty() {
        return;
    }
    let mut at = 0;
    m.visit_weights_mut(&mut |p| {
        if p.role() == crate::layers::Role::State {
            let len = p.len();
            p.value.copy_from_slice(&kept[at..at + len]);
            at += len;
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn step_unchecked(
    m: &mut dyn DynModel,
    c: &mut Compiled,
    grads: &mut [Vec<f32>],
    undo: &mut Undo,
    tracker: &mut Tracker,
    xs: &[&[f32]],
    ys: &[&[f32]],
    sw: Option<&[f32]>,
    ctx: &mut Ctx<'_>,
    dist: Dist<'_>,
) -> std::result::Result<f32, Stopped> {
    let mut loss = 0.0;
    if ctx.n > 0 {
        m.run(xs, ctx);
        loss = tracker.observe(m, c, ys, ctx.n, Some(grads), sw);
        // A replica of a data-parallel run judges the loss of all rows, below.
        if dist.is_none() && !loss.is_finite() {
            return Err(Stopped { what: "loss".into(), value: loss });
        }
        let k = m.meta().outputs.len();
        let dys = slices(grads.iter().map(|g| &g[..]));
        m.run_backward(xs, &dys[..k], &c.fused, ctx);
        add_regularizer_grads(m);
    }
    if let Some((group, bufs)) = dist {
        loss = reduce_step(group, m, ctx.n, Some(loss), bufs);
        if !loss.is_finite() {
            return Err(Stopped { what: "loss".into(), value: loss });
        }
    }
    // The moving statistics the forward pass updated (restored by `step` on any error).
    if let Some((name, value)) = refused_state(m) {
        return Err(Stopped { what: name, value });
    }
    let (mut slot, mut bad) = (0, None);
    m.visit_weights_mut(&mut |p| {
        if bad.is_none() && p.is_trainable() {
            bad = crate::kernels::first_non_finite(&p.grad).map(|i| (slot, p.grad[i]));
        }
        slot += 1;
    });
    if let Some((slot, value)) = bad {
        return Err(Stopped { what: format!("the gradient of {}", weight_name(m, slot)), value });
    }
    apply_checked(m, &mut *c.optimizer, undo)?;
    Ok(loss)
}

/// A data-parallel step's group and its exchange buffers.
pub(super) type Dist<'a> = Option<(&'a dyn Collective, &'a mut (Vec<f32>, Vec<f32>))>;

/// Sums one data-parallel step over `group`: each trainable gradient (this process's mean over
/// its `rows`), the state weights (moving statistics) and the loss, each process's weighted by
/// its rows; every process gets the same means over all rows. Returns the global loss.
pub(crate) fn reduce_step(
    group: &dyn Collective,
    m: &mut dyn DynModel,
    rows: usize,
    loss: Option<f32>,
    bufs: &mut (Vec<f32>, Vec<f32>),
) -> f32 {
    let (v, all) = bufs;
    v.clear();
    v.push(rows as f32);
    v.push(loss.unwrap_or(0.0));
    m.visit_weights_mut(&mut |p| {
        if p.is_trainable() {
            v.extend_from_slice(&p.grad);
        } else if p.role() == crate::layers::Role::State {
            v.extend_from_slice(&p.value);
        }
    });
    crate::distributed::weighted_mean(group, v, all);
    let mut at = 2;
    m.visit_weights_mut(&mut |p| {
        let target = if p.is_trainable() {
            &mut p.grad
        } else if p.role() == crate::layers::Role::State {
            &mut p.value
        } else {
            return;
        };
        let len = target.len();
        target.copy_from_slice(&v[at..at + len]);
        at += len;
    });
    v[1]
}

/// Applies each trainable parameter's gradient with `opt`, as one optimizer step (Keras'
/// `optimizer.apply_gradients`), with `opt`'s clipping. An update that would leave a weight or
/// the optimizer's state NaN or infinite is refused: nothing changes, and the error names the
/// tensor.
pub fn apply_gradients(m: &mut dyn DynModel, opt: &mut dyn Optimizer) -> Result<()> {
    apply_checked(m, opt, &mut Undo::default()).map_err(Stopped::refused)
}

/// [`apply_gradients`] with the buffers of the copy it restores from.
pub(super) fn apply_checked(m: &mut dyn DynModel, opt: &mut dyn Optimizer, undo: &mut Undo) -> std::result::Result<(), Stopped> {
    let clip = opt.clipping();
    if !clip.is_none() {
        // Clip the gradients in place first (they are rewritten by the next backward pass).
        let per_weight = Clipping { global_norm: None, value: None, ..clip };
        let mut sum = 0.0f64;
        m.visit_weights_mut(&mut |p| {
            if p.is_trainable() {
                per_weight.apply(&mut p.grad, 1.0);
                sum += p.grad.iter().map(|g| (*g as f64) * (*g as f64)).sum::<f64>();
            }
        });
        let rest = Clipping { norm: None, ..clip };
        let global = clip.global_factor(sum);
        m.visit_weights_mut(&mut |p| {
            if p.is_trainable() {
                rest.apply(&mut p.grad, global);
            }
        });
    }
    update_all(m, opt, undo, |_| None)
}

/// What a refused update puts back: the trainable weights' values, and the optimizer's state and
/// learning rate (a schedule sets it when a step begins); or, for an optimizer that updates out
/// of place, the new weights written beside the current ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct Undo {
    weights: Vec<f32>,
    optimizer: OptimizerState,
    new_weights: Vec<Vec<f32>>,
}

/// One optimizer step over the trainable weights, each with its gradient (`grad(g)`, where `g`
/// counts the weights that have gradients as [`crate::Gradients`] does, or the weight's own when
/// `None`), then its constraint. When the step would leave a weight or the optimizer's state for
/// it NaN or infinite, nothing changes and the tensor is named. An optimizer that updates out of
/// place writes the new values beside the current ones and they become current only once all are
/// finite (no copy); any other is copied first and put back.
pub(crate) fn update_all<'g, O: Optimizer + ?Sized>(
    m: &mut dyn DynModel,
    opt: &mut O,
    undo: &mut Undo,
    grad: impl Fn(usize) -> Option<&'g [f32]>,
) -> std::result::Result<(), Stopped> {
    let lr = opt.learning_rate();
    let out_of_place = opt.updates_out_of_place();
    if !out_of_place {
        undo.weights.clear();
        m.visit_weights_mut(&mut |p| {
            if p.is_trainable() {
                undo.weights.extend_from_slice(&p.value);
            }
        });
        opt.save_state_into(&mut undo.optimizer);
    }
    opt.begin_step();
    // Optimizer slots count every weight; gradients only those that have one.
    let (mut slot, mut g, mut k) = (0, 0, 0);
    let mut bad: Option<(usize, bool, f32)> = None;
    m.visit_weights_mut(&mut |p| {
        if p.is_trainable() && bad.is_none() {
            if out_of_place {
                if undo.new_weights.len() <= k {
                    undo.new_weights.push(Vec::new());
                }
                let new = crate::layers::sized(&mut undo.new_weights[k], p.len());
                let gr = grad(g).unwrap_or(&p.grad);
                let r = opt.update_into(slot, &p.value, new, gr, p.shape());
                // Keras applies a weight's constraint right after its update.
                if let Some(c) = p.constraint {
                    c.apply(new, p.shape());
                }
                bad = r.err().map(|(in_state, v)| (slot, in_state, v));
                if bad.is_none() && p.constraint.is_some() {
                    bad = crate::kernels::first_non_finite(new).map(|i| (slot, false, new[i]));
                }
            } else {
                match grad(g) {
                    Some(gr) => {
                        let (value, shape) = p.value_and_shape();
                        opt.update_shaped(slot, value, gr, shape);
                    }
                    None => {
                        let (value, gr, shape) = p.update_parts();
                        opt.update_shaped(slot, value, gr, shape);
                    }
                }
                p.apply_constraint();
                bad = crate::kernels::first_non_finite(&p.value).map(|i| (slot, false, p.value[i]));
                opt.visit_slot_state(slot, &mut |a| {
                    if bad.is_none() {
                        bad = crate::kernels::first_non_finite(a).map(|i| (slot, true, a[i]));
                    }
                });
            }
            k += 1;
        }
        if p.role() != Role::State {
            g += 1;
        }
        slot += 1;
    });
    let Some((slot, in_state, value)) = bad else {
        if out_of_place {
            let mut k = 0;
            m.visit_weights_mut(&mut |p| {
                if p.is_trainable() {
                    std::mem::swap(&mut p.value, &mut undo.new_weights[k]);
                    k += 1;
                }
            });
            opt.commit_step();
        }
        return Ok(());
    };
    if out_of_place {
        opt.abandon_step();
    } else {
        let mut at = 0;
        m.visit_weights_mut(&mut |p| {
            if p.is_trainable() {
                let len = p.len();
                p.value.copy_from_slice(&undo.weights[at..at + len]);
                at += len;
            }
        });
        opt.restore_state(&undo.optimizer);
    }
    opt.set_learning_rate(lr);
    let name = weight_name(m, slot);
    let what = if in_state {
        format!("{}'s state for {name}", opt.name())
    } else {
        format!("{name} after {}'s update", opt.name())
    };
    Err(Stopped { what, value })
}

/// The name of weight `slot` (traversal order).
pub(crate) fn weight_name(m: &dyn DynModel, slot: usize) -> String {
    let (mut name, mut i) = (String::new(), 0);
    m.visit_weights(&mut |n, _| {
        if i == slot {
            name = n.to_string();
        }
        i += 1;
    });
    name
}

/// The first state weight (moving statistics) holding a value it may not (NaN, infinite, a
/// negative variance): its name and that value.
pub(crate) fn refused_state(m: &mut dyn DynModel) -> Option<(String, f32)> {
    let (mut slot, mut bad) = (0, None);
    m.visit_weights_mut(&mut |p| {
        if bad.is_none() && p.role() == Role::State {
            bad = p.first_refused().map(|v| (slot, v));
        }
        slot += 1;
    });
    bad.map(|(slot, v)| (weight_name(m, slot), v))
}

/// The sum of every weight's regularization penalty (Keras' `model.losses`), added to the loss.
/// (Visits mutably only because that visit names nothing: no allocation per step.)
pub(super) fn regularization(m: &mut dyn DynModel) -> f64 {
    let mut total = 0.0;
    m.visit_weights_mut(&mut |p| {
        if let Some(r) = &p.regularizer
            && p.is_trainable()
        {
            total += r.penalty(&p.value);
        }
    });
    total
}

pub(crate) fn train_on_batch(
    m: &mut dyn DynModel,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
) -> Result<Logs> {
    let meta = m.meta();
    let c = compiled(m, "train_on_batch")?;
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, &y, n, &c.losses(), "y")?;
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let TrainState { compiled, stream, ws, group, .. } = st;
        let c = compiled.as_mut().ok_or(Error::NotCompiled("train_on_batch"))?;
        let mut tracker = Tracker::new(&meta, c);
        ws.step.grads.resize(meta.outputs.len(), Vec::new());
        let (xb, yb) = (range(&xs, 0, n), range(&ys, 0, n));
        let mut ctx = Ctx::new(n, true, stream);
        // In a data-parallel run each process passes its own rows; the step sums them all.
        let dist = group.as_deref().map(|g| (g, &mut ws.reduce));
        step(
            m,
            c,
            &mut ws.step,
            &mut tracker,
            &xb[..meta.inputs.len()],
            &yb[..meta.outputs.len()],
            None,
            &mut ctx,
            dist,
        )
        .map_err(|s| s.at(0, 0, &History::default()))?;
        if let Some(g) = group.as_deref() {
            tracker.all_sum(g, &mut ws.sums);
        }
        let mut logs = Logs::new();
        tracker.logs(&meta, "", &mut logs);
        Ok(logs)
    })
}
