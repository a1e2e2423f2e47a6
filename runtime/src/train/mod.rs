//! The compile / fit / evaluate / predict machinery shared by every model.
//!
//! A model holds a [`TrainState`]: its seed and random stream (shuffling), what `compile` chose,
//! and the buffers of the training loop, sized once and reused by every batch. Models may have
//! several inputs and outputs; a single-input, single-output model is the case of one each.

mod callbacks;
mod compile;
mod custom;
mod data;
mod history;
mod progress;

pub use callbacks::{
    BackupAndRestore, Callback, CsvLogger, EarlyStopping, Hook, LambdaCallback, LearningRateScheduler, Mode,
    ModelCheckpoint, NoHook, ReduceLrOnPlateau, TerminateOnNaN, Trainee,
};
pub use compile::{Compile, IntoLoss};
pub use custom::{ApplyGradients, Gradients, batches};
pub use history::{History, Logs};

use ndarray::{ArrayD, ArrayView1};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::kernels::ActKind;
use crate::layers::{Ctx, sized};
use crate::distributed::Collective;
use crate::metrics::RunningMetric;
use crate::model::{MAX_PORTS, Model};
use crate::optimizers::{Clipping, Optimizer};
use crate::random::Stream;
use compile::Compiled;
use data::Rows;

pub(crate) use compile::compile;
pub(crate) use custom::{input_gradients, loss_and_grads};

/// Options of [`Model::fit`], with Keras' names and defaults.
///
/// ```
/// # use kiln_runtime::Fit;
/// let opts = Fit { epochs: 10, batch_size: 64, validation_split: 0.2, ..Fit::default() };
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct Fit<'a> {
    /// Passes over the training data (default 1).
    pub epochs: usize,
    /// Rows per gradient step (default 32). The last batch of an epoch holds the remainder.
    pub batch_size: usize,
    /// 0: silent; 1: a progress bar per epoch (one line per epoch when standard output is not a
    /// terminal); 2: one line per epoch. Default 1.
    pub verbose: u8,
    /// Fraction of the rows held out for validation, in [0, 1). As in Keras, they are the **last**
    /// `n - floor(n · (1 - validation_split))` rows of `x` and `y`, taken before any shuffling:
    /// shuffle the data yourself first if it is ordered (by class, by time).
    pub validation_split: f32,
    /// Separate validation data `(x, y)`, one view per input and per output (see
    /// [`validation_data`]); takes precedence over `validation_split`.
    pub validation_data: Option<ValidationData<'a>>,
    /// Shuffle the training rows before each epoch (default true), from the model's seed.
    pub shuffle: bool,
    /// One weight per row of `x`, finite and >= 0: each row's loss counts `w` times (Keras'
    /// `Σ wᵢ lᵢ / batch size`). With `validation_split`, the held-out rows keep theirs.
    /// Metrics are not weighted (Keras' `metrics`, not `weighted_metrics`).
    pub sample_weight: Option<ArrayView1<'a, f32>>,
    /// Weights of classes, `(class, weight)`, for the training rows of a single-output model:
    /// each row weighs as its class (its label, its one-hot arg-max, or its rounded binary
    /// target); classes not listed weigh 1. Not with `sample_weight`.
    pub class_weight: Option<&'a [(usize, f32)]>,
    /// One weight per row of `validation_data`.
    pub validation_sample_weight: Option<ArrayView1<'a, f32>>,
    /// The epoch to start at (to resume a run): epochs `initial_epoch..epochs` are trained.
    pub initial_epoch: usize,
    /// Validate after every `validation_freq`-th epoch (default 1, every epoch).
    pub validation_freq: usize,
    /// Batches per epoch (default: one pass over the data). As in Keras, epochs then continue
    /// where the previous one stopped in the data; when a pass runs out, that epoch ends early and
    /// the next epoch starts a new (reshuffled) pass.
    pub steps_per_epoch: Option<usize>,
}

impl Default for Fit<'_> {
    fn default() -> Self {
        Fit {
            epochs: 1,
            batch_size: 32,
            verbose: 1,
            validation_split: 0.0,
            validation_data: None,
            shuffle: true,
            sample_weight: None,
            class_weight: None,
            validation_sample_weight: None,
            initial_epoch: 0,
            validation_freq: 1,
            steps_per_epoch: None,
        }
    }
}

/// Validation inputs and targets: one view per model input, one per output.
pub type ValidationData<'a> = (Vec<crate::model::InputArray<'a>>, Vec<crate::model::InputArray<'a>>);

/// `Fit::validation_data` from arrays, as `fit` takes them: `validation_data(&xv, &yv)`.
pub fn validation_data<'a>(
    x: impl crate::model::Inputs<'a>,
    y: impl crate::model::Inputs<'a>,
) -> Option<ValidationData<'a>> {
    Some((x.arrays(), y.arrays()))
}

/// Buffers of the training loop, grown to the largest batch and then reused.
#[derive(Clone, Debug, Default)]
struct Workspace {
    xb: Vec<Vec<f32>>,
    yb: Vec<Vec<f32>>,
    wb: Vec<f32>,
    step: StepBuffers,
    order: Vec<usize>,
    /// A data-parallel step's values and everyone's (see `reduce_step`); the same in f64 for
    /// the epoch's running sums.
    reduce: (Vec<f32>, Vec<f32>),
    sums: (Vec<f64>, Vec<f64>),
}

