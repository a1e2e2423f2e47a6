//! The compile / fit / evaluate / predict machinery shared by every model.
//!
//! A model holds a [`TrainState`]: its seed and random stream (shuffling), what `compile` chose,
//! and the buffers of the training loop, sized once and reused by every batch.

mod data;
mod history;
mod progress;

pub use history::{History, Logs};

use ndarray::{Array2, ArrayBase, ArrayViewD, Data, Dimension};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::kernels::ActKind;
use crate::layers::BackwardOpts;
use crate::losses::Loss;
use crate::metrics::{self, MetricState};
use crate::model::Model;
use crate::optimizers::{IntoOptimizer, Optimizer};
use data::Rows;

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
    /// `floor(n · validation_split)` rows of `x` and `y`, taken before any shuffling: shuffle the
    /// data yourself first if it is ordered (by class, by time).
    pub validation_split: f32,
    /// Separate validation data `(x, y)`; takes precedence over `validation_split`.
    pub validation_data: Option<(ArrayViewD<'a, f32>, ArrayViewD<'a, f32>)>,
    /// Shuffle the training rows before each epoch (default true), from the model's seed.
    pub shuffle: bool,
}

impl Default for Fit<'_> {
    fn default() -> Self {
        Fit { epochs: 1, batch_size: 32, verbose: 1, validation_split: 0.0, validation_data: None, shuffle: true }
    }
}

/// Anything `compile` accepts as a loss: a Keras name or a [`Loss`].
pub trait IntoLoss {
    /// Resolves the loss.
    fn into_loss(self) -> Result<Loss>;
}

impl IntoLoss for Loss {
    fn into_loss(self) -> Result<Loss> {
        Ok(self)
    }
}

impl IntoLoss for &str {
    fn into_loss(self) -> Result<Loss> {
        Loss::from_name(self)
    }
}

#[derive(Clone, Debug)]
struct Compiled {
    loss: Loss,
    optimizer: Box<dyn Optimizer>,
    metrics: Vec<String>,
}

/// Buffers of the training loop, grown to the largest batch and then reused.
#[derive(Clone, Debug, Default)]
struct Workspace {
    xb: Vec<f32>,
    yb: Vec<f32>,
    grad: Vec<f32>,
    order: Vec<usize>,
}

/// Per-model training state: seed, random stream, compiled configuration and buffers.
#[derive(Clone, Debug)]
pub struct TrainState {
    seed: u64,
    rng: StdRng,
    compiled: Option<Compiled>,
    ws: Workspace,
}

impl TrainState {
    /// The state of a model created from `seed`.
    pub fn new(seed: u64) -> Self {
        TrainState {
            seed,
            rng: StdRng::seed_from_u64(seed ^ 0x5DEE_CE66_D1CE_5EED),
            compiled: None,
            ws: Workspace::default(),
        }
    }

    /// The seed the model was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The optimizer chosen by `compile`, if any.
    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        self.compiled.as_ref().map(|c| &*c.optimizer)
    }

    /// The loss chosen by `compile`, if any.
    pub fn loss(&self) -> Option<Loss> {
        self.compiled.as_ref().map(|c| c.loss)
    }
}

/// Runs `f` on the model with its training state taken out, so both can be borrowed mutably,
/// and puts the state back whatever `f` returns.
fn with_state<M: Model, T>(m: &mut M, f: impl FnOnce(&mut M, &mut TrainState) -> Result<T>) -> Result<T> {
    let placeholder = TrainState { seed: 0, rng: StdRng::from_seed([0; 32]), compiled: None, ws: Workspace::default() };
    let mut st = std::mem::replace(m.train_state_mut(), placeholder);
    let r = f(m, &mut st);
    *m.train_state_mut() = st;
    r
}

