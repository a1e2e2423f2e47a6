//! Keras' `PReLU`: a leaky ReLU whose slope below zero is learnt, one per position of a sample
//! (`alpha` has the sample's shape, 1 along each of `shared_axes`), initialised with zeros.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};
use crate::infer::{prelu, prelu_plan};

/// `x` where `x > 0`, `alpha · x` elsewhere, with `alpha` trainable.
#[derive(Clone, Debug)]
pub struct PReLU {
    /// The slopes: the sample's shape, 1 along the shared axes.
    pub alpha: Param,
    /// A sample's shape (rank 3, leading 1s) and the strides `alpha` is read with (0 along a
    /// shared axis).
    dims: [usize; 3],
    strides: [usize; 3],
    buf: PReluBuffers,
}

/// What one application of a [`PReLU`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct PReluBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for PReluBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl PReLU {
    /// The layer on samples of `shape`, sharing `alpha` along `shared` (0-based sample axes).
    pub fn new(shape: &[usize], shared: &[usize]) -> Self {
        let alpha: Vec<usize> = shape.iter().enumerate().map(|(k, &d)| if shared.contains(&k) { 1 } else { d }).collect();
        let (dims, strides) = prelu_plan(shape, shared);
        PReLU { alpha: Param::zeros(&alpha), dims, strides, buf: PReluBuffers::default() }
    }
}

impl Layer for PReLU {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        let len = self.dims.iter().product::<usize>().max(1);
        for (x, y) in xs[0].chunks_exact(len).zip(out.chunks_exact_mut(len)) {
            prelu(x, &self.alpha.value, self.dims, self.strides, y);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (dims, [s0, s1, s2]) = (self.dims, self.strides);
        let len = dims.iter().product::<usize>().max(1);
        if !opts.accumulate {
            self.alpha.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        let dx = sized(&mut self.buf.dx, if opts.input_grad { dy.len() } else { 0 });
        for (i, (x, g)) in xs[0].chunks_exact(len).zip(dy.chunks_exact(len)).enumerate() {
            let mut o = 0;
            for a in 0..dims[0] {
                for b in 0..dims[1] {
                    for c in 0..dims[2] {
                        let (v, j) = (x[o], a * s0 + b * s1 + c * s2);
                        if v <= 0.0 {
                            self.alpha.grad[j] += g[o] * v;
                        }
                        if opts.input_grad {
                            dx[i * len + o] = if v > 0.0 { g[o] } else { self.alpha.value[j] * g[o] };
                        }
                        o += 1;
                    }
                }
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("alpha", &self.alpha);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.alpha);
    }
}

impl Shareable for PReLU {
    type Buffers = PReluBuffers;
    fn buffers_mut(&mut self) -> &mut PReluBuffers {
        &mut self.buf
    }
}
