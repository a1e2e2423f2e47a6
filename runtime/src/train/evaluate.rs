//! Inference over many rows: `evaluate` (losses and metrics, also `fit`'s validation) and
//! `predict`, both through one batch loop.

use ndarray::{ArrayD, ArrayView1};

use crate::distributed::Collective;
use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::Ctx;
use crate::model::InputArray;
use crate::model::dynamic::DynModel;
use crate::random::Stream;

use super::compile::Compiled;
use super::data::{self, Rows};
use super::step::Tracker;
use super::{Logs, check_batch_size, compiled, progress, range, with_state};

/// The one batch loop of inference: runs `m` on rows `from..` of `xs` in batches of `batch` rows
/// and hands each batch's first row and size to `each`, with the model's outputs ready.
pub(super) fn infer_batches(
    m: &mut dyn DynModel,
    xs: &[Rows<'_>],
    (from, n): (usize, usize),
    batch: usize,
    mut each: impl FnMut(&mut dyn DynModel, usize, usize) -> Result<()>,
) -> Result<()> {
    let ni = m.meta().inputs.len();
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
/// summed over the processes, so every process gets the figures of all the rows. With
/// `finite_outputs` (`evaluate`), an output that is not finite is an error naming the layer, as
/// in `predict`; `fit`'s validation reports the loss it gets.
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_rows(
    m: &mut dyn DynModel,
    c: &Compiled,
    tracker: &mut Tracker,
    xs: &[Rows<'_>],
    ys: &[Rows<'_>],
    from: usize,
    batch: usize,
    sw: Option<&[f32]>,
    group: Option<&dyn Collective>,
    finite_outputs: bool,
) -> Result<()> {
    let n = xs[0].n;
    let no = m.meta().outputs.len();
    let share = match group {
        Some(g) => crate::distributed::shard(n - from, g.rank(), g.size()),
        None => 0..n - from,
    };
    infer_batches(m, xs, (from + share.start, from + share.end), batch, |m, start, k| {
        if finite_outputs {
            check_outputs(m, start, k)?;
        }
        let w = sw.map(|w| &w[start..start + k]);
        tracker.observe(m, c, &range(ys, start, start + k)[..no], k, None, w);
        Ok(())
    })?;
    if let Some(g) = group {
        tracker.all_sum(g, &mut Default::default());
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

pub(crate) fn evaluate(
    m: &mut dyn DynModel,
    x: Vec<InputArray<'_>>,
    y: Vec<InputArray<'_>>,
    opts: Evaluate,
    sample_weight: Option<ArrayView1<'_, f32>>,
) -> Result<Logs> {
    super::check_usable(m)?;
    let meta = m.meta();
    let c = compiled(m, "evaluate")?;
    check_batch_size(opts.batch_size)?;
    let xs = data::inputs(&meta, &x, "x")?;
    let ys = data::targets(&meta, &y, xs[0].n, &c.losses(), "y")?;
    let sw = sample_weight.map(|w| data::sample_weights(w, xs[0].n, "sample_weight")).transpose()?;
    let progress = progress::Progress::start(opts.verbose, None, xs[0].n.div_ceil(opts.batch_size));
    with_state(m, |m, st| {
        let _ftz = FlushDenormals::new();
        let c = st.compiled.as_ref().ok_or(Error::NotCompiled("evaluate"))?;
        let mut tracker = Tracker::new(&meta, c);
        evaluate_rows(m, c, &mut tracker, &xs, &ys, 0, opts.batch_size, sw.as_deref(), st.group.as_deref(), true)?;
        let mut out = Logs::new();
        tracker.logs(&meta, "", &mut out);
        progress.finish(&out);
        Ok(out)
    })
}

/// Rows per forward pass in `predict`: large enough to amortise each product, small enough that
/// the buffers stay in cache.
const PREDICT_BATCH: usize = 1024;

pub(crate) fn predict(
    m: &mut dyn DynModel,
    x: Vec<InputArray<'_>>,
    opts: Predict,
) -> Result<Vec<ArrayD<f32>>> {
    super::check_usable(m)?;
    let meta = m.meta();
    check_batch_size(opts.batch_size)?;
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let mut outs: Vec<ArrayD<f32>> = meta
        .outputs
        .iter()
        .map(|o| ArrayD::zeros(std::iter::once(n).chain(o.shape.iter().copied()).collect::<Vec<_>>()))
        .collect();
    let progress = progress::Progress::start(opts.verbose, None, n.div_ceil(opts.batch_size));
    let _ftz = FlushDenormals::new();
    infer_batches(m, &xs, (0, xs[0].n), opts.batch_size, |m, start, k| {
        check_outputs(m, start, k)?;
        for (j, out) in outs.iter_mut().enumerate() {
            let w = meta.outputs[j].size();
            let dst = out.as_slice_mut().ok_or_else(|| Error::invalid("x", "output array not contiguous"))?;
            dst[start * w..(start + k) * w].copy_from_slice(m.output(j));
        }
        Ok(())
    })?;
    progress.finish(&Logs::new());
    Ok(outs)
}

pub(crate) fn predict_one<'m>(m: &'m mut dyn DynModel, x: &[f32]) -> Result<&'m [f32]> {
    super::check_usable(m)?;
    let meta = m.meta();
    if meta.inputs.len() != 1 {
        return Err(Error::invalid(
            "x",
            format!("predict_one takes one input, but {} has {}: use predict", meta.name, meta.inputs.len()),
        ));
    }
    let size = meta.inputs[0].size();
    if x.len() != size {
        return Err(Error::Shape {
            what: format!("x (one sample for {}, flattened)", meta.name),
            expected: format!("[{size}]"),
            got: crate::error::Shape(vec![x.len()]),
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidData { what: "x".into(), reason: format!("value {i} is {}", x[i]) });
    }
    if let crate::model::DType::I32 { below } = meta.inputs[0].dtype {
        data::check_ids(x, size, meta.inputs[0].shape, below)
            .map_err(|reason| Error::InvalidData { what: "x".into(), reason })?;
    }
    let _ftz = FlushDenormals::new();
    m.run(&[x], &mut Ctx::new(1, false, &mut Stream::new(0)));
    check_outputs(m, 0, 1)?;
    Ok(m.output(0))
}

/// After a forward pass on rows `start..start + k` of finite input: an error when an output holds
/// a NaN or infinite value, naming the first layer whose output held one. One pass over the
/// outputs; the layers are read only when one is not finite.
pub(super) fn check_outputs(m: &dyn DynModel, start: usize, k: usize) -> Result<()> {
    let meta = m.meta();
    let Some((j, i)) = (0..meta.outputs.len()).find_map(|j| crate::kernels::first_non_finite(m.output(j)).map(|i| (j, i)))
    else {
        return Ok(());
    };
    let out = m.output(j);
    let (mut layer, mut at, mut value) = (meta.outputs[j].name.to_string(), i * k / out.len().max(1), out[i]);
    let mut found = false;
    m.visit_layer_outputs(&mut |name, values| {
        if !found && let Some(i) = crate::kernels::first_non_finite(values) {
            (layer, at, value, found) = (name.to_string(), i * k / values.len().max(1), values[i], true);
        }
    });
    Err(Error::NonFiniteOutput { model: meta.name, layer, row: start + at, value })
}
