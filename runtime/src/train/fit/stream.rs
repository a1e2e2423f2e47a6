//! `fit`, `evaluate` and `predict` on datasets ([`crate::data::Dataset`]): batches read one at
//! a time and checked as `fit` checks arrays, through the same loop, step, callbacks and
//! validation as arrays.

use ndarray::ArrayD;

use crate::data::{Batch, Dataset};
use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::model::dynamic::DynModel;
use crate::model::{InputArray, Meta};

use super::super::compile::Compiled;
use super::super::evaluate::{check_outputs, evaluate_rows, infer_batches};
use super::super::step::Tracker;
use super::super::{Evaluate, Fit, History, Logs, compiled, data, progress, range, slices, with_state};
use super::super::own_step::DynCustomStep;
use super::{BatchRows, Callback, DynStep, EpochEnd, Flow, Prepared, Run, Shapes, StepBatch, check_callbacks, shapes_of};
use super::views as step_views;

/// A dataset of batches, as `fit_dataset` and friends take it.
pub(crate) type Batches<'d> = dyn Dataset<Item = Batch> + 'd;

/// `fit_dataset`'s datasets, and where the training dataset's pass stands.
pub(crate) struct Streams<'a> {
    train: &'a mut Batches<'a>,
    val: Option<&'a mut Batches<'a>>,
    /// A pass is under way (epochs under `steps_per_epoch` carry on with it).
    in_pass: bool,
    /// Batches read of the current pass, and the length of a whole pass once one has run out.
    read: usize,
    per_pass: Option<usize>,
}

/// Trains `m` on batches from `train` (see [`crate::Model::fit_dataset`]).
pub(crate) fn fit_dataset<'a, 'f>(
    m: &mut dyn DynModel,
    train: &'a mut Batches<'a>,
    val: Option<&'a mut Batches<'a>>,
    opts: &Fit<'_>,
    (custom, own): (Option<&mut DynStep<'f>>, Option<&mut (dyn DynCustomStep + 'f)>),
    callbacks: &mut [&mut dyn Callback],
) -> Result<History> {
    let refused = |name: &'static str, why: &str| Err(Error::invalid(name, format!("{why} with fit_dataset")));
    if opts.validation_split != 0.0 {
        return refused("validation_split", "takes rows of arrays: give a validation dataset instead");
    }
    if opts.validation_data.is_some() || opts.validation_sample_weight.is_some() {
        return refused("validation_data", "is a dataset (the second argument)");
    }
    if opts.sample_weight.is_some() {
        return refused("sample_weight", "comes with each batch (Batch::with_sample_weight)");
    }
    if own.is_some() && opts.class_weight.is_some() {
        return refused("class_weight", "is not taken by a custom step (weigh the rows in train_step)");
    }
    if opts.steps_per_epoch == Some(0) || opts.validation_freq == 0 {
        return refused("steps_per_epoch", "steps_per_epoch and validation_freq must be at least 1");
    }
    super::super::check_usable(m)?;
    if m.train_state().group().is_some() && own.is_some() {
        return refused("fit_dataset", "does not run a CustomStep data-parallel yet: reduce the gradients in the step");
    }
    if opts.steps_per_epoch.is_some() && callbacks.iter().any(|cb| cb.backup().is_some()) {
        return refused("steps_per_epoch", "cannot be combined with BackupAndRestore");
    }
    let meta = m.meta();
    if own.is_none() {
        check_callbacks(m, compiled(m, "fit_dataset")?, val.is_some(), callbacks)?;
    }
    let shapes = Shapes {
        x: meta.inputs.iter().map(|p| p.shape.to_vec()).collect(),
        y: meta.outputs.iter().map(|p| p.shape.to_vec()).collect(),
    };
    let streamed_validation = val.is_some();
    let data = Prepared {
        xs: Vec::new(),
        ys: Vec::new(),
        validation: None,
        n: 0,
        n_train: 0,
        sw: None,
        val_sw: None,
        shapes,
        streamed_validation,
    };
    let per_pass = train.cardinality();
    let streams = Streams { train, val, in_pass: false, read: 0, per_pass };
    super::train(m, &data, Some(streams), opts, custom, own, callbacks)
}