/// What one training step writes besides the model: the loss gradients, and a copy of the
/// model's state weights (moving statistics) taken before the step, put back if it is stopped.
#[derive(Clone, Debug, Default)]
struct StepBuffers {
    grads: Vec<Vec<f32>>,
    state: Vec<f32>,
}

/// Per-model training state: seed, random stream, compiled configuration and buffers.
#[derive(Clone, Debug)]
pub struct TrainState {
    seed: u64,
    /// Epochs trained so far: with the seed, it fixes the next epoch's shuffle, so a run resumed
    /// from a checkpoint shuffles exactly as an uninterrupted one.
    epochs: u64,
    compiled: Option<Compiled>,
    /// The random stream layers draw from in training (dropout masks, noise).
    stream: Stream,
    ws: Workspace,
    /// The processes of a data-parallel run this replica belongs to, if any.
    group: Option<crate::distributed::Group>,
}

impl TrainState {
    /// The state of a model created from `seed`.
    pub fn new(seed: u64) -> Self {
        TrainState {
            seed,
            epochs: 0,
            compiled: None,
            stream: Stream::new(seed),
            ws: Workspace::default(),
            group: None,
        }
    }

    /// The seed the model was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Restores a checkpoint's optimizer state and epoch count.
    /// Restores a checkpoint's optimizer state, epoch count, seed and stream position: training
    /// then continues exactly as the saved run would have, whatever seed this model was built with.
    pub(crate) fn restore(&mut self, state: crate::optimizers::OptimizerState, epochs: u64, seed: u64, stream: u64) {
        if let Some(c) = &mut self.compiled {
            c.optimizer.load_state(state);
        }
        self.epochs = epochs;
        self.seed = seed;
        self.stream = Stream::new(seed);
        self.stream.set_position(stream);
    }

    /// The random stream layers draw from while training.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Epochs trained so far (all `fit` calls together).
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// The optimizer chosen by `compile`, if any.
    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        self.compiled.as_ref().map(|c| &*c.optimizer)
    }

    /// The data-parallel group this replica belongs to (see `Model::distribute`).
    pub fn group(&self) -> Option<&crate::distributed::Group> {
        self.group.as_ref()
    }

    /// Joins (or, with `None`, leaves) a data-parallel group.
    pub fn set_group(&mut self, group: Option<crate::distributed::Group>) {
        self.group = group;
    }
}

/// The random stream of epoch `epoch` (shuffling), from the model's seed.
fn epoch_rng(seed: u64, epoch: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x5DEE_CE66_D1CE_5EED ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs `f` on the model with its training state taken out, so both can be borrowed mutably,
/// and puts the state back whatever `f` returns.
fn with_state<M: Model, T>(m: &mut M, f: impl FnOnce(&mut M, &mut TrainState) -> Result<T>) -> Result<T> {
    let placeholder = TrainState::new(0);
    let mut st = std::mem::replace(m.train_state_mut(), placeholder);
    let r = f(m, &mut st);
    *m.train_state_mut() = st;
    r
}

fn compiled<'s, M: Model>(m: &'s M, call: &'static str) -> Result<&'s Compiled> {
    m.train_state().compiled.as_ref().ok_or(Error::NotCompiled(call))
}

/// A fixed-size list of row slices, one per input or output, so a step builds no `Vec`.
type Slices<'a> = [&'a [f32]; MAX_PORTS];

fn slices<'a>(rows: impl Iterator<Item = &'a [f32]>) -> Slices<'a> {
    let mut out: Slices<'a> = [&[]; MAX_PORTS];
    for (o, r) in out.iter_mut().zip(rows) {
        *o = r;
    }
    out
}

/// Running means of one epoch (or one evaluation): total loss, each output's loss, each metric.
struct Tracker {
    total: f64,
    per_output: Vec<f64>,
    rows: usize,
    metrics: Vec<(usize, RunningMetric)>,
}

impl Tracker {
    fn new<M: Model>(c: &Compiled) -> Self {
        Tracker { total: 0.0, per_output: vec![0.0; M::OUTPUTS.len()], rows: 0, metrics: c.metric_states::<M>() }
    }

    /// Sums the epoch's running values over a data-parallel group, so every process logs the
    /// losses and metrics of all the rows.
    fn all_sum(&mut self, group: &dyn Collective, bufs: &mut (Vec<f64>, Vec<f64>)) {
        let (v, all) = bufs;
        v.clear();
        v.push(self.total);
        v.push(self.rows as f64);
        v.extend_from_slice(&self.per_output);
        for (_, m) in &mut self.metrics {
            m.visit_sums(&mut |s| v.extend_from_slice(s));
        }
        crate::distributed::all_sum(group, v, all);
        let mut at = 2;
        (self.total, self.rows) = (v[0], v[1] as usize);
        let k = self.per_output.len();
        self.per_output.copy_from_slice(&v[at..at + k]);
        at += k;
        for (_, m) in &mut self.metrics {
            m.visit_sums(&mut |s| {
                s.copy_from_slice(&v[at..at + s.len()]);
                at += s.len();
            });
        }
    }

    fn reset(&mut self) {
        self.total = 0.0;
        self.per_output.iter_mut().for_each(|v| *v = 0.0);
        self.rows = 0;
        self.metrics.iter_mut().for_each(|(_, m)| m.reset_state());
    }

