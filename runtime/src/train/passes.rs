//! A model's passes on their own, for the training steps `fit` does not know (Keras'
//! `GradientTape`, PyTorch's `backward()`):
//!
//! - [`loss_and_grads`]: the loss of every output against its targets (one loss for all, or
//!   [`Losses`] per output with weights) and the gradient of every parameter, counted exactly as
//!   `fit` counts them;
//! - [`forward_train`] and [`backward_train`]: a training-mode forward pass, and the backward pass
//!   from output gradients the caller computed — on another model's input gradients, for a step
//!   that spans several models (a GAN's generator trained through its discriminator), or from
//!   losses of the caller's own (distillation);
//! - [`input_gradients`]: the gradient with respect to the inputs, in inference mode.
//!
//! ```ignore
//! let fake = generator.forward_train(&z)?;                   // [n, 8, 8, 1]
//! let logits = discriminator.forward_train(&fake)?;          // [n, 1]
//! let (g_loss, dlogits) = bce.value_and_grad(&logits, &ones)?;
//! let through_d = discriminator.backward_train(&dlogits)?;   // the discriminator stays as it is
//! let back = generator.backward_train(&through_d.input_grads[0])?;
//! g_opt.apply(&mut generator, &back.grads)?;
//! ```

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::fpenv::FlushDenormals;
use crate::layers::Ctx;
use crate::losses::Loss;
use crate::model::dynamic::DynModel;
use crate::model::{InputArray, MAX_PORTS, Meta};
use crate::random::Stream;

use super::compile::{IntoLoss, OutputSpec, output_losses};
use super::custom::Gradients;
use super::step::{add_regularizer_grads, keep_state, restore_state, weighted_loss};
use super::{TrainState, compiled, data, slices, with_state};

/// The losses a custom step differentiates, per output, named as in
/// [`Compile`](super::Compile): one loss for every output, a loss and a weight per output, or
/// the ones `compile` chose. A `&Loss` converts into one for every output.
///
/// ```ignore
/// let losses = Losses::new()
///     .output_loss("class", "sparse_categorical_crossentropy")
///     .output_loss("score", "mse")
///     .loss_weight("score", 0.5);
/// let (loss, grads) = model.loss_and_grads(&x, (&labels, &scores), &losses)?;
/// let (loss, grads) = model.loss_and_grads(&x, (&labels, &scores), &Losses::compiled())?;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Losses {
    default: Option<Loss>,
    by_name: Vec<(String, Loss)>,
    weights: Vec<(String, f32)>,
    compiled: bool,
    /// A name that did not resolve, reported when the losses are used.
    error: Option<String>,
}

impl Losses {
    /// No loss yet: add one for every output ([`loss`](Self::loss)) or one per output.
    pub fn new() -> Self {
        Losses::default()
    }

    /// The losses and loss weights `compile` chose, so a custom loop computes what `fit` does.
    pub fn compiled() -> Self {
        Losses { compiled: true, ..Losses::default() }
    }

    /// The loss of every output without a loss of its own.
    pub fn loss(mut self, loss: impl IntoLoss) -> Self {
        match loss.into_loss() {
            Ok(l) => self.default = Some(l),
            Err(e) => self.error = self.error.or(Some(e.to_string())),
        }
        self
    }

    /// The loss of the output named `output`.
    pub fn output_loss(mut self, output: &str, loss: impl IntoLoss) -> Self {
        match loss.into_loss() {
            Ok(l) => self.by_name.push((output.to_string(), l)),
            Err(e) => self.error = self.error.or(Some(e.to_string())),
        }
        self
    }

    /// The weight of `output`'s loss in the total (default 1).
    pub fn loss_weight(mut self, output: &str, weight: f32) -> Self {
        self.weights.push((output.to_string(), weight));
        self
    }