pub(crate) fn compile<M: Model>(
    m: &mut M,
    loss: impl IntoLoss,
    optimizer: impl IntoOptimizer,
    metric_names: &[&str],
) -> Result<()> {
    let loss = loss.into_loss()?;
    let optimizer = optimizer.into_optimizer()?;
    for name in metric_names {
        metrics::check_name(name)?;
    }
    if loss.is_sparse() && M::output_size() < 2 {
        return Err(Error::invalid(
            "loss",
            format!(
                "sparse_categorical_crossentropy needs at least 2 outputs (one per class); {} has {}",
                M::NAME,
                M::output_size()
            ),
        ));
    }
    m.train_state_mut().compiled =
        Some(Compiled { loss, optimizer, metrics: metric_names.iter().map(|s| s.to_string()).collect() });
    Ok(())
}

fn x_name<M: Model>() -> String {
    format!("x (input of {})", M::NAME)
}

fn fused<M: Model>(loss: &Loss) -> bool {
    loss.fuses_softmax() && M::OUTPUT_ACTIVATION == ActKind::Softmax
}

fn metric_states<M: Model>(c: &Compiled, prefix: &str) -> Vec<MetricState> {
    c.metrics
        .iter()
        .map(|n| MetricState::new(&format!("{prefix}{n}"), metrics::resolve(n, &c.loss, M::output_size())))
        .collect()
}

fn logs(loss_key: &str, loss: f64, metrics: &[MetricState], into: &mut Logs) {
    into.insert(loss_key.to_string(), loss);
    for s in metrics {
        into.insert(s.key.clone(), s.result());
    }
}

/// One gradient step on `n` rows; returns the batch's mean loss.
#[allow(clippy::too_many_arguments)]
fn step<M: Model>(
    m: &mut M,
    c: &mut Compiled,
    grad: &mut Vec<f32>,
    ms: &mut [MetricState],
    xb: &[f32],
    yb: &[f32],
    n: usize,
    at: (usize, usize),
) -> Result<f32> {
    let width = M::output_size();
    let fused = fused::<M>(&c.loss);
    let p = m.forward_train(xb, n);
    let g = crate::layers::sized(grad, n * width);
    let loss = c.loss.compute(p, yb, n, width, Some(g), fused);
    if !loss.is_finite() {
        return Err(Error::NonFiniteLoss { epoch: at.0 + 1, batch: at.1, value: loss });
    }
    for s in ms.iter_mut() {
        s.update(p, yb, n, width, c.loss.from_logits());
    }
    m.backward(xb, n, grad, BackwardOpts { input_grad: false, accumulate: false, fused_output: fused });
    apply_gradients(m, &mut *c.optimizer);
    Ok(loss)
}

/// Applies each trainable parameter's gradient with `opt`, as one optimizer step.
pub(crate) fn apply_gradients<M: Model>(m: &mut M, opt: &mut dyn Optimizer) {
    opt.begin_step();
    let mut slot = 0;
    m.visit_params_mut(&mut |p| {
        if p.trainable {
            opt.update(slot, &mut p.value, &p.grad);
        }
        slot += 1;
    });
}

fn gather(src: &[f32], width: usize, rows: &[usize], dst: &mut Vec<f32>) {
    let dst = crate::layers::sized(dst, rows.len() * width);
    for (d, &r) in dst.chunks_exact_mut(width).zip(rows) {
        d.copy_from_slice(&src[r * width..(r + 1) * width]);
    }
}

