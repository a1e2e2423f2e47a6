//! `fit`: the epochs loop, in Keras' phases. The arguments are checked and the rows laid out
//! once ([`prepare`]); each epoch shuffles, trains its batches ([`Run::train_epoch`]), validates
//! ([`Run::validate`]) and tells the callbacks, which see the model through a [`Handle`].

use rand::seq::SliceRandom;

use crate::distributed::Group;
use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::Ctx;
use crate::model::dynamic::DynModel;
use crate::model::{InputArray, Meta};
use crate::optimizers::Optimizer;
use crate::random::Stream;

use super::callbacks::{self, Callback};
use super::compile::Compiled;
use super::data;
use super::evaluate::evaluate_rows;
use super::own_step::{DynCustomStep, LogMeans};
use super::step::{Stopped, Tracker, step};
use super::{
    Fit, History, Logs, TrainState, Workspace, check_batch_size, compiled, epoch_rng, gather, progress, range, slices,
    validation_rows, with_state,
};

mod handle;
mod stream;

use handle::Handle;
pub(crate) use stream::{evaluate_dataset, fit_dataset, predict_dataset};

/// A user-defined training step (Keras' `train_step` override): given the model, the compiled
/// optimizer and one batch, it updates the model. It must run the model forward on the batch
/// (`loss_and_grads` does): fit then reads the model's outputs for the loss and metrics it shows.
pub type TrainStep<'f, M> = dyn FnMut(&mut M, &mut dyn Optimizer, StepBatch<'_>) -> Result<()> + 'f;

/// A [`TrainStep`] as `fit` calls it, on the model as a trait object.
pub(crate) type DynStep<'f> = dyn FnMut(&mut dyn DynModel, &mut dyn Optimizer, StepBatch<'_>) -> Result<()> + 'f;

/// One batch handed to a [`TrainStep`] or a [`CustomStep`](crate::CustomStep): `[rows, width]` views, one per
/// array of `x` and of `y`; [`input`](Self::input) and [`target`](Self::target) give them in their
/// own shapes.
pub struct StepBatch<'a> {
    /// One view per input.
    pub x: Vec<ndarray::ArrayView2<'a, f32>>,
    /// One view per output's targets.
    pub y: Vec<ndarray::ArrayView2<'a, f32>>,
    shapes: &'a Shapes,
}

/// The shape of one row of each array of `x` and of `y`, as given to `fit`.
#[derive(Debug, Default)]
struct Shapes {
    x: Vec<Vec<usize>>,
    y: Vec<Vec<usize>>,
}

impl<'a> StepBatch<'a> {
    /// The batch's rows.
    pub fn rows(&self) -> usize {
        self.x.first().map_or(0, |v| v.nrows())
    }

    /// Array `i` of `x`, the batch's rows in their shape (`[k, 8, 8, 1]` for images).
    pub fn input(&self, i: usize) -> ndarray::ArrayViewD<'a, f32> {
        shaped(&self.x[i], &self.shapes.x[i])
    }

    /// Array `i` of `y`, the batch's rows in their shape (`[k]` for labels).
    pub fn target(&self, i: usize) -> ndarray::ArrayViewD<'a, f32> {
        shaped(&self.y[i], &self.shapes.y[i])
    }
}

fn shaped<'a>(v: &ndarray::ArrayView2<'a, f32>, row: &[usize]) -> ndarray::ArrayViewD<'a, f32> {
    let shape: Vec<usize> = std::iter::once(v.nrows()).chain(row.iter().copied()).collect();
    // The views are whole rows of arrays of these shapes: the reshape keeps every value.
    (*v).into_shape_with_order(ndarray::IxDyn(&shape)).unwrap_or_else(|_| (*v).into_dyn())
}

fn shapes_of(arrays: &[InputArray<'_>]) -> Vec<Vec<usize>> {
    arrays.iter().map(|a| a.shape().get(1..).unwrap_or(&[]).to_vec()).collect()
}

fn views<'a>(rows: &[&'a [f32]], n: usize) -> Vec<ndarray::ArrayView2<'a, f32>> {
    rows.iter().filter_map(|r| ndarray::ArrayView2::from_shape((n, r.len() / n.max(1)), r).ok()).collect()
}