    /// Each output's loss and weight for `m`, checked against its outputs.
    fn resolve(&self, m: &dyn DynModel, call: &'static str) -> Result<Vec<OutputSpec>> {
        if let Some(e) = &self.error {
            return Err(Error::invalid("loss", e.clone()));
        }
        if self.compiled {
            return Ok(compiled(m, call)?
                .outputs
                .iter()
                .map(|o| OutputSpec { loss: o.loss, weight: o.weight, metrics: Vec::new() })
                .collect());
        }
        let meta = m.meta();
        let resolved = output_losses(&meta, self.default, self.by_name.clone(), &self.weights)?;
        Ok(resolved.into_iter().map(|(loss, weight)| OutputSpec { loss, weight, metrics: Vec::new() }).collect())
    }
}

/// What `loss_and_grads` takes: a [`Loss`] (for every output) or [`Losses`].
pub trait ToLosses {
    /// The losses, per output.
    fn to_losses(&self) -> Losses;
}

impl ToLosses for Loss {
    fn to_losses(&self) -> Losses {
        Losses::from(self)
    }
}

impl ToLosses for Losses {
    fn to_losses(&self) -> Losses {
        self.clone()
    }
}

impl From<&Loss> for Losses {
    fn from(loss: &Loss) -> Self {
        Losses::new().loss(*loss)
    }
}

impl From<Loss> for Losses {
    fn from(loss: Loss) -> Self {
        Losses::new().loss(loss)
    }
}

impl From<&Losses> for Losses {
    fn from(losses: &Losses) -> Self {
        losses.clone()
    }
}

/// What [`Model::backward_train`](crate::Model::backward_train) returns: the gradient of every parameter and of every input.
#[derive(Clone, Debug)]
pub struct Backward {
    /// The gradient of each parameter, as [`Model::loss_and_grads`](crate::Model::loss_and_grads)
    /// gives it.
    pub grads: Gradients,
    /// The gradient with respect to each input, in its shape (`[n, ..]`): the output gradient of
    /// the model that produced that input.
    pub input_grads: Vec<ArrayD<f32>>,
    /// The model's own losses in the forward pass (weight regularization, activity penalties,
    /// `add_loss` terms), whose gradients `grads` includes: add it to the loss you report.
    pub own_loss: f32,
}

/// The inputs of the last training forward pass, kept for its backward pass.
#[derive(Clone, Debug, Default)]
pub(super) struct Tape {
    xs: Vec<Vec<f32>>,
    n: usize,
    recorded: bool,
}

/// The loss of `m` on one batch and its gradients: each output's loss (weighted) plus the
/// model's own losses, exactly as a step of `fit` counts them.
pub(crate) fn loss_and_grads(
    m: &mut dyn DynModel,
    x: Vec<InputArray<'_>>,
    y: Vec<InputArray<'_>>,
    losses: &Losses,
) -> Result<(f32, Gradients)> {
    let meta = m.meta();
    let outs = losses.resolve(m, "loss_and_grads")?;
    let each: Vec<Loss> = outs.iter().map(|o| o.loss).collect();
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, &y, n, &each, "y")?;
    let fused: Vec<bool> = (0..outs.len()).map(|k| super::fuses(&meta, &each[k], k)).collect();
    let _ftz = FlushDenormals::new();
    let xb = slices(xs.iter().map(|r| &r.data[..]));
    let yb = slices(ys.iter().map(|r| &r.data[..]));
    let (ni, no) = (meta.inputs.len(), meta.outputs.len());
    with_state(m, |m, st| {
        let TrainState { stream, ws, .. } = st;
        let mut ctx = Ctx::new(n, true, stream);
        run_refusing_bad_state(m, &xb[..ni], &mut ctx, &mut ws.step.state)?;
        let grads = &mut ws.step.grads;
        grads.resize(no, Vec::new());
        let total = weighted_loss(m, &outs, &fused, &yb[..no], n, Some(&mut grads[..]), None, |_, _| {});
        let dys = slices(grads.iter().map(|g| &g[..]));
        m.run_backward(&xb[..ni], &dys[..no], &fused, &mut ctx);
        add_regularizer_grads(m);
        Ok((total, Gradients::of(m)))
    })
}