    fn logs<M: Model>(&self, prefix: &str, into: &mut Logs) {
        let rows = self.rows.max(1) as f64;
        into.insert(format!("{prefix}loss"), self.total / rows);
        if M::OUTPUTS.len() > 1 {
            for (o, l) in M::OUTPUTS.iter().zip(&self.per_output) {
                into.insert(format!("{prefix}{}_loss", o.name), l / rows);
            }
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
    fn observe<M: Model>(
        &mut self,
        m: &mut M,
        c: &Compiled,
        ys: &[&[f32]],
        n: usize,
        grads: Option<&mut [Vec<f32>]>,
        sample_weight: Option<&[f32]>,
    ) -> f32 {
        let mut total = 0.0f32;
        let mut grads = grads;
        for (k, out) in c.outputs.iter().enumerate() {
            let (p, width, rows) = (m.output(k), M::OUTPUTS[k].last(), n * loss_rows(&M::OUTPUTS[k]));
            let mut g = grads.as_deref_mut().map(|g| sized(&mut g[k], rows * width));
            let fused = g.is_some() && c.fused[k];
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
            self.per_output[k] += l as f64 * n as f64;
        }
        total += (regularization(m) + m.activity_penalty()) as f32;
        for (k, s) in &mut self.metrics {
            let port = &M::OUTPUTS[*k];
            s.update(m.output(*k), ys[*k], n * loss_rows(port), port.last(), c.outputs[*k].loss.from_logits());
        }
        self.total += total as f64 * n as f64;
        self.rows += n;
        total
    }
}

/// Rows per sample that a loss or metric averages over: every position along the axes before the
/// last (Keras reduces the last axis, then takes the mean over the rest).
pub(crate) fn loss_rows(port: &crate::model::Port) -> usize {
    port.size() / port.last().max(1)
}

/// A step that was not applied: which value was not finite, and that value.
struct Stopped {
    what: String,
    value: f32,
}

impl Stopped {
    /// The error `fit` and `train_on_batch` return, with the epochs finished before.
    fn at(self, epoch: usize, batch: usize, history: &History) -> Error {
        Error::NonFiniteLoss {
            what: self.what,
            epoch: epoch + 1,
            batch,
            value: self.value,
            history: Box::new(history.clone()),
        }
    }
}

/// One gradient step on one batch; returns the batch's loss. A NaN or infinite loss or gradient
/// stops it before anything is applied, so weights and optimizer state stay as they were.
#[allow(clippy::too_many_arguments)]
fn step<M: Model>(
    m: &mut M,
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
    bufs.state.clear();
    m.visit_weights_mut(&mut |p| {
        if p.role() == crate::layers::Role::State {
            bufs.state.extend_from_slice(&p.value);
        }
    });
    let r = step_unchecked(m, c, &mut bufs.grads, tracker, xs, ys, sw, ctx, dist);
    if r.is_err() && !bufs.state.is_empty() {
        let mut at = 0;
        m.visit_weights_mut(&mut |p| {
            if p.role() == crate::layers::Role::State {
                let len = p.len();
                p.value.copy_from_slice(&bufs.state[at..at + len]);
                at += len;
            }
        });
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn step_unchecked<M: Model>(
    m: &mut M,
    c: &mut Compiled,
    grads: &mut [Vec<f32>],
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
        let k = M::OUTPUTS.len();
        let dys = slices(grads.iter().map(|g| &g[..]));
        m.run_backward(xs, &dys[..k], &c.fused, ctx);
        m.visit_weights_mut(&mut |p| {
            if let Some(r) = p.regularizer
                && p.is_trainable()
            {
                r.add_gradient(&p.value, &mut p.grad);
            }
        });
    }
    if let Some((group, bufs)) = dist {
        loss = reduce_step(group, m, ctx.n, Some(loss), bufs);
        if !loss.is_finite() {
            return Err(Stopped { what: "loss".into(), value: loss });
        }
    }
    let (mut slot, mut bad) = (0, None);
    m.visit_weights_mut(&mut |p| {
        if bad.is_none() && p.is_trainable() {
            bad = crate::kernels::first_non_finite(&p.grad).map(|i| (slot, p.grad[i]));
        }
        slot += 1;
    });
    if let Some((slot, value)) = bad {
        let mut name = String::new();
        let mut i = 0;
        m.visit_weights(&mut |n, _| {
            if i == slot {
                name = n.to_string();
            }
            i += 1;
        });
        return Err(Stopped { what: format!("the gradient of {name}"), value });
    }
    apply_gradients(m, &mut *c.optimizer);
    Ok(loss)
}

/// A data-parallel step's group and its exchange buffers.
type Dist<'a> = Option<(&'a dyn Collective, &'a mut (Vec<f32>, Vec<f32>))>;

/// Sums one data-parallel step over `group`: each trainable gradient (this process's mean over
/// its `rows`), the state weights (moving statistics) and the loss, each process's weighted by
/// its rows; every process gets the same means over all rows. Returns the global loss.
pub(crate) fn reduce_step<M: Model>(
    group: &dyn Collective,
    m: &mut M,
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

/// Applies each trainable parameter's gradient with `opt`, as one optimizer step.
pub fn apply_gradients<M: Model>(m: &mut M, opt: &mut dyn Optimizer) {
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
    opt.begin_step();
    let mut slot = 0;
    m.visit_weights_mut(&mut |p| {
        if p.is_trainable() {
            let (value, grad, shape) = p.update_parts();
            opt.update_shaped(slot, value, grad, shape);
            // Keras applies a weight's constraint right after its update.
            p.apply_constraint();
        }
        slot += 1;
    });
}

/// The sum of every weight's regularization penalty (Keras' `model.losses`), added to the loss.
/// (Visits mutably only because that visit names nothing: no allocation per step.)
fn regularization<M: Model>(m: &mut M) -> f64 {
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

fn gather(src: &[f32], width: usize, rows: &[usize], dst: &mut Vec<f32>) {
    let dst = sized(dst, rows.len() * width);
    for (d, &r) in dst.chunks_exact_mut(width).zip(rows) {
        d.copy_from_slice(&src[r * width..(r + 1) * width]);
    }
}

/// Rows `from..to` of every array.
fn range<'a>(rows: &'a [Rows<'_>], from: usize, to: usize) -> Slices<'a> {
    slices(rows.iter().map(|r| &r.data[from * r.width()..to * r.width()]))
}

/// A user-defined training step (Keras' `train_step` override): given the model, the compiled
/// optimizer and one batch, it updates the model. It must run the model forward on the batch
/// (`loss_and_grads` does): fit then reads the model's outputs for the loss and metrics it shows.
pub type TrainStep<'f, M> = dyn FnMut(&mut M, &mut dyn Optimizer, StepBatch<'_>) -> Result<()> + 'f;

/// One batch handed to a [`TrainStep`]: `[rows, width]` views, one per input and per output.
pub struct StepBatch<'a> {
    /// One view per input.
    pub x: Vec<ndarray::ArrayView2<'a, f32>>,
    /// One view per output's targets.
    pub y: Vec<ndarray::ArrayView2<'a, f32>>,
}

fn views<'a>(rows: &[&'a [f32]], n: usize) -> Vec<ndarray::ArrayView2<'a, f32>> {
    rows.iter().filter_map(|r| ndarray::ArrayView2::from_shape((n, r.len() / n.max(1)), r).ok()).collect()
}

pub(crate) fn fit<M: Model>(
    m: &mut M,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
    opts: &Fit<'_>,
    mut custom: Option<&mut TrainStep<'_, M>>,
    callbacks: &mut [&mut dyn Callback],
) -> Result<History> {
    let c = compiled(m, "fit")?;
    check_batch_size(opts.batch_size)?;
    if !(0.0..1.0).contains(&opts.validation_split) {
        return Err(Error::invalid("validation_split", format!("must be in [0, 1), got {}", opts.validation_split)));
    }
    let xs = data::inputs::<M>(&x, "x")?;
    let n = xs[0].n;
    let ys = data::targets::<M>(&y, n, &c.losses(), "y")?;
    let validation = match &opts.validation_data {
        Some((xv, yv)) => {
            let xv = data::inputs::<M>(xv, "validation_data x")?;
            let yv = data::targets::<M>(yv, xv[0].n, &c.losses(), "validation_data y")?;
            Some((xv, yv))
        }
        None => None,
    };
    // Keras: the validation rows are the last ones, taken before shuffling.
    let n_train = if validation.is_none() { n - validation_rows(n, opts.validation_split) } else { n };
    if n_train == 0 {
        return Err(Error::invalid(
            "validation_split",
            format!("{} of {n} rows leaves no rows to train on", opts.validation_split),
        ));
    }
    if opts.steps_per_epoch == Some(0) {
        return Err(Error::invalid("steps_per_epoch", "must be at least 1, got 0"));
    }
    if opts.steps_per_epoch.is_some() && callbacks.iter().any(|cb| cb.backup().is_some()) {
        // A backup holds whole epochs; where a pass stood inside the data is not saved.
        return Err(Error::invalid(
            "steps_per_epoch",
            "cannot be combined with BackupAndRestore yet: a resumed run would not continue the pass where it stood",
        ));
    }
    if opts.validation_freq == 0 {
        return Err(Error::invalid("validation_freq", "must be at least 1 (validate every n-th epoch), got 0"));
    }
    let sw = data::row_weights::<M>(opts, n, &ys, &c.losses())?;
    let val_sw = match (&validation, opts.validation_sample_weight) {
        (Some((xv, _)), Some(w)) => Some(data::sample_weights(w, xv[0].n, "validation_sample_weight")?),
        (None, Some(_)) => {
            return Err(Error::invalid("validation_sample_weight", "is for validation_data, which was not given"));
        }
        _ => None,
    };
    let (ni, no) = (M::INPUTS.len(), M::OUTPUTS.len());
    // A backup left by an interrupted run: restore it and continue after its last epoch.
    let mut first_epoch = opts.initial_epoch;
    if let Some(path) = callbacks.iter().find_map(|cb| cb.backup().filter(|p| p.exists()).map(|p| p.to_path_buf())) {
        let before = m.train_state().epochs();
        m.load_checkpoint(&path)?;
        first_epoch += m.train_state().epochs().saturating_sub(before) as usize;
    }

    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let TrainState { compiled, stream, ws, seed, epochs: trained, group, .. } = st;
        let c = compiled.as_mut().ok_or(Error::NotCompiled("fit"))?;
        // A replica of a data-parallel run: its rank's shard of each batch; process 0 speaks.
        let group = group.clone();
        let (rank, size) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
        let verbose = if rank == 0 { opts.verbose } else { 0 };
        if let Some(g) = &group {
            crate::distributed::check_replicas(&**g, m, "when fit started (build every replica from the same seed)")?;
        }
        let mut tracker = Tracker::new::<M>(c);
        let mut val_tracker = Tracker::new::<M>(c);
        let mut history = History::default();
        ws.xb.resize(ni, Vec::new());
        ws.yb.resize(no, Vec::new());
        ws.step.grads.resize(no, Vec::new());
        ws.order.clear();
        ws.order.extend(0..n_train);
        let steps = n_train.div_ceil(opts.batch_size);
        // With `steps_per_epoch`, epochs take that many batches from passes over the data that
        // carry on from one epoch to the next (Keras' EpochIterator): `cursor` is the next batch
        // of the current pass; a pass that runs out ends its epoch early.
        let per_epoch = opts.steps_per_epoch.unwrap_or(steps);
        let mut cursor = 0;
        let mut stop = false;
        macro_rules! hook {
            ($method:ident($($arg:expr),*)) => {
                for cb in callbacks.iter_mut() {
                    let mut handle = Handle {
                        m: &mut *m,
                        optimizer: &mut *c.optimizer,
                        stop: &mut stop,
                        epochs: *trained,
                        seed: *seed,
                        stream: stream.position(),
                        chief: rank == 0,
                    };
                    cb.$method($($arg,)* &mut handle)?;
                }
            };
        }
        // A monitored key the epochs' logs will not have is an error before any training.
        let mut keys = Logs::new();
        tracker.logs::<M>("", &mut keys);
        if validation.is_some() || n_train < n {
            val_tracker.logs::<M>("val_", &mut keys);
        }
        for cb in callbacks.iter() {
            if let Some(monitor) = cb.monitors().filter(|k| !keys.contains_key(*k)) {
                return Err(callbacks::unknown_monitor(keys.keys().map(|k| k.as_str()), monitor, "a callback"));
            }
        }
        hook!(on_train_begin());
        let terminate_on_nan = callbacks.iter().any(|cb| cb.terminates_on_nan());
        let mut invalid = None;
        let mut last_logs = Logs::new();
        for epoch in first_epoch..opts.epochs {
            hook!(on_epoch_begin(epoch));
            if opts.shuffle && cursor == 0 {
                // From the identity each pass, so the order depends only on (seed, epoch).
                ws.order.iter_mut().enumerate().for_each(|(i, r)| *r = i);
                ws.order.shuffle(&mut epoch_rng(*seed, *trained));
            }
            tracker.reset();
            let taken = per_epoch.min(steps - cursor);
            let progress = progress::Progress::new(verbose, epoch, opts.epochs, taken);
            let first = cursor;
            cursor = if first + taken >= steps { 0 } else { first + taken };
            for (b, rows) in ws.order.chunks(opts.batch_size).skip(first).take(taken).enumerate() {
                hook!(on_train_batch_begin(b));
                let rows = &rows[crate::distributed::shard(rows.len(), rank, size)];
                let k = rows.len();
                let at = rows.first().copied().unwrap_or(0);
                let (xb, yb) = if opts.shuffle {
                    for (buf, r) in ws.xb.iter_mut().zip(&xs) {
                        gather(&r.data, r.width(), rows, buf);
                    }
                    for (buf, r) in ws.yb.iter_mut().zip(&ys) {
                        gather(&r.data, r.width(), rows, buf);
                    }
                    if let Some(w) = &sw {
                        gather(w, 1, rows, &mut ws.wb);
                    }
                    (slices(ws.xb.iter().map(|v| &v[..])), slices(ws.yb.iter().map(|v| &v[..])))
                } else {
                    // In order: the batch is a contiguous range of rows, read in place.
                    (range(&xs, at, at + k), range(&ys, at, at + k))
                };
                let wb = sw.as_ref().map(|w| if opts.shuffle { &ws.wb[..] } else { &w[at..at + k] });
                match custom.as_deref_mut() {
                    None => {
                        let mut ctx = Ctx::new(k, true, stream);
                        let dist = group.as_deref().map(|g| (g, &mut ws.reduce));
                        if let Err(s) = step(m, c, &mut ws.step, &mut tracker, &xb[..ni], &yb[..no], wb, &mut ctx, dist) {
                            if terminate_on_nan {
                                invalid = Some(b);
                                break;
                            }
                            return Err(s.at(epoch, b, &history));
                        }
                    }
                    Some(f) => {
                        f(m, &mut *c.optimizer, StepBatch { x: views(&xb[..ni], k), y: views(&yb[..no], k) })?;
                        let mut loss = if k > 0 { tracker.observe(m, c, &yb[..no], k, None, wb) } else { 0.0 };
                        if let Some(g) = &group {
                            // Every replica judges the loss of all the rows, so all stop together.
                            let v = &mut ws.reduce.0;
                            v.clear();
                            v.extend([k as f32, loss]);
                            crate::distributed::weighted_mean(&**g, v, &mut ws.reduce.1);
                            loss = v[1];
                        }
                        if !loss.is_finite() {
                            if terminate_on_nan {
                                invalid = Some(b);
                                break;
                            }
                            return Err(Stopped { what: "loss".into(), value: loss }.at(epoch, b, &history));
                        }
                    }
                }
                progress.step(b + 1, || {
                    let mut lg = Logs::new();
                    tracker.logs::<M>("", &mut lg);
                    lg
                });
                if !callbacks.is_empty() {
                    // Built only for callbacks: plain `fit` allocates nothing per step.
                    let mut batch_logs = Logs::new();
                    tracker.logs::<M>("", &mut batch_logs);
                    hook!(on_train_batch_end(b, &batch_logs));
                    if stop {
                        break;
                    }
                }
            }
            if let Some(b) = invalid {
                // TerminateOnNaN: the bad step was not applied; end with the epochs finished.
                if verbose > 0 {
                    println!("Batch {b}: Invalid loss, terminating training");
                }
                break;
            }
            if let Some(g) = &group {
                // The epoch's losses and metrics over every replica's rows; and, in debug builds,
                // proof that the replicas are still one model.
                tracker.all_sum(&**g, &mut ws.sums);
                if cfg!(debug_assertions) {
                    crate::distributed::check_replicas(&**g, m, &format!("after epoch {}", epoch + 1))?;
                }
            }
            let mut epoch_logs = Logs::new();
            tracker.logs::<M>("", &mut epoch_logs);
            let held_out = match &validation {
                Some((xv, yv)) => Some((&xv[..], &yv[..], 0, val_sw.as_deref())),
                None if n_train < n => Some((&xs[..], &ys[..], n_train, sw.as_deref())),
                None => None,
            };
            if let Some((xv, yv, from, w)) = held_out.filter(|_| (epoch + 1) % opts.validation_freq == 0) {
                hook!(on_test_begin());
                val_tracker.reset();
                evaluate_rows(m, c, &mut val_tracker, xv, yv, from, opts.batch_size, w, group.as_deref())?;
                val_tracker.logs::<M>("val_", &mut epoch_logs);
                if !callbacks.is_empty() {
                    let mut test_logs = Logs::new();
                    val_tracker.logs::<M>("", &mut test_logs);
                    hook!(on_test_end(&test_logs));
                }
            }
            progress.finish(&epoch_logs);
            *trained += 1;
            hook!(on_epoch_end(epoch, &epoch_logs));
            // As Keras' ReduceLROnPlateau and LearningRateScheduler do: the rate after the epoch.
            if callbacks.iter().any(|cb| cb.logs_learning_rate()) {
                epoch_logs.insert("learning_rate".into(), c.optimizer.learning_rate() as f64);
            }
            history.push(epoch, &epoch_logs);
            last_logs = epoch_logs;
            if stop {
                break;
            }
        }
        hook!(on_train_end(&last_logs));
        Ok(history)
    })
}

