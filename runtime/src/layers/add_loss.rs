//! Keras' `add_loss`: a term of the loss computed inside `call`.

use super::math::{MathBuffers, math_buffers};
use super::{BackwardOpts, Ctx, Layer, Shareable, sized};

/// Keras' `add_loss` in a `call` body: a term with one value per sample whose mean over the
/// batch is added to the model's loss (the batch mean Keras code writes by hand is implied, as
/// `call` bodies are written per sample). Its output is the term; in the backward pass it sends
/// `1 / n` into each sample's value, whatever reads the output.
#[derive(Clone, Debug, Default)]
pub struct AddLoss {
    value: f64,
    buf: MathBuffers,
}

impl AddLoss {
    /// The layer.
    pub fn new() -> Self {
        AddLoss::default()
    }

    /// The term's mean over the batch of the last forward pass.
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl Layer for AddLoss {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let x = xs[0];
        sized(&mut self.buf.out, x.len()).copy_from_slice(x);
        self.value = x.iter().map(|v| *v as f64).sum::<f64>() / x.len().max(1) as f64;
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            let n = xs[0].len();
            sized(&mut self.buf.dx, n).fill(1.0 / n.max(1) as f32);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

math_buffers!(AddLoss);