/// A training-mode forward pass of `m` on `x` (dropout on, moving statistics updated, as in a
/// step of `fit`), kept for [`backward_train`]; returns each output as `[n, ..shape]`.
pub(crate) fn forward_train(m: &mut dyn DynModel, x: Vec<InputArray<'_>>) -> Result<Vec<ArrayD<f32>>> {
    let meta = m.meta();
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    with_state(m, |m, st| {
        let TrainState { stream, ws, .. } = st;
        let tape = &mut ws.tape;
        tape.xs.resize(xs.len(), Vec::new());
        for (kept, r) in tape.xs.iter_mut().zip(&xs) {
            kept.clear();
            kept.extend_from_slice(&r.data);
        }
        (tape.n, tape.recorded) = (n, true);
        let _ftz = FlushDenormals::new();
        let xb = slices(tape.xs.iter().map(|v| &v[..]));
        let mut ctx = Ctx::new(n, true, stream);
        run_refusing_bad_state(m, &xb[..meta.inputs.len()], &mut ctx, &mut ws.step.state)
    })?;
    outputs_of(m, &meta, n)
}

/// A training forward pass, which moves the moving statistics: a move to a value they may not
/// hold (NaN, infinite, a negative variance) is undone and refused, naming the statistic. `kept`
/// holds the statistics meanwhile (the model's step buffer: no allocation per batch).
fn run_refusing_bad_state(m: &mut dyn DynModel, xs: &[&[f32]], ctx: &mut Ctx<'_>, kept: &mut Vec<f32>) -> Result<()> {
    keep_state(m, kept);
    m.run(xs, ctx);
    if let Some((what, value)) = super::step::refused_state(m) {
        restore_state(m, kept);
        return Err(Error::NonFiniteUpdate { what, value });
    }
    Ok(())
}

/// Every output of the last forward pass as `[n, ..shape]` arrays.
pub(super) fn outputs_of(m: &dyn DynModel, meta: &Meta, n: usize) -> Result<Vec<ArrayD<f32>>> {
    meta.outputs
        .iter()
        .enumerate()
        .map(|(k, port)| {
            let shape: Vec<usize> = std::iter::once(n).chain(port.shape.iter().copied()).collect();
            ArrayD::from_shape_vec(IxDyn(&shape), m.output(k).to_vec())
                .map_err(|e| Error::invalid("output", e.to_string()))
        })
        .collect()
}

/// The backward pass of the last [`forward_train`] of `m`, from `dy`: the gradient of a loss with
/// respect to each output (shaped as the outputs). Returns every parameter's and every input's
/// gradient; nothing is applied.
pub(crate) fn backward_train(m: &mut dyn DynModel, dy: Vec<InputArray<'_>>) -> Result<Backward> {
    let meta = m.meta();
    let (ni, no) = (meta.inputs.len(), meta.outputs.len());
    let tape = &m.train_state().ws.tape;
    if !tape.recorded {
        return Err(Error::invalid(
            "backward_train",
            format!("{} has no training forward pass to go back through: call forward_train first", meta.name),
        ));
    }
    let n = tape.n;
    if dy.len() != no {
        return Err(Error::invalid(
            "dy",
            format!("{} has {no} output(s), so backward_train takes {no} gradient(s); got {}", meta.name, dy.len()),
        ));
    }
    let mut dys: Vec<std::borrow::Cow<'_, [f32]>> = Vec::with_capacity(no);
    for (k, (g, port)) in dy.iter().zip(meta.outputs).enumerate() {
        let shape = g.shape();
        if shape.len() != port.shape.len() + 1 || shape[0] != n || &shape[1..] != port.shape {
            let mut expected = vec![n];
            expected.extend_from_slice(port.shape);
            return Err(Error::Shape {
                what: format!("the gradient of output `{}` of {}", port.name, meta.name),
                expected: crate::error::Shape(expected).to_string(),
                got: crate::error::Shape(shape.to_vec()),
            });
        }
        let values = data::contiguous(g);
        if let Some(i) = crate::kernels::first_non_finite(&values) {
            return Err(Error::InvalidData {
                what: format!("dy (output {k})"),
                reason: format!("value {i} is {}", values[i]),
            });
        }
        dys.push(values);
    }
    let mut own_loss = 0.0;
    with_state(m, |m, st| {
        let TrainState { stream, ws, .. } = st;
        let _ftz = FlushDenormals::new();
        let xb = slices(ws.tape.xs.iter().map(|v| &v[..]));
        let db = slices(dys.iter().map(|d| &d[..]));
        let mut ctx = Ctx::new(n, true, stream);
        m.backward_to_inputs(&xb[..ni], &db[..no], &[false; MAX_PORTS][..no], &mut ctx);
        add_regularizer_grads(m);
        own_loss = (super::step::regularization(m) + m.activity_penalty()) as f32;
        Ok(())
    })?;
    let db = slices(dys.iter().map(|d| &d[..]));
    let input_grads = input_grads_of(m, &meta, n, &db[..no])?;
    Ok(Backward { grads: Gradients::of(m), input_grads, own_loss })
}