pub(crate) fn fit<M: Model, S: Data<Elem = f32>, D: Dimension, S2: Data<Elem = f32>, D2: Dimension>(
    m: &mut M,
    x: &ArrayBase<S, D>,
    y: &ArrayBase<S2, D2>,
    opts: &Fit<'_>,
) -> Result<History> {
    let loss = m.train_state().compiled.as_ref().ok_or(Error::NotCompiled("fit"))?.loss;
    if opts.batch_size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1"));
    }
    if !(0.0..1.0).contains(&opts.validation_split) {
        return Err(Error::invalid("validation_split", format!("must be in [0, 1), got {}", opts.validation_split)));
    }
    let xr = data::inputs(x, M::INPUT_SHAPE, x_name::<M>)?;
    let yr = data::targets(y, xr.n, &loss, M::output_size(), "y")?;
    let validation = match &opts.validation_data {
        Some((xv, yv)) => {
            let xv = data::inputs(xv, M::INPUT_SHAPE, || "validation_data x".into())?;
            let yv = data::targets(yv, xv.n, &loss, M::output_size(), "validation_data y")?;
            Some((xv, yv))
        }
        None => None,
    };
    // Keras: the validation rows are the last ones, taken before shuffling.
    let n_train =
        if validation.is_none() { (xr.n as f64 * (1.0 - opts.validation_split as f64)).floor() as usize } else { xr.n };
    if n_train == 0 {
        return Err(Error::invalid(
            "validation_split",
            format!("{} of {} rows leaves no rows to train on", opts.validation_split, xr.n),
        ));
    }
    let split =
        |r: &Rows<'_>, from: usize, to: usize| -> Vec<f32> { r.data[from * r.width()..to * r.width()].to_vec() };
    let (xw, yw) = (xr.width(), yr.width());
    let val: Option<(Vec<f32>, Vec<f32>, usize)> = match validation {
        Some((xv, yv)) => Some((xv.data.into_owned(), yv.data.into_owned(), xv.n)),
        None if n_train < xr.n => Some((split(&xr, n_train, xr.n), split(&yr, n_train, yr.n), xr.n - n_train)),
        None => None,
    };
    let (xt, yt) = (&xr.data[..n_train * xw], &yr.data[..n_train * yw]);

    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_mut().ok_or(Error::NotCompiled("fit"))?;
        let mut ms = metric_states::<M>(c, "");
        let mut history = History::default();
        let ws = &mut st.ws;
        ws.order.clear();
        ws.order.extend(0..n_train);
        let steps = n_train.div_ceil(opts.batch_size);
        for epoch in 0..opts.epochs {
            if opts.shuffle {
                ws.order.shuffle(&mut st.rng);
            }
            ms.iter_mut().for_each(MetricState::reset);
            let progress = progress::Progress::new(opts.verbose, epoch, opts.epochs, steps);
            let (mut loss_sum, mut seen) = (0.0f64, 0usize);
            for (b, rows) in ws.order.chunks(opts.batch_size).enumerate() {
                let n = rows.len();
                let contiguous = !opts.shuffle;
                let (xb, yb): (&[f32], &[f32]) = if contiguous {
                    let r0 = rows[0];
                    (&xt[r0 * xw..(r0 + n) * xw], &yt[r0 * yw..(r0 + n) * yw])
                } else {
                    gather(xt, xw, rows, &mut ws.xb);
                    gather(yt, yw, rows, &mut ws.yb);
                    (&ws.xb, &ws.yb)
                };
                let l = step(m, c, &mut ws.grad, &mut ms, xb, yb, n, (epoch, b))?;
                loss_sum += l as f64 * n as f64;
                seen += n;
                progress.step(b + 1, || {
                    let mut lg = Logs::new();
                    logs("loss", loss_sum / seen as f64, &ms, &mut lg);
                    lg
                });
            }
            let mut epoch_logs = Logs::new();
            logs("loss", loss_sum / seen as f64, &ms, &mut epoch_logs);
            if let Some((xv, yv, nv)) = &val {
                let (vl, vms) = evaluate_rows(m, c, xv, yv, *nv, opts.batch_size, "val_");
                logs("val_loss", vl, &vms, &mut epoch_logs);
            }
            progress.finish(&epoch_logs);
            history.push(epoch, &epoch_logs);
        }
        Ok(history)
    })
}

