use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// A layer that makes Keras' mask over the steps of its input: [`Embedding`](super::Embedding)
/// with `mask_zero`, and [`Masking`]. The model macros hand the mask to the layers that use one.
pub trait MaskSource {
    /// The mask of the last forward pass: per step, 1 (real) or 0 (padding).
    fn mask(&self) -> &[f32];
}

/// Keras' `Masking(mask_value = 0.0)`: a step whose features all equal `mask_value` is padding.
/// Padded steps are zeroed, and the mask reaches the layers that honour one.
#[derive(Clone, Debug)]
pub struct Masking {
    mask_value: f32,
    features: usize,
    buf: MaskingBuffers,
}

/// What one application of a [`Masking`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct MaskingBuffers {
    out: Vec<f32>,
    mask: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for MaskingBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Masking {
    /// Steps of `features` values, padding where all equal `mask_value`.
    pub fn new(mask_value: f32, features: usize) -> Self {
        Masking { mask_value, features, buf: MaskingBuffers::default() }
    }
}

impl MaskSource for Masking {
    fn mask(&self) -> &[f32] {
        &self.buf.mask
    }
}

impl Layer for Masking {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, f) = (xs[0], self.features);
        let b = &mut self.buf;
        let out = sized(&mut b.out, x.len());
        let mask = sized(&mut b.mask, x.len() / f);
        for ((row, o), m) in x.chunks_exact(f).zip(out.chunks_exact_mut(f)).zip(mask.iter_mut()) {
            let keep = row.iter().any(|&v| v != self.mask_value);
            *m = keep as u8 as f32;
            o.iter_mut().zip(row).for_each(|(o, &v)| *o = if keep { v } else { 0.0 });
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let f = self.features;
        let b = &mut self.buf;
        let dx = sized(&mut b.dx, xs[0].len());
        for ((d, g), m) in dx.chunks_exact_mut(f).zip(dy.chunks_exact(f)).zip(&b.mask) {
            d.iter_mut().zip(g).for_each(|(d, g)| *d = g * m);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl Shareable for Masking {
    type Buffers = MaskingBuffers;
    fn buffers_mut(&mut self) -> &mut MaskingBuffers {
        &mut self.buf
    }
}