/// A batch's arrays as `fit` takes arrays.
fn views(arrays: &[ArrayD<f32>]) -> Vec<InputArray<'_>> {
    arrays.iter().map(|a| InputArray::from(a.view())).collect()
}

/// A batch for a custom step: any arrays, one row per sample, finite.
fn free<'v>((xv, yv): (&'v [InputArray<'_>], &'v [InputArray<'_>])) -> Result<Checked<'v>> {
    let xs = data::free_rows(xv, None, "x")?;
    let ys = data::free_rows(yv, Some(xs[0].n), "y")?;
    Ok((xs, ys, None))
}

/// A batch checked as `fit` checks arrays: shapes, finite values, labels, weights.
type Checked<'v> = (Vec<data::Rows<'v>>, Vec<data::Rows<'v>>, Option<Vec<f32>>);

fn check<'v>(
    meta: &Meta,
    c: &Compiled,
    opts: Option<&Fit<'_>>,
    (xv, yv): (&'v [InputArray<'_>], &'v [InputArray<'_>]),
    w: Option<&ndarray::Array1<f32>>,
) -> Result<Checked<'v>> {
    let xs = data::inputs(meta, xv, "x")?;
    let n = xs[0].n;
    let ys = data::targets(meta, yv, n, &c.losses(), "y")?;
    let w = match (w, opts) {
        (Some(w), _) => Some(data::sample_weights(w.view(), n, "sample_weight")?),
        (None, Some(opts)) => data::row_weights(meta, opts, n, &ys, &c.losses())?,
        (None, None) => None,
    };
    Ok((xs, ys, w))
}

impl Run<'_, '_, '_, '_, '_, '_> {
    fn dataset_error(&self, e: Error, epoch: usize, batch: usize) -> Error {
        Error::Dataset { epoch: epoch + 1, batch, source: Box::new(e), history: Box::new(self.history.clone()) }
    }

    /// One epoch from the training dataset: a whole pass, or `steps_per_epoch` batches of the
    /// pass under way (a new pass starts when one runs out, as Keras' epoch iterator does).
    pub(super) fn stream_epoch(&mut self, epoch: usize) -> Result<(EpochEnd, progress::Progress)> {
        let Some(mut st) = self.streams.take() else {
            return Err(Error::invalid("fit_dataset", "no dataset"));
        };
        let result = self.stream_batches(&mut st, epoch);
        self.streams = Some(st);
        result
    }

    fn stream_batches(&mut self, st: &mut Streams<'_>, epoch: usize) -> Result<(EpochEnd, progress::Progress)> {
        if !st.in_pass {
            st.train.restart().map_err(|e| self.dataset_error(e, epoch, 0))?;
            (st.in_pass, st.read) = (true, 0);
        }
        let limit = self.opts.steps_per_epoch.unwrap_or(usize::MAX);
        let left = st.per_pass.map(|p| p.saturating_sub(st.read));
        let shown = left.map_or(self.opts.steps_per_epoch.unwrap_or(0), |l| l.min(limit));
        let progress = progress::Progress::new(self.verbose, epoch, self.opts.epochs, shown);
        let meta = self.meta;
        let (ni, no) = (meta.inputs.len(), meta.outputs.len());
        for b in 0..limit {
            let next = st.train.next_item();
            self.replicas_agree(next.is_some(), epoch, b)?;
            let batch = match next {
                None => {
                    // The pass ran out: this epoch ends here, the next starts a new pass.
                    (st.in_pass, st.per_pass) = (false, Some(st.read));
                    break;
                }
                Some(Err(e)) => return Err(self.dataset_error(e, epoch, b)),
                Some(Ok(batch)) => batch,
            };
            st.read += 1;
            let (xv, yv) = (views(&batch.x), views(&batch.y));
            let checked = match self.own {
                Some(_) => free((&xv, &yv)),
                None => check(&meta, self.c, Some(self.opts), (&xv, &yv), batch.sample_weight.as_ref()),
            };
            let (xs, ys, w) = checked.map_err(|e| self.dataset_error(e, epoch, b))?;
            // A replica of a data-parallel run takes its rank's shard of the batch every
            // replica reads, as `fit` does with arrays.
            let part = crate::distributed::shard(xs[0].n, self.rank, self.size);
            let (xb, yb) = (range(&xs, part.start, part.end), range(&ys, part.start, part.end));
            let w = w.as_deref().map(|w| &w[part.clone()]);
            // A CustomStep's arrays may be any shape; a compiled model's were checked against it,
            // so the shapes of `data` (the model's) hold and nothing is built per batch.
            let own = self.own.is_some().then(|| Shapes { x: shapes_of(&xv), y: shapes_of(&yv) });
            let (ni, no) = if own.is_some() { (xs.len(), ys.len()) } else { (ni, no) };
            let rows = BatchRows { x: &xb[..ni], y: &yb[..no], w, k: part.len(), shapes: own.as_ref() };
            match self.run_batch(epoch, b, rows, &progress)? {
                Flow::Next => {}
                Flow::Stop => break,
                Flow::Invalid => return Ok((EpochEnd::Invalid(b), progress)),
            }
        }
        if st.per_pass.is_some_and(|p| st.read >= p) {
            st.in_pass = false;
        }
        Ok((EpochEnd::Done, progress))
    }