/// The gradient with respect to each input after a backward pass to the inputs.
fn input_grads_of(m: &dyn DynModel, meta: &Meta, n: usize, dys: &[&[f32]]) -> Result<Vec<ArrayD<f32>>> {
    let mut out = Vec::with_capacity(meta.inputs.len());
    for (i, port) in meta.inputs.iter().enumerate() {
        let shape: Vec<usize> = std::iter::once(n).chain(port.shape.iter().copied()).collect();
        let g = m.input_grad_of(i, dys);
        if g.len() != n * port.size() {
            return Err(Error::invalid(
                "input_gradients",
                format!("{} does not compute gradients with respect to its inputs", meta.name),
            ));
        }
        out.push(ArrayD::from_shape_vec(shape, g.to_vec()).map_err(|e| Error::invalid("x", e.to_string()))?);
    }
    Ok(out)
}

/// The gradient of the loss with respect to each input (saliency maps, adversarial examples), in
/// inference mode (dropout off, moving statistics), nothing updated.
pub(crate) fn input_gradients(
    m: &mut dyn DynModel,
    x: Vec<InputArray<'_>>,
    y: Vec<InputArray<'_>>,
    loss: &Loss,
) -> Result<Vec<ArrayD<f32>>> {
    let meta = m.meta();
    let xs = data::inputs(&meta, &x, "x")?;
    let n = xs[0].n;
    let ys = data::targets(&meta, &y, n, &[*loss], "y")?;
    meta.outputs.iter().try_for_each(|o| loss.check_gradient(o.last()))?;
    let _ftz = FlushDenormals::new();
    let xb = slices(xs.iter().map(|r| &r.data[..]));
    let (ni, no) = (meta.inputs.len(), meta.outputs.len());
    // Parameter gradients are rewritten by the pass: keep them as they were.
    let mut kept = Vec::new();
    m.visit_weights(&mut |_, p| kept.push(p.grad.clone()));
    let mut stream = Stream::new(0);
    let mut ctx = Ctx::new(n, false, &mut stream);
    m.run(&xb[..ni], &mut ctx);
    // `loss` on every output, its gradients counted as a step counts them.
    let outs: Vec<OutputSpec> = (0..no).map(|_| OutputSpec { loss: *loss, weight: 1.0, metrics: Vec::new() }).collect();
    let fused: Vec<bool> = (0..no).map(|k| super::fuses(&meta, loss, k)).collect();
    let yb = slices(ys.iter().map(|r| &r.data[..]));
    let mut grads: Vec<Vec<f32>> = vec![Vec::new(); no];
    weighted_loss(m, &outs, &fused, &yb[..no], n, Some(&mut grads[..]), None, |_, _| {});
    let dys = slices(grads.iter().map(|g| &g[..]));
    m.backward_to_inputs(&xb[..ni], &dys[..no], &fused, &mut ctx);
    let out = input_grads_of(m, &meta, n, &dys[..no])?;
    let mut i = 0;
    m.visit_weights_mut(&mut |p| {
        p.grad.copy_from_slice(&kept[i]);
        i += 1;
    });
    Ok(out)
}