/// The training data as `fit` reads it, every argument checked.
struct Prepared<'v> {
    xs: Vec<data::Rows<'v>>,
    ys: Vec<data::Rows<'v>>,
    /// `validation_data`, checked as `x` and `y` are.
    validation: Option<(Vec<data::Rows<'v>>, Vec<data::Rows<'v>>)>,
    /// Rows of `x`, and the first of them held out by `validation_split`.
    n: usize,
    n_train: usize,
    /// One weight per row of `x` (`sample_weight` or `class_weight`) and of `validation_data`.
    sw: Option<Vec<f32>>,
    val_sw: Option<Vec<f32>>,
    shapes: Shapes,
    /// `fit_dataset` was given a validation dataset.
    streamed_validation: bool,
}

impl Prepared<'_> {
    /// Whether the epochs' logs have `val_` keys.
    fn validates(&self) -> bool {
        self.validation.is_some() || self.n_train < self.n || self.streamed_validation
    }

    /// The rows validation reads: `validation_data`, or the rows `validation_split` held out.
    #[allow(clippy::type_complexity)]
    fn held_out(&self) -> Option<(&[data::Rows<'_>], &[data::Rows<'_>], usize, Option<&[f32]>)> {
        match &self.validation {
            Some((xv, yv)) => Some((&xv[..], &yv[..], 0, self.val_sw.as_deref())),
            None if self.n_train < self.n => Some((&self.xs[..], &self.ys[..], self.n_train, self.sw.as_deref())),
            None => None,
        }
    }
}

/// The rows `fit` trains on: all of them beside `validation_data`, else those `validation_split`
/// leaves (Keras: the validation rows are the last ones, taken before shuffling); none is an error.
fn training_rows(n: usize, validation_data: bool, opts: &Fit<'_>) -> Result<usize> {
    let n_train = if validation_data { n } else { n - validation_rows(n, opts.validation_split) };
    if n_train == 0 {
        return Err(Error::invalid(
            "validation_split",
            format!("{} of {n} rows leaves no rows to train on", opts.validation_split),
        ));
    }
    Ok(n_train)
}

/// Checks every argument of `fit` before any weight changes, and lays out the rows.
fn prepare<'v>(
    m: &dyn DynModel,
    x: &'v [InputArray<'_>],
    y: &'v [InputArray<'_>],
    opts: &'v Fit<'_>,
    callbacks: &[&mut dyn Callback],
    own: bool,
) -> Result<Prepared<'v>> {
    check_batch_size(opts.batch_size)?;
    if !(0.0..1.0).contains(&opts.validation_split) {
        return Err(Error::invalid("validation_split", format!("must be in [0, 1), got {}", opts.validation_split)));
    }
    if own {
        return prepare_own(m, x, y, opts);
    }
    let meta = m.meta();
    let c = compiled(m, "fit")?;
    let xs = data::inputs(&meta, x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, y, n, &c.losses(), "y")?;
    let validation = match &opts.validation_data {
        Some((xv, yv)) => {
            let xv = data::inputs(&meta, xv, "validation_data x")?;
            let yv = data::targets(&meta, yv, xv[0].n, &c.losses(), "validation_data y")?;
            Some((xv, yv))
        }
        None => None,
    };
    let n_train = training_rows(n, validation.is_some(), opts)?;
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
    let sw = data::row_weights(&meta, opts, n, &ys, &c.losses())?;
    let val_sw = match (&validation, opts.validation_sample_weight) {
        (Some((xv, _)), Some(w)) => Some(data::sample_weights(w, xv[0].n, "validation_sample_weight")?),
        (None, Some(_)) => {
            return Err(Error::invalid("validation_sample_weight", "is for validation_data, which was not given"));
        }
        _ => None,
    };
    let shapes = Shapes { x: shapes_of(x), y: shapes_of(y) };
    let data = Prepared { xs, ys, validation, n, n_train, sw, val_sw, shapes, streamed_validation: false };
    check_callbacks(m, c, data.validates(), callbacks)?;
    Ok(data)
}