    /// In a data-parallel run, whether every replica's dataset gave a batch: all of them or
    /// none, or an error on every replica (one that went on alone would wait for the others
    /// forever).
    fn replicas_agree(&mut self, has_batch: bool, epoch: usize, b: usize) -> Result<()> {
        let Some(g) = self.group.clone() else { return Ok(()) };
        let mut have = [f64::from(u8::from(has_batch))];
        crate::distributed::all_sum(&*g, &mut have, &mut self.ws.sums.1);
        let (have, size) = (have[0] as usize, g.size());
        if have != 0 && have != size {
            let e = Error::InvalidData {
                what: "the replicas' datasets".into(),
                reason: format!(
                    "{have} of the {size} replicas read a batch where the others ran out: give every replica the same dataset (each takes its shard of every batch)"
                ),
            };
            return Err(self.dataset_error(e, epoch, b));
        }
        Ok(())
    }

    /// Validation on a whole pass of the validation dataset (every replica of a data-parallel
    /// run evaluates all of it, so all log the same values).
    pub(super) fn validate_stream(&mut self, epoch_logs: &mut Logs) -> Result<()> {
        let Some(mut st) = self.streams.take() else {
            return Ok(());
        };
        let result = self.validate_batches(&mut st, epoch_logs);
        self.streams = Some(st);
        result
    }

    fn validate_batches(&mut self, st: &mut Streams<'_>, epoch_logs: &mut Logs) -> Result<()> {
        let Some(val) = st.val.as_deref_mut() else {
            return Ok(());
        };
        let epoch = self.history.epoch.len();
        let wrap = |e: Error, b: usize, h: &History| Error::Dataset {
            epoch: epoch + 1,
            batch: b,
            source: Box::new(Error::InvalidData { what: "the validation dataset".into(), reason: e.to_string() }),
            history: Box::new(h.clone()),
        };
        val.restart().map_err(|e| wrap(e, 0, &self.history))?;
        self.hook(|cb, h| cb.on_test_begin(h))?;
        self.val_tracker.reset();
        self.val_means.reset();
        let mut b = 0;
        while let Some(batch) = val.next_item() {
            let batch = batch.map_err(|e| wrap(e, b, &self.history))?;
            let (xv, yv) = (views(&batch.x), views(&batch.y));
            if let Some(own) = self.own.as_deref_mut() {
                // The step's own validation: its test_step on each batch.
                let (xs, ys, _) = free((&xv, &yv)).map_err(|e| wrap(e, b, &self.history))?;
                let k = xs[0].n;
                let (xb, yb) = (slices(xs.iter().map(|r| &r.data[..])), slices(ys.iter().map(|r| &r.data[..])));
                let shapes = Shapes { x: shapes_of(&xv), y: shapes_of(&yv) };
                let step = StepBatch { x: step_views(&xb[..xs.len()], k), y: step_views(&yb[..ys.len()], k), shapes: &shapes };
                let logs = own.test(&mut *self.m, step)?;
                if let Some((what, v)) = self.val_means.add(&logs, k) {
                    return Err(Error::invalid("test_step", format!("logged `{what}` = {v}, which is not finite")));
                }
            } else {
                let (xs, ys, w) = check(&self.meta, self.c, None, (&xv, &yv), batch.sample_weight.as_ref())
                    .map_err(|e| wrap(e, b, &self.history))?;
                let k = xs[0].n;
                evaluate_rows(&mut *self.m, self.c, &mut self.val_tracker, &xs, &ys, 0, k, w.as_deref(), None, false)?;
            }
            b += 1;
        }
        let mut test_logs = Logs::new();
        if self.own.is_some() {
            self.val_means.logs("val_", epoch_logs);
            self.val_means.logs("", &mut test_logs);
        } else {
            self.val_tracker.logs(&self.meta, "val_", epoch_logs);
            self.val_tracker.logs(&self.meta, "", &mut test_logs);
        }
        if !self.callbacks.is_empty() {
            self.hook(|cb, h| cb.on_test_end(&test_logs, h))?;
        }
        Ok(())
    }
}