/// A callback's view of the model in training: the model, its optimizer and the loop's state.
struct Handle<'a, M: Model> {
    m: &'a mut M,
    optimizer: &'a mut dyn Optimizer,
    stop: &'a mut bool,
    epochs: u64,
    seed: u64,
    stream: u64,
    /// Process 0 of a data-parallel run, or the only process: the one that writes files.
    chief: bool,
}

impl<M: Model> Trainee for Handle<'_, M> {
    fn model_name(&self) -> &'static str {
        M::NAME
    }

    fn get_weights(&self) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        self.m.visit_weights(&mut |_, p| out.push(p.value.clone()));
        out
    }

    fn set_weights(&mut self, weights: &[Vec<f32>]) -> Result<()> {
        let mut lens = Vec::new();
        self.m.visit_weights(&mut |_, p| lens.push(p.len()));
        if lens.len() != weights.len() || lens.iter().zip(weights).any(|(l, w)| *l != w.len()) {
            return Err(Error::invalid("weights", format!("these are not the weights of {}", M::NAME)));
        }
        let mut i = 0;
        self.m.visit_weights_mut(&mut |p| {
            p.value.copy_from_slice(&weights[i]);
            i += 1;
        });
        Ok(())
    }

    fn save_weights(&self, path: &std::path::Path) -> Result<()> {
        if !self.chief {
            return Ok(());
        }
        crate::io::save_weights(&*self.m, path)
    }

    fn is_chief(&self) -> bool {
        self.chief
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        if !self.chief {
            return Ok(());
        }
        let state = self.optimizer.state();
        let resume = crate::io::Resume {
            optimizer: self.optimizer.name(),
            state: &state,
            epochs: self.epochs,
            seed: self.seed,
            stream: self.stream,
        };
        crate::io::save_checkpoint_with(&*self.m, resume, path)
    }

    fn learning_rate(&self) -> f32 {
        self.optimizer.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::invalid("learning_rate", format!("must be finite and >= 0, got {lr}")));
        }
        self.optimizer.set_learning_rate(lr);
        Ok(())
    }

    fn stop_training(&mut self) {
        *self.stop = true;
    }
}