/// `prepare` for a [`CustomStep`]: `x` and `y` are whatever the step reads (any shapes, one row
/// per sample), checked for row counts and finite values; the step weighs rows itself.
fn prepare_own<'v>(
    m: &dyn DynModel,
    x: &'v [InputArray<'_>],
    y: &'v [InputArray<'_>],
    opts: &'v Fit<'_>,
) -> Result<Prepared<'v>> {
    if opts.sample_weight.is_some() || opts.class_weight.is_some() || opts.validation_sample_weight.is_some() {
        return Err(Error::invalid("sample_weight", "is not taken with a custom step: weigh the rows in train_step"));
    }
    if m.train_state().group().is_some() {
        return Err(Error::invalid("fit_steps", "does not run data-parallel yet: reduce the gradients in the step"));
    }
    let xs = data::free_rows(x, None, "x")?;
    let n = xs[0].n;
    let ys = data::free_rows(y, Some(n), "y")?;
    let shapes = Shapes { x: shapes_of(x), y: shapes_of(y) };
    let validation = match &opts.validation_data {
        Some((xv, yv)) => {
            if shapes_of(xv) != shapes.x || shapes_of(yv) != shapes.y {
                return Err(Error::invalid("validation_data", "needs arrays shaped as x and y, row for row"));
            }
            let xv_rows = data::free_rows(xv, None, "validation_data x")?;
            let yv_rows = data::free_rows(yv, Some(xv_rows[0].n), "validation_data y")?;
            Some((xv_rows, yv_rows))
        }
        None => None,
    };
    let n_train = training_rows(n, validation.is_some(), opts)?;
    if opts.steps_per_epoch == Some(0) || opts.validation_freq == 0 {
        return Err(Error::invalid("steps_per_epoch", "steps_per_epoch and validation_freq must be at least 1"));
    }
    Ok(Prepared { xs, ys, validation, n, n_train, sw: None, val_sw: None, shapes, streamed_validation: false })
}

/// What the callbacks need, checked before any training (and before a backup is restored): the
/// log keys they monitor or name, and the folders they write into.
fn check_callbacks(m: &dyn DynModel, c: &Compiled, validates: bool, callbacks: &[&mut dyn Callback]) -> Result<()> {
    let meta = m.meta();
    let mut logs = Logs::new();
    Tracker::new(&meta, c).logs(&meta, "", &mut logs);
    if validates {
        Tracker::new(&meta, c).logs(&meta, "val_", &mut logs);
    }
    for cb in callbacks.iter() {
        if let Some(monitor) = cb.monitors().filter(|k| !logs.contains_key(*k)) {
            return Err(callbacks::unknown_monitor(logs.keys().map(|k| k.as_str()), monitor, "a callback"));
        }
    }
    let keys: Vec<&str> = logs.keys().map(|k| k.as_str()).collect();
    let writes_files = m.train_state().group().is_none_or(|g| g.rank() == 0);
    callbacks.iter().try_for_each(|cb| cb.check(&keys, writes_files))
}

/// Trains `m` (see [`crate::Model::fit`]); `custom` replaces the step, `callbacks` are told.
pub(crate) fn fit<'f>(
    m: &mut dyn DynModel,
    x: Vec<InputArray<'_>>,
    y: Vec<InputArray<'_>>,
    opts: &Fit<'_>,
    custom: Option<&mut DynStep<'f>>,
    own: Option<&mut (dyn DynCustomStep + 'f)>,
    callbacks: &mut [&mut dyn Callback],
) -> Result<History> {
    super::check_usable(m)?;
    let data = prepare(m, &x, &y, opts, callbacks, own.is_some())?;
    train(m, &data, None, opts, custom, own, callbacks)
}