impl Loss {
    /// The loss of predictions `pred` (`[n, .., width]`, a model's output) against `target`, and
    /// its gradient with respect to `pred`, in `pred`'s shape: for a loss of your own making in
    /// a custom step, fed to [`Model::backward_train`](crate::Model::backward_train).
    /// `target` is as `fit` takes it (labels `[n]` or `[n, 1]` for the sparse losses).
    pub fn value_and_grad<'a>(
        &self,
        pred: impl crate::model::Inputs<'a>,
        target: impl crate::model::Inputs<'a>,
    ) -> Result<(f32, ArrayD<f32>)> {
        let (pred, target) = (pred.arrays(), target.arrays());
        let ([p], [y]) = (&pred[..], &target[..]) else {
            return Err(Error::invalid("value_and_grad", "takes one array of predictions and one of targets"));
        };
        let shape = p.shape().to_vec();
        let width = shape.last().copied().unwrap_or(0);
        if shape.len() < 2 || width == 0 || p.is_empty() {
            return Err(Error::Shape {
                what: "pred".into(),
                expected: "[n, .., width] with n and width at least 1".into(),
                got: crate::error::Shape(shape),
            });
        }
        let rows = p.len() / width;
        let tw = self.target_width(width);
        if y.len() != rows * tw || y.shape().first() != Some(&shape[0]) {
            let expected = if tw == 1 && width > 1 {
                format!("[{}] or [{}, 1] (one label per row)", shape[0], shape[0])
            } else {
                crate::error::Shape(shape.clone()).to_string()
            };
            return Err(Error::Shape { what: "target".into(), expected, got: crate::error::Shape(y.shape().to_vec()) });
        }
        self.check_gradient(width)?;
        let (pv, yv) = (data::contiguous(p), data::contiguous(y));
        if let Some(i) = crate::kernels::first_non_finite(&pv) {
            return Err(Error::InvalidData { what: "pred".into(), reason: format!("value {i} is {}", pv[i]) });
        }
        self.check_targets(&yv, width, "target")?;
        let mut g = vec![0.0; pv.len()];
        let value = self.compute(&pv, &yv, rows, width, Some(&mut g), false);
        let g = ArrayD::from_shape_vec(IxDyn(&shape), g).map_err(|e| Error::invalid("pred", e.to_string()))?;
        Ok((value, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_loss_that_does_not_resolve_is_reported_when_used() {
        let l = Losses::new().loss("mean_squared_eror");
        assert!(l.error.as_deref().is_some_and(|e| e.contains("mean_squared_error")), "{:?}", l.error);
    }

    #[test]
    fn value_and_grad_is_the_loss_and_its_derivative() {
        let p = ndarray::arr2(&[[0.5f32, -1.0], [2.0, 0.0]]);
        let y = ndarray::arr2(&[[0.0f32, 0.0], [1.0, 1.0]]);
        let (v, g) = Loss::MeanSquaredError.value_and_grad(&p, &y).unwrap();
        // mean over 4 values of (p - y)^2, and 2 (p - y) / 4.
        assert!((v - (0.25 + 1.0 + 1.0 + 1.0) / 4.0).abs() < 1e-6);
        assert_eq!(g.as_slice().unwrap(), &[0.25, -0.5, 0.5, -0.5]);
        let e = Loss::MeanSquaredError.value_and_grad(&p, &ndarray::arr2(&[[1.0f32, 2.0, 3.0]])).unwrap_err();
        assert!(e.to_string().contains("[2, 2]"), "{e}");
    }
}