/// The one batch loop of inference: runs `m` on rows `from..` of `xs` in batches of `batch` rows
/// and hands each batch's first row and size to `each`, with the model's outputs ready.
fn infer_batches<M: Model>(
    m: &mut M,
    xs: &[Rows<'_>],
    (from, n): (usize, usize),
    batch: usize,
    mut each: impl FnMut(&mut M, usize, usize) -> Result<()>,
) -> Result<()> {
    let ni = M::INPUTS.len();
    // Inference draws nothing; the stream is only there to make a context.
    let mut stream = Stream::new(0);
    let mut start = from;
    while start < n {
        let k = batch.min(n - start);
        m.run(&range(xs, start, start + k)[..ni], &mut Ctx::new(k, false, &mut stream));
        each(m, start, k)?;
        start += k;
    }
    Ok(())
}

/// Loss and metrics over rows `from..` of `xs`/`ys`, in batches, with the inference pass. In a
/// data-parallel group each process evaluates its share of the rows and the running sums are
/// summed over the processes, so every process gets the figures of all the rows.
#[allow(clippy::too_many_arguments)]
fn evaluate_rows<M: Model>(
    m: &mut M,
    c: &Compiled,
    tracker: &mut Tracker,
    xs: &[Rows<'_>],
    ys: &[Rows<'_>],
    from: usize,
    batch: usize,
    sw: Option<&[f32]>,
    group: Option<&dyn Collective>,
) -> Result<()> {
    let n = xs[0].n;
    let share = match group {
        Some(g) => crate::distributed::shard(n - from, g.rank(), g.size()),
        None => 0..n - from,
    };
    infer_batches(m, xs, (from + share.start, from + share.end), batch, |m, start, k| {
        let w = sw.map(|w| &w[start..start + k]);
        tracker.observe(m, c, &range(ys, start, start + k)[..M::OUTPUTS.len()], k, None, w);
        Ok(())
    })?;
    if let Some(g) = group {
        tracker.all_sum(g, &mut Default::default());
    }
    Ok(())
}

/// How many of `n` rows `fit` holds out for `validation_split`: the last
/// `n - floor(n · (1 - split))`, computed as Keras does, in double precision on the fraction as
/// written (`0.2`, not the `f32` nearest to it), so both hold out the same rows.
pub fn validation_rows(n: usize, validation_split: f32) -> usize {
    // The shortest decimal that reads back as this f32 is the fraction the user wrote.
    let split: f64 = validation_split.to_string().parse().unwrap_or(validation_split as f64);
    n - ((n as f64 * (1.0 - split)).floor() as usize).min(n)
}

/// The one check of a batch size, for `fit` and `batches`.
pub(crate) fn check_batch_size(size: usize) -> Result<()> {
    if size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1, got 0"));
    }
    Ok(())
}

/// Keras' default `batch_size` of `evaluate`.
pub const EVALUATE_BATCH: usize = 32;

/// Options of [`crate::Model::evaluate_with`], Keras' names.
#[derive(Clone, Copy, Debug)]
pub struct Evaluate {
    /// Rows per forward pass (default 32, as in Keras).
    pub batch_size: usize,
    /// 0: silent (default); 1 or 2: one line with the loss and metrics, as Keras prints it.
    pub verbose: u8,
}

impl Default for Evaluate {
    fn default() -> Self {
        Evaluate { batch_size: EVALUATE_BATCH, verbose: 0 }
    }
}

/// Options of [`crate::Model::predict_with`], Keras' names.
#[derive(Clone, Copy, Debug)]
pub struct Predict {
    /// Rows per forward pass (default 1024, where Keras uses 32: larger batches amortise each
    /// product). Predictions agree across batch sizes to float rounding (a few products of a
    /// handful of rows take another kernel, which sums in another order).
    pub batch_size: usize,
    /// 0: silent (default); 1 or 2: one line with the step count and time, as Keras prints it.
    pub verbose: u8,
}

impl Default for Predict {
    fn default() -> Self {
        Predict { batch_size: PREDICT_BATCH, verbose: 0 }
    }
}

pub(crate) fn evaluate<M: Model>(
    m: &mut M,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
    opts: Evaluate,
    sample_weight: Option<ArrayView1<'_, f32>>,
) -> Result<Logs> {
    let c = compiled(m, "evaluate")?;
    check_batch_size(opts.batch_size)?;
    let xs = data::inputs::<M>(&x, "x")?;
    let ys = data::targets::<M>(&y, xs[0].n, &c.losses(), "y")?;
    let sw = sample_weight.map(|w| data::sample_weights(w, xs[0].n, "sample_weight")).transpose()?;
    let progress = progress::Progress::start(opts.verbose, None, xs[0].n.div_ceil(opts.batch_size));
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_ref().ok_or(Error::NotCompiled("evaluate"))?;
        let mut tracker = Tracker::new::<M>(c);
        evaluate_rows(m, c, &mut tracker, &xs, &ys, 0, opts.batch_size, sw.as_deref(), st.group.as_deref())?;
        let mut out = Logs::new();
        tracker.logs::<M>("", &mut out);
        progress.finish(&out);
        Ok(out)
    })
}

