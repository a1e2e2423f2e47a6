//! Keras' `Permute(dims)`: each sample's axes in another order (`Permute([2, 1])` swaps steps and
//! features). Forward and backward are the same copy, the second by the inverse order.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// A reordering of a sample's axes (up to six).
#[derive(Clone, Debug)]
pub struct Permute {
    /// The output's shape and the input's stride along each output axis, padded with leading 1s
    /// to rank 6; the same for the way back.
    fwd: Plan,
    back: Plan,
    buf: PermuteBuffers,
}

/// The most axes a sample has.
const RANK: usize = 6;

/// A permutation's output shape and, along each output axis, the input's stride.
type Plan = ([usize; RANK], [usize; RANK]);

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
    /// of `shape`, at most 6).
    pub fn new(shape: &[usize], order: &[usize]) -> Self {
        let out: Vec<usize> = order.iter().map(|&o| shape[o]).collect();
        let mut inverse = vec![0; order.len()];
        order.iter().enumerate().for_each(|(k, &o)| inverse[o] = k);
        Permute { fwd: plan(shape, order), back: plan(&out, &inverse), buf: PermuteBuffers::default() }
    }
}

/// The plan of a permutation of a sample of `shape`.
fn plan(shape: &[usize], order: &[usize]) -> Plan {
    let pad = RANK - shape.len();
    let mut strides = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let (mut dims, mut from) = ([1usize; RANK], [0usize; RANK]);
    for (k, &o) in order.iter().enumerate() {
        dims[pad + k] = shape[o];
        from[pad + k] = strides[o];
    }
    (dims, from)
}

/// The permutation over the batch, one sample at a time: the output written in order, the input
/// read along the plan's strides (the last axis innermost).
fn each(x: &[f32], (dims, strides): Plan, y: &mut [f32]) {
    let len = dims.iter().product::<usize>().max(1);
    let outer: usize = dims[..RANK - 1].iter().product();
    for (xs, ys) in x.chunks_exact(len).zip(y.chunks_exact_mut(len)) {
        let mut at = [0usize; RANK - 1];
        for row in ys.chunks_exact_mut(dims[RANK - 1].max(1)).take(outer) {
            let base: usize = at.iter().zip(&strides).map(|(i, s)| i * s).sum();
            row.iter_mut().enumerate().for_each(|(c, v)| *v = xs[base + c * strides[RANK - 1]]);
            // The next position of the outer axes, the last fastest.
            crate::infer::ops::next_position(&mut at, &dims[..RANK - 1]);
        }
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
