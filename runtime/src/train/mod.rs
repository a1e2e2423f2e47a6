//! The compile / fit / evaluate / predict machinery shared by every model.
//!
//! A model holds a [`TrainState`]: its seed and random stream (shuffling), what `compile` chose,
//! and the buffers of the training loop, sized once and reused by every batch. Models may have
//! several inputs and outputs; a single-input, single-output model is the case of one each.

mod callbacks;
mod compile;
mod custom;
mod data;
mod evaluate;
mod fit;
mod own_step;
mod passes;
mod progress;
mod step;

pub use callbacks::{
    BackupAndRestore, Callback, CsvLogger, EarlyStopping, Hook, LambdaCallback, LearningRateScheduler, Mode,
    ModelCheckpoint, NoHook, ReduceLrOnPlateau, TerminateOnNaN, Trainee,
};
pub use compile::{Compile, IntoLoss};
pub use custom::{ApplyGradients, Batchable, Gradients, batches};
pub use evaluate::{EVALUATE_BATCH, Evaluate, Predict};
pub use fit::{StepBatch, TrainStep};
pub use own_step::CustomStep;
pub(crate) use own_step::Typed as TypedStep;
pub use passes::{Backward, Losses, ToLosses};
pub use crate::history::{History, Logs};
pub use step::apply_gradients;

use ndarray::ArrayView1;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};
use crate::kernels::ActKind;
use crate::layers::sized;
use crate::model::dynamic::DynModel;
use crate::model::{MAX_PORTS, Meta};
use crate::optimizers::Optimizer;
use crate::random::Stream;
use compile::Compiled;
use data::Rows;

pub(crate) use compile::compile;
pub(crate) use passes::{backward_train, forward_train, input_gradients, loss_and_grads};
pub(crate) use evaluate::{evaluate, predict, predict_one};
pub(crate) use fit::{evaluate_dataset, fit, fit_dataset, predict_dataset};
pub(crate) use step::train_on_batch;

/// Options of [`Model::fit`](crate::Model::fit), with Keras' names and defaults.
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
    /// Separate validation data `(x, y)`, one view per input and per output; takes precedence
    /// over `validation_split`. Build it with [`validation_data`] from the arrays as `fit` takes
    /// them: `Fit { validation_data: validation_data(&x_val, &y_val), ..Fit::default() }` (or
    /// `validation_data((&a, &b), &y)` for several inputs).
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
    /// The inputs of the last `forward_train`, for `backward_train`.
    tape: passes::Tape,
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
    /// The copy of the weights and the optimizer's state a refused update restores.
    undo: step::Undo,
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
    /// The model's own buffers as a shared layer names them (see `Shareable` on models).
    own: crate::layers::ModelBuffers,
    /// A model that reads strings (`Input([], dtype = string)`): what they go through first
    /// (a `TextVectorization`, `StringLookup` or `Hashing`), whose state is saved and loaded with
    /// the weights.
    strings: Option<crate::data::StringInput>,
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
            own: Default::default(),
            strings: None,
        }
    }

    /// A model reading strings: what they go through first (see `sequential!`'s `Input([],
    /// dtype = string)`), its state learned by `adapt`.
    pub fn strings(&self) -> Option<&crate::data::StringInput> {
        self.strings.as_ref()
    }

    /// The string preprocessing of a model reading strings, to adapt.
    pub fn strings_mut(&mut self) -> Option<&mut crate::data::StringInput> {
        self.strings.as_mut()
    }

    /// Makes the model read strings through `s` (the model macros call this).
    pub fn set_strings(&mut self, s: crate::data::StringInput) {
        self.strings = Some(s);
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

    /// What `Shareable::buffers_mut` of a model returns (a model swaps its activations with
    /// `swap_model_buffers` instead; see `layers::ModelBuffers`).
    #[doc(hidden)]
    pub fn own_buffers(&mut self) -> &mut crate::layers::ModelBuffers {
        &mut self.own
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
fn with_state<T>(
    m: &mut dyn DynModel,
    f: impl FnOnce(&mut dyn DynModel, &mut TrainState) -> Result<T>,
) -> Result<T> {
    let placeholder = TrainState::new(0);
    let mut st = std::mem::replace(m.train_state_mut(), placeholder);
    let r = f(m, &mut st);
    *m.train_state_mut() = st;
    r
}

fn compiled<'s>(m: &'s dyn DynModel, call: &'static str) -> Result<&'s Compiled> {
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

/// Rows per sample that a loss or metric averages over: every position along the axes before the
/// last (Keras reduces the last axis, then takes the mean over the rest).
pub(crate) fn loss_rows(port: &crate::model::Port) -> usize {
    port.size() / port.last().max(1)
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

/// How many of `n` rows `fit` holds out for `validation_split`: the last
/// `n - floor(n · (1 - split))`, computed as Keras does, in double precision on the fraction as
/// written (`0.2`, not the `f32` nearest to it), so both hold out the same rows.
pub fn validation_rows(n: usize, validation_split: f32) -> usize {
    // The shortest decimal that reads back as this f32 is the fraction the user wrote.
    let split: f64 = validation_split.to_string().parse().unwrap_or(validation_split as f64);
    n - ((n as f64 * (1.0 - split)).floor() as usize).min(n)
}

/// The one check of a batch size, for `fit` and `batches`.
/// Refuses to run a model whose bin boundaries are not usable: a Discretization not yet
/// adapted (its boundaries NaN), or boundaries that do not increase. (Only those: the other
/// weights are checked where they change, and scanning every weight would cost `predict_one`
/// more than its product.)
pub(crate) fn check_usable(m: &dyn DynModel) -> Result<()> {
    let layers = m.meta().layers;
    if !layers.iter().any(|l| matches!(l.kind, "Discretization" | "IntegerLookup")) {
        return Ok(());
    }
    let mut refused = None;
    m.visit_weights(&mut |name, p| {
        if refused.is_some() {
            return;
        }
        if let Some(layer) = name.strip_suffix(".vocabulary")
            && layers.iter().any(|l| l.name == layer && l.kind == "IntegerLookup")
            && p.value.iter().all(|v| *v == -1.0)
        {
            refused = Some(format!(
                "layer `{layer}` (IntegerLookup) has no vocabulary yet: call model.adapt(\"{layer}\", &x) first"
            ));
        } else if p.is_boundaries()
            && let Some(why) = p.refuse(&p.value)
        {
            refused = Some(match name.strip_suffix(".bin_boundaries") {
                Some(layer) if p.value.iter().all(|v| v.is_nan()) => format!(
                    "layer `{layer}` (Discretization) has no bin boundaries yet: give them (bin_boundaries = [..]) or call model.adapt(\"{layer}\", &x) first"
                ),
                _ => format!("weight `{name}` {why}"),
            });
        }
    });
    refused.map_or(Ok(()), |why| Err(Error::invalid("model", why)))
}

pub(crate) fn check_batch_size(size: usize) -> Result<()> {
    if size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1, got 0"));
    }
    Ok(())
}

/// Whether output `k` uses the fused softmax + cross-entropy gradient: the one place this is
/// decided. The model macro says which outputs end in a whole-row softmax read by nothing else
/// (`OUTPUT_ACTIVATIONS`); the loss says whether it can hand back `p - y`.
pub(crate) fn fuses(meta: &Meta, loss: &crate::losses::Loss, k: usize) -> bool {
    loss.fuses_softmax() && meta.output_activations.get(k) == Some(&ActKind::Softmax)
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