/// The loop of `fit` and `fit_dataset`, on checked arrays or on datasets.
fn train<'f>(
    m: &mut dyn DynModel,
    data: &Prepared<'_>,
    streams: Option<stream::Streams<'_>>,
    opts: &Fit<'_>,
    custom: Option<&mut DynStep<'f>>,
    mut own: Option<&mut (dyn DynCustomStep + 'f)>,
    callbacks: &mut [&mut dyn Callback],
) -> Result<History> {
    // A backup left by an interrupted run: restore it and continue after its last epoch.
    let mut first_epoch = opts.initial_epoch;
    if let Some(path) = callbacks.iter().find_map(|cb| cb.backup().filter(|p| p.exists()).map(|p| p.to_path_buf())) {
        let before = m.train_state().epochs();
        crate::io::remove_stale_temporaries(&path);
        match own.as_deref_mut() {
            Some(step) => crate::io::load_checkpoint_with(m, &path, &mut step.optimizers())?,
            None => crate::io::load_checkpoint(m, &path)?,
        }
        first_epoch += m.train_state().epochs().saturating_sub(before) as usize;
    }
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let TrainState { compiled, stream, ws, seed, epochs: trained, group, .. } = st;
        // A model trained only through a step's own optimizers need not be compiled.
        let mut unused = Compiled { outputs: Vec::new(), optimizer: Box::new(crate::optimizers::Sgd::new(0.0)), fused: Vec::new() };
        let uncompiled = compiled.is_none();
        let c = match compiled.as_mut() {
            Some(c) => c,
            None if own.is_some() => &mut unused,
            None => return Err(Error::NotCompiled("fit")),
        };
        // A replica of a data-parallel run: its rank's shard of each batch; process 0 speaks.
        let group = group.clone();
        let (rank, size) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
        if let Some(g) = &group {
            crate::distributed::check_replicas(&**g, m, "when fit started (build every replica from the same seed)")?;
        }
        let meta = m.meta();
        let steps = data.n_train.div_ceil(opts.batch_size);
        let run = Run {
            tracker: Tracker::new(&meta, c),
            val_tracker: Tracker::new(&meta, c),
            m,
            c,
            stream,
            ws,
            trained,
            seed: *seed,
            meta,
            group,
            rank,
            size,
            verbose: if rank == 0 { opts.verbose } else { 0 },
            opts,
            data,
            streams,
            terminate_on_nan: callbacks.iter().any(|cb| cb.terminates_on_nan()),
            callbacks,
            custom,
            own,
            uncompiled,
            means: LogMeans::default(),
            val_means: LogMeans::default(),
            history: History::default(),
            stop: false,
            steps,
            cursor: 0,
        };
        run.epochs(first_epoch)
    })
}

/// One `fit` call in progress: the model with its state taken apart, the data, the callbacks,
/// and where the loop stands.
struct Run<'m, 'a, 'o, 'cb, 'f, 's> {
    m: &'m mut dyn DynModel,
    c: &'m mut Compiled,
    stream: &'m mut Stream,
    ws: &'m mut Workspace,
    /// Epochs trained so far (all runs), with the seed what fixes the next epoch's shuffle.
    trained: &'m mut u64,
    seed: u64,
    meta: Meta,
    group: Option<Group>,
    rank: usize,
    size: usize,
    verbose: u8,
    opts: &'a Fit<'o>,
    data: &'a Prepared<'a>,
    /// `fit_dataset`'s datasets, read in place of `data`'s rows.
    streams: Option<stream::Streams<'s>>,
    callbacks: &'a mut [&'cb mut dyn Callback],
    custom: Option<&'a mut DynStep<'f>>,
    /// A step of the user's that owns its optimizers and returns its logs ([`CustomStep`]).
    own: Option<&'a mut (dyn DynCustomStep + 'f)>,
    /// Not compiled: only `own`'s optimizers train the model.
    uncompiled: bool,
    /// The running means of `own`'s logs, in training and in validation.
    means: LogMeans,
    val_means: LogMeans,
    terminate_on_nan: bool,
    tracker: Tracker,
    val_tracker: Tracker,
    history: History,
    /// A callback asked to stop training.
    stop: bool,
    /// Batches in one pass over the training rows, and the next batch of the current pass:
    /// with `steps_per_epoch`, epochs take that many batches from passes that carry on from one
    /// epoch to the next (Keras' EpochIterator); a pass that runs out ends its epoch early.
    steps: usize,
    cursor: usize,
}