/// Rows per forward pass in `predict`: large enough to amortise each product, small enough that
/// the buffers stay in cache.
const PREDICT_BATCH: usize = 1024;

pub(crate) fn predict<M: Model>(
    m: &mut M,
    x: Vec<crate::model::InputArray<'_>>,
    opts: Predict,
) -> Result<Vec<ArrayD<f32>>> {
    check_batch_size(opts.batch_size)?;
    let xs = data::inputs::<M>(&x, "x")?;
    let n = xs[0].n;
    let mut outs: Vec<ArrayD<f32>> = M::OUTPUTS
        .iter()
        .map(|o| ArrayD::zeros(std::iter::once(n).chain(o.shape.iter().copied()).collect::<Vec<_>>()))
        .collect();
    let progress = progress::Progress::start(opts.verbose, None, n.div_ceil(opts.batch_size));
    let _ftz = FlushDenormals::new();
    infer_batches(m, &xs, (0, xs[0].n), opts.batch_size, |m, start, k| {
        for (j, out) in outs.iter_mut().enumerate() {
            let w = M::OUTPUTS[j].size();
            let dst = out.as_slice_mut().ok_or_else(|| Error::invalid("x", "output array not contiguous"))?;
            dst[start * w..(start + k) * w].copy_from_slice(m.output(j));
        }
        Ok(())
    })?;
    progress.finish(&Logs::new());
    Ok(outs)
}

