use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// One of a layer's several outputs: values `start..start + len` of each sample's `stride`
/// (a recurrent layer's final state under Keras' `return_state`). The model macros place one
/// after the layer for each output a model binds; its gradient is zero outside its part.
#[derive(Clone, Debug)]
pub struct Take {
    stride: usize,
    start: usize,
    len: usize,
    buf: TakeBuffers,
}

/// What one application of a [`Take`] writes.
#[derive(Clone, Debug, Default)]
pub struct TakeBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for TakeBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Take {
    /// Values `start..start + len` of every `stride` values.
    pub fn new(stride: usize, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= stride, "a part lies within its sample");
        Take { stride, start, len, buf: TakeBuffers::default() }
    }
}

impl Layer for Take {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (s, a, l) = (self.stride, self.start, self.len);
        let out = sized(&mut self.buf.out, xs[0].len() / s * l);
        for (o, x) in out.chunks_exact_mut(l).zip(xs[0].chunks_exact(s)) {
            o.copy_from_slice(&x[a..a + l]);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (s, a, l) = (self.stride, self.start, self.len);
        let dx = sized(&mut self.buf.dx, xs[0].len());
        for (d, g) in dx.chunks_exact_mut(s).zip(dy.chunks_exact(l)) {
            d[..a].fill(0.0);
            d[a..a + l].copy_from_slice(g);
            d[a + l..].fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl Shareable for Take {
    type Buffers = TakeBuffers;
    fn buffers_mut(&mut self) -> &mut TakeBuffers {
        &mut self.buf
    }
}