/// One batch as the step reads it: row slices per input and output, weights, rows.
struct BatchRows<'b> {
    x: &'b [&'b [f32]],
    y: &'b [&'b [f32]],
    w: Option<&'b [f32]>,
    k: usize,
    /// The row shapes of a dataset's batch (a custom step's arrays may be any shape); `None`:
    /// those of the arrays `fit` was given.
    shapes: Option<&'b Shapes>,
}

/// What the loop does after a batch.
enum Flow {
    Next,
    /// A callback asked to stop.
    Stop,
    /// TerminateOnNaN: the step was not applied.
    Invalid,
}

/// How an epoch's batches ended.
enum EpochEnd {
    /// Every batch ran (or a callback stopped training after one).
    Done,
    /// TerminateOnNaN: batch `b`'s step was not applied.
    Invalid(usize),
}

impl Run<'_, '_, '_, '_, '_, '_> {
    /// Calls `f` on every callback, in order, with a handle on the model.
    fn hook(&mut self, mut f: impl FnMut(&mut dyn Callback, &mut Handle<'_>) -> Result<()>) -> Result<()> {
        for cb in self.callbacks.iter_mut() {
            let mut handle = Handle {
                m: &mut *self.m,
                optimizer: &mut *self.c.optimizer,
                own: std::cell::RefCell::new(self.own.as_deref_mut().map(|o| o as &mut dyn DynCustomStep)),
                uncompiled: self.uncompiled,
                stop: &mut self.stop,
                epochs: *self.trained,
                seed: self.seed,
                stream: self.stream.position(),
                chief: self.rank == 0,
            };
            f(&mut **cb, &mut handle)?;
        }
        Ok(())
    }

    /// The epochs `first..opts.epochs`, Keras' `fit` loop.
    fn epochs(mut self, first: usize) -> Result<History> {
        let (ni, no) = (self.data.xs.len(), self.data.ys.len());
        self.ws.xb.resize(ni, Vec::new());
        self.ws.yb.resize(no, Vec::new());
        self.ws.step.grads.resize(self.meta.outputs.len(), Vec::new());
        self.ws.order.clear();
        self.ws.order.extend(0..self.data.n_train);
        self.hook(|cb, h| cb.on_train_begin(h))?;
        let mut last_logs = Logs::new();
        for epoch in first..self.opts.epochs {
            self.hook(|cb, h| cb.on_epoch_begin(epoch, h))?;
            if self.opts.shuffle && self.cursor == 0 {
                // From the identity each pass, so the order depends only on (seed, epoch).
                self.ws.order.iter_mut().enumerate().for_each(|(i, r)| *r = i);
                self.ws.order.shuffle(&mut epoch_rng(self.seed, *self.trained));
            }
            self.tracker.reset();
            self.means.reset();
            let (end, progress) = match self.streams.is_some() {
                true => self.stream_epoch(epoch)?,
                false => {
                    let taken = self.opts.steps_per_epoch.unwrap_or(self.steps).min(self.steps - self.cursor);
                    let progress = progress::Progress::new(self.verbose, epoch, self.opts.epochs, taken);
                    (self.train_epoch(epoch, taken, &progress)?, progress)
                }
            };
            if let EpochEnd::Invalid(b) = end {
                // TerminateOnNaN: the bad step was not applied; end with the epochs finished.
                if self.verbose > 0 {
                    println!("Batch {b}: Invalid loss, terminating training");
                }
                break;
            }
            if let Some(g) = &self.group {
                // The epoch's losses and metrics over every replica's rows; and, in debug builds,
                // proof that the replicas are still one model.
                self.tracker.all_sum(&**g, &mut self.ws.sums);
                if cfg!(debug_assertions) {
                    crate::distributed::check_replicas(&**g, self.m, &format!("after epoch {}", epoch + 1))?;
                }
            }
            let mut epoch_logs = Logs::new();
            self.train_logs(&mut epoch_logs);
            if (epoch + 1) % self.opts.validation_freq == 0 {
                self.validate(&mut epoch_logs)?;
            }
            progress.finish(&epoch_logs);
            *self.trained += 1;
            self.hook(|cb, h| cb.on_epoch_end(epoch, &epoch_logs, h))?;
            // As Keras' ReduceLROnPlateau and LearningRateScheduler do: the rate after the epoch.
            if self.callbacks.iter().any(|cb| cb.logs_learning_rate()) {
                epoch_logs.insert("learning_rate".into(), self.c.optimizer.learning_rate() as f64);
            }
            self.history.push(epoch, &epoch_logs);
            last_logs = epoch_logs;
            if self.stop {
                break;
            }
        }
        self.hook(|cb, h| cb.on_train_end(&last_logs, h))?;
        Ok(self.history)
    }

    /// The `taken` batches of one epoch, from where the current pass stands.
    fn train_epoch(&mut self, epoch: usize, taken: usize, progress: &progress::Progress) -> Result<EpochEnd> {
        let (data, opts) = (self.data, self.opts);
        let first = self.cursor;
        self.cursor = if first + taken >= self.steps { 0 } else { first + taken };
        // The order and the batch buffers are taken out for the epoch, so that a batch can be
        // borrowed while the step borrows the loop.
        let order = std::mem::take(&mut self.ws.order);
        let (mut xbuf, mut ybuf, mut wbuf) =
            (std::mem::take(&mut self.ws.xb), std::mem::take(&mut self.ws.yb), std::mem::take(&mut self.ws.wb));
        let result = (|| {
            for (b, rows) in order.chunks(opts.batch_size).skip(first).take(taken).enumerate() {
                let rows = &rows[crate::distributed::shard(rows.len(), self.rank, self.size)];
                let k = rows.len();
                let at = rows.first().copied().unwrap_or(0);
                let (xb, yb) = if opts.shuffle {
                    for (buf, r) in xbuf.iter_mut().zip(&data.xs) {
                        gather(&r.data, r.width(), rows, buf);
                    }
                    for (buf, r) in ybuf.iter_mut().zip(&data.ys) {
                        gather(&r.data, r.width(), rows, buf);
                    }
                    if let Some(w) = &data.sw {
                        gather(w, 1, rows, &mut wbuf);
                    }
                    (slices(xbuf.iter().map(|v| &v[..])), slices(ybuf.iter().map(|v| &v[..])))
                } else {
                    // In order: the batch is a contiguous range of rows, read in place.
                    (range(&data.xs, at, at + k), range(&data.ys, at, at + k))
                };
                let wb = data.sw.as_ref().map(|w| if opts.shuffle { &wbuf[..] } else { &w[at..at + k] });
                let batch = BatchRows { x: &xb[..data.xs.len()], y: &yb[..data.ys.len()], w: wb, k, shapes: None };
                match self.run_batch(epoch, b, batch, progress)? {
                    Flow::Next => {}
                    Flow::Stop => break,
                    Flow::Invalid => return Ok(EpochEnd::Invalid(b)),
                }
            }
            Ok(EpochEnd::Done)
        })();
        self.ws.order = order;
        (self.ws.xb, self.ws.yb, self.ws.wb) = (xbuf, ybuf, wbuf);
        result
    }

    /// One batch: the step (the compiled one, the user's closure, or a [`CustomStep`]), the
    /// progress display and the batch callbacks.
    fn run_batch(&mut self, epoch: usize, b: usize, batch: BatchRows<'_>, progress: &progress::Progress) -> Result<Flow> {
        self.hook(|cb, h| cb.on_train_batch_begin(b, h))?;
        let BatchRows { x: xb, y: yb, w: wb, k, shapes } = batch;
        let shapes = shapes.unwrap_or(&self.data.shapes);
        let stopped = match (self.own.as_deref_mut(), self.custom.as_deref_mut()) {
            (Some(own), _) => {
                let batch = StepBatch { x: views(xb, k), y: views(yb, k), shapes };
                let logs = own.train(&mut *self.m, batch)?;
                self.means.add(&logs, k).map(|(what, v)| Stopped { what, value: v as f32 })
            }
            (None, None) => {
                let ws = &mut *self.ws;
                let mut ctx = Ctx::new(k, true, self.stream);
                let dist = self.group.as_deref().map(|g| (g, &mut ws.reduce));
                step(&mut *self.m, self.c, &mut ws.step, &mut self.tracker, xb, yb, wb, &mut ctx, dist).err()
            }
            (None, Some(f)) => {
                let batch = StepBatch { x: views(xb, k), y: views(yb, k), shapes };
                f(&mut *self.m, &mut *self.c.optimizer, batch)?;
                let mut loss = if k > 0 { self.tracker.observe(&mut *self.m, self.c, yb, k, None, wb) } else { 0.0 };
                if let Some(g) = &self.group {
                    // Every replica judges the loss of all the rows, so all stop together.
                    let v = &mut self.ws.reduce.0;
                    v.clear();
                    v.extend([k as f32, loss]);
                    crate::distributed::weighted_mean(&**g, v, &mut self.ws.reduce.1);
                    loss = v[1];
                }
                (!loss.is_finite()).then(|| Stopped { what: "loss".into(), value: loss })
            }
        };
        if let Some(s) = stopped {
            if self.terminate_on_nan {
                return Ok(Flow::Invalid);
            }
            return Err(s.at(epoch, b, &self.history));
        }
        progress.step(b + 1, || {
            let mut lg = Logs::new();
            self.train_logs(&mut lg);
            lg
        });
        if !self.callbacks.is_empty() {
            // Built only for callbacks: plain `fit` allocates nothing per step.
            let mut batch_logs = Logs::new();
            self.train_logs(&mut batch_logs);
            self.hook(|cb, h| cb.on_train_batch_end(b, &batch_logs, h))?;
            if self.stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Next)
    }

    /// Validation at the end of an epoch: the held-out rows' losses and metrics as `val_` keys.
    fn validate(&mut self, epoch_logs: &mut Logs) -> Result<()> {
        if self.data.streamed_validation {
            return self.validate_stream(epoch_logs);
        }
        let Some((xv, yv, from, w)) = self.data.held_out() else {
            return Ok(());
        };
        self.hook(|cb, h| cb.on_test_begin(h))?;
        let mut test_logs = Logs::new();
        if let Some(own) = self.own.as_deref_mut() {
            // The step's own validation: its test_step on batches of the held-out rows.
            self.val_means.reset();
            let (n, batch) = (xv[0].n, self.opts.batch_size);
            for at in (from..n).step_by(batch) {
                let to = (at + batch).min(n);
                let (xb, yb) = (range(xv, at, to), range(yv, at, to));
                let shapes = &self.data.shapes;
                let b = StepBatch { x: views(&xb[..xv.len()], to - at), y: views(&yb[..yv.len()], to - at), shapes };
                let logs = own.test(&mut *self.m, b)?;
                if let Some((what, v)) = self.val_means.add(&logs, to - at) {
                    return Err(Error::invalid("test_step", format!("logged `{what}` = {v}, which is not finite")));
                }
            }
            self.val_means.logs("val_", epoch_logs);
            self.val_means.logs("", &mut test_logs);
        } else {
            self.val_tracker.reset();
            let (batch, group) = (self.opts.batch_size, self.group.as_deref());
            evaluate_rows(&mut *self.m, self.c, &mut self.val_tracker, xv, yv, from, batch, w, group, false)?;
            self.val_tracker.logs(&self.meta, "val_", epoch_logs);
            self.val_tracker.logs(&self.meta, "", &mut test_logs);
        }
        if !self.callbacks.is_empty() {
            self.hook(|cb, h| cb.on_test_end(&test_logs, h))?;
        }
        Ok(())
    }

    /// The training logs so far this epoch: the step's own, or the compiled loss and metrics.
    fn train_logs(&self, into: &mut Logs) {
        match self.own {
            Some(_) => self.means.logs("", into),
            None => self.tracker.logs(&self.meta, "", into),
        }
    }
}