pub(crate) fn predict_one<'m, M: Model>(m: &'m mut M, x: &[f32]) -> Result<&'m [f32]> {
    if M::INPUTS.len() != 1 {
        return Err(Error::invalid(
            "x",
            format!("predict_one takes one input, but {} has {}: use predict", M::NAME, M::INPUTS.len()),
        ));
    }
    let size = M::INPUTS[0].size();
    if x.len() != size {
        return Err(Error::Shape {
            what: format!("x (one sample for {}, flattened)", M::NAME),
            expected: format!("[{size}]"),
            got: crate::error::Shape(vec![x.len()]),
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidData { what: "x".into(), reason: format!("value {i} is {}", x[i]) });
    }
    if let crate::model::DType::I32 { below } = M::INPUTS[0].dtype {
        data::check_ids(x, size, M::INPUTS[0].shape, below)
            .map_err(|reason| Error::InvalidData { what: "x".into(), reason })?;
    }
    let _ftz = FlushDenormals::new();
    m.run(&[x], &mut Ctx::new(1, false, &mut Stream::new(0)));
    Ok(m.output(0))
}

pub(crate) fn train_on_batch<M: Model>(
    m: &mut M,
    x: Vec<crate::model::InputArray<'_>>,
    y: Vec<crate::model::InputArray<'_>>,
) -> Result<Logs> {
    let c = compiled(m, "train_on_batch")?;
    let xs = data::inputs::<M>(&x, "x")?;
    let n = xs[0].n;
    let ys = data::targets::<M>(&y, n, &c.losses(), "y")?;
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let TrainState { compiled, stream, ws, group, .. } = st;
        let c = compiled.as_mut().ok_or(Error::NotCompiled("train_on_batch"))?;
        let mut tracker = Tracker::new::<M>(c);
        ws.step.grads.resize(M::OUTPUTS.len(), Vec::new());
        let (xb, yb) = (range(&xs, 0, n), range(&ys, 0, n));
        let mut ctx = Ctx::new(n, true, stream);
        // In a data-parallel run each process passes its own rows; the step sums them all.
        let dist = group.as_deref().map(|g| (g, &mut ws.reduce));
        step(m, c, &mut ws.step, &mut tracker, &xb[..M::INPUTS.len()], &yb[..M::OUTPUTS.len()], None, &mut ctx, dist)
            .map_err(|s| s.at(0, 0, &History::default()))?;
        if let Some(g) = group.as_deref() {
            tracker.all_sum(g, &mut ws.sums);
        }
        let mut logs = Logs::new();
        tracker.logs::<M>("", &mut logs);
        Ok(logs)
    })
}