/// Mean loss and metrics over `n` rows, in batches, with the inference forward pass.
fn evaluate_rows<M: Model>(
    m: &mut M,
    c: &Compiled,
    x: &[f32],
    y: &[f32],
    n: usize,
    batch: usize,
    prefix: &str,
) -> (f64, Vec<MetricState>) {
    let (xw, yw, width) = (M::input_size(), y.len() / n, M::output_size());
    let mut ms = metric_states::<M>(c, prefix);
    let mut total = 0.0f64;
    let mut start = 0;
    while start < n {
        let k = batch.min(n - start);
        let p = m.forward(&x[start * xw..(start + k) * xw], k);
        let yb = &y[start * yw..(start + k) * yw];
        total += c.loss.compute(p, yb, k, width, None, false) as f64 * k as f64;
        for s in &mut ms {
            s.update(p, yb, k, width, c.loss.from_logits());
        }
        start += k;
    }
    (total / n as f64, ms)
}

pub(crate) fn evaluate<M: Model, S: Data<Elem = f32>, D: Dimension, S2: Data<Elem = f32>, D2: Dimension>(
    m: &mut M,
    x: &ArrayBase<S, D>,
    y: &ArrayBase<S2, D2>,
) -> Result<Logs> {
    let loss = m.train_state().compiled.as_ref().ok_or(Error::NotCompiled("evaluate"))?.loss;
    let xr = data::inputs(x, M::INPUT_SHAPE, x_name::<M>)?;
    let yr = data::targets(y, xr.n, &loss, M::output_size(), "y")?;
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_ref().ok_or(Error::NotCompiled("evaluate"))?;
        let (l, ms) = evaluate_rows(m, c, &xr.data, &yr.data, xr.n, 32, "");
        let mut out = Logs::new();
        logs("loss", l, &ms, &mut out);
        Ok(out)
    })
}

/// Rows per forward pass in `predict`: large enough to amortise each product, small enough that
/// the buffers stay in cache.
const PREDICT_BATCH: usize = 256;

pub(crate) fn predict<M: Model, S: Data<Elem = f32>, D: Dimension>(
    m: &mut M,
    x: &ArrayBase<S, D>,
) -> Result<Array2<f32>> {
    let xr = data::inputs(x, M::INPUT_SHAPE, x_name::<M>)?;
    let (xw, width) = (M::input_size(), M::output_size());
    let mut out = Array2::zeros((xr.n, width));
    let dst = out.as_slice_mut().ok_or_else(|| Error::invalid("x", "internal: output not contiguous"))?;
    let _ftz = FlushDenormals::new();
    let mut start = 0;
    while start < xr.n {
        let k = PREDICT_BATCH.min(xr.n - start);
        let p = m.forward(&xr.data[start * xw..(start + k) * xw], k);
        dst[start * width..(start + k) * width].copy_from_slice(p);
        start += k;
    }
    Ok(out)
}

pub(crate) fn predict_one<'m, M: Model>(m: &'m mut M, x: &[f32]) -> Result<&'m [f32]> {
    if x.len() != M::input_size() {
        return Err(Error::Shape {
            what: format!("x (one sample for {}, flattened)", M::NAME),
            expected: format!("[{}]", M::input_size()),
            got: crate::error::Shape(vec![x.len()]),
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidData { what: "x".into(), reason: format!("value {i} is {}", x[i]) });
    }
    let _ftz = FlushDenormals::new();
    Ok(m.forward(x, 1))
}

pub(crate) fn train_on_batch<M: Model, S: Data<Elem = f32>, D: Dimension, S2: Data<Elem = f32>, D2: Dimension>(
    m: &mut M,
    x: &ArrayBase<S, D>,
    y: &ArrayBase<S2, D2>,
) -> Result<f32> {
    let loss = m.train_state().compiled.as_ref().ok_or(Error::NotCompiled("train_on_batch"))?.loss;
    let xr = data::inputs(x, M::INPUT_SHAPE, x_name::<M>)?;
    let yr = data::targets(y, xr.n, &loss, M::output_size(), "y")?;
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_mut().ok_or(Error::NotCompiled("train_on_batch"))?;
        step(m, c, &mut st.ws.grad, &mut [], &xr.data, &yr.data, xr.n, (0, 0))
    })
}
