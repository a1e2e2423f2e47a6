//! Keras' `Permute(dims)`: each sample's axes in another order (`Permute([2, 1])` swaps steps and
//! features). Forward and backward are the same copy, the second by the inverse order.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};
use crate::infer::{permute, permute_plan};

/// A reordering of up to three axes per sample.
#[derive(Clone, Debug)]
pub struct Permute {
    /// The output's shape and the input's stride along each output axis (rank 3, a leading 1 for
    /// rank 2); the same for the way back.
    fwd: ([usize; 3], [usize; 3]),
    back: ([usize; 3], [usize; 3]),
    buf: PermuteBuffers,
}

/// What one application of a [`Permute`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct PermuteBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for PermuteBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Permute {
    /// The layer moving input axis `order[k]` to output axis `k` (0-based, over a sample's axes
    /// of `shape`).
    pub fn new(shape: &[usize], order: &[usize]) -> Self {
        let out: Vec<usize> = order.iter().map(|&o| shape[o]).collect();
        let mut inverse = vec![0; order.len()];
        order.iter().enumerate().for_each(|(k, &o)| inverse[o] = k);
        Permute { fwd: permute_plan(shape, order), back: permute_plan(&out, &inverse), buf: PermuteBuffers::default() }
    }
}

/// The permutation over the batch, one sample at a time.
fn each(x: &[f32], (dims, strides): ([usize; 3], [usize; 3]), y: &mut [f32]) {
    let len = dims.iter().product::<usize>().max(1);
    for (xs, ys) in x.chunks_exact(len).zip(y.chunks_exact_mut(len)) {
        permute(xs, dims, strides, ys);
    }
}

impl Layer for Permute {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        each(xs[0], self.fwd, out);
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            let dx = sized(&mut self.buf.dx, dy.len());
            each(dy, self.back, dx);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl Shareable for Permute {
    type Buffers = PermuteBuffers;
    fn buffers_mut(&mut self) -> &mut PermuteBuffers {
        &mut self.buf
    }
}