/// Whether output `k` uses the fused softmax + cross-entropy gradient: the one place this is
/// decided. The model macro says which outputs end in a whole-row softmax read by nothing else
/// (`OUTPUT_ACTIVATIONS`); the loss says whether it can hand back `p - y`.
pub(crate) fn fuses<M: Model>(loss: &crate::losses::Loss, k: usize) -> bool {
    loss.fuses_softmax() && M::OUTPUT_ACTIVATIONS.get(k) == Some(&ActKind::Softmax)
}

/// What a `#[kiln::model]` / `#[derive(Model)]` struct keeps besides its layers: the training
/// state and the buffers of its `call` body. `#[kiln::model]` adds it as a hidden field; with
/// `#[derive(Model)]` declare it yourself as `kiln: ModelState<Self>` — the place Keras fills
/// with `super().__init__()`.
pub struct ModelState<M: HasCallState + ?Sized> {
    /// Seed, compiled configuration, training buffers.
    pub train: TrainState,
    /// Buffers of the `call` body (merges, shared-layer uses, gradient sums).
    pub call: M::CallState,
}

/// Implemented by `#[kiln::call]`: the type holding a model's `call`-body buffers.
pub trait HasCallState {
    /// The buffers' type.
    type CallState: Clone + std::fmt::Debug + Default + Send + Sync;
}

impl<M: HasCallState + ?Sized> ModelState<M> {
    /// The state of a model created from `seed`.
    pub fn new(seed: u64) -> Self {
        ModelState { train: TrainState::new(seed), call: Default::default() }
    }
}

impl<M: HasCallState + ?Sized> Clone for ModelState<M> {
    fn clone(&self) -> Self {
        ModelState { train: self.train.clone(), call: self.call.clone() }
    }
}

impl<M: HasCallState + ?Sized> std::fmt::Debug for ModelState<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelState").field("train", &self.train).field("call", &self.call).finish()
    }
}