/// Loss and metrics over a whole pass of `data` (see [`crate::Model::evaluate_dataset`]).
pub(crate) fn evaluate_dataset(m: &mut dyn DynModel, data: &mut Batches<'_>, opts: Evaluate) -> Result<Logs> {
    super::super::check_usable(m)?;
    let meta = m.meta();
    compiled(m, "evaluate_dataset")?;
    data.restart()?;
    let progress = progress::Progress::start(opts.verbose, None, data.cardinality().unwrap_or(0));
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_ref().ok_or(Error::NotCompiled("evaluate_dataset"))?;
        let mut tracker = Tracker::new(&meta, c);
        let mut b = 0;
        while let Some(batch) = data.next_item() {
            let batch = batch?;
            let (xv, yv) = (views(&batch.x), views(&batch.y));
            let (xs, ys, w) = check(&meta, c, None, (&xv, &yv), batch.sample_weight.as_ref())?;
            let k = xs[0].n;
            evaluate_rows(m, c, &mut tracker, &xs, &ys, 0, k, w.as_deref(), None, true)?;
            b += 1;
            progress.step(b, Logs::new);
        }
        let mut out = Logs::new();
        tracker.logs(&meta, "", &mut out);
        progress.finish(&out);
        Ok(out)
    })
}

/// The outputs for every batch of a pass of `data`, rows in the order read (see
/// [`crate::Model::predict_dataset`]); the batches' targets, if any, are not read.
pub(crate) fn predict_dataset(m: &mut dyn DynModel, data: &mut Batches<'_>) -> Result<Vec<ArrayD<f32>>> {
    super::super::check_usable(m)?;
    let meta = m.meta();
    data.restart()?;
    let mut outs: Vec<Vec<f32>> = vec![Vec::new(); meta.outputs.len()];
    let mut rows = 0;
    let _ftz = FlushDenormals::new();
    while let Some(batch) = data.next_item() {
        let batch = batch?;
        let xv = views(&batch.x);
        let xs = data::inputs(&meta, &xv, "x")?;
        let k = xs[0].n;
        infer_batches(m, &xs, (0, k), k, |m, start, k| {
            check_outputs(m, rows + start, k)?;
            for (j, out) in outs.iter_mut().enumerate() {
                out.extend_from_slice(m.output(j));
            }
            Ok(())
        })?;
        rows += k;
    }
    outs.into_iter()
        .zip(meta.outputs)
        .map(|(v, port)| {
            let shape: Vec<usize> = std::iter::once(rows).chain(port.shape.iter().copied()).collect();
            ArrayD::from_shape_vec(shape, v).map_err(|e| Error::invalid("predict_dataset", e.to_string()))
        })
        .collect()
}
