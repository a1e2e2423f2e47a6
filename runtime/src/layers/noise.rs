//! Layers active only in training, drawing from the model's random stream: `Dropout` and
//! `GaussianNoise`; and `Rescaling`, a fixed affine map.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// What one application of these layers writes.
#[derive(Clone, Debug, Default)]
pub struct NoiseBuffers {
    out: Vec<f32>,
    /// Dropout: each value's factor (0 or 1 / (1 - rate)) in the last training pass.
    mask: Vec<f32>,
    dx: Vec<f32>,
    /// The last forward pass changed its input (a training pass).
    active: bool,
}

impl LayerBuffers for NoiseBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

/// Keras' `Dropout(rate)`: in training, each value is zeroed with probability `rate` and the rest
/// scaled by `1 / (1 - rate)` (inverted dropout), from the model's seeded stream; in inference it
/// is the identity.
#[derive(Clone, Debug)]
pub struct Dropout {
    rate: f32,
    buf: NoiseBuffers,
}

impl Dropout {
    /// A layer dropping a fraction `rate` (in [0, 1), checked when the model compiles).
    pub fn new(rate: f32) -> Self {
        Dropout { rate, buf: NoiseBuffers::default() }
    }
}

impl Layer for Dropout {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let x = xs[0];
        let b = &mut self.buf;
        let out = sized(&mut b.out, x.len());
        b.active = ctx.training && self.rate > 0.0;
        if !b.active {
            out.copy_from_slice(x);
            return;
        }
        let keep = 1.0 / (1.0 - self.rate);
        let mask = sized(&mut b.mask, x.len());
        for ((o, m), &v) in out.iter_mut().zip(mask.iter_mut()).zip(x) {
            *m = if ctx.rng.uniform() >= self.rate { keep } else { 0.0 };
            *o = v * *m;
        }
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let b = &mut self.buf;
        let dx = sized(&mut b.dx, dy.len());
        if b.active {
            dx.iter_mut().zip(dy).zip(&b.mask).for_each(|((d, g), m)| *d = g * m);
        } else {
            dx.copy_from_slice(dy);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// Keras' `SpatialDropout1D/2D(rate)`: like [`Dropout`], but drops whole channels (one draw per
/// sample and channel, shared by every position), for inputs whose neighbours are correlated.
#[derive(Clone, Debug)]
pub struct SpatialDropout {
    rate: f32,
    channels: usize,
    buf: NoiseBuffers,
}

impl SpatialDropout {
    /// A layer dropping a fraction `rate` of the `channels` of each sample.
    pub fn new(rate: f32, channels: usize) -> Self {
        SpatialDropout { rate, channels, buf: NoiseBuffers::default() }
    }
}

impl Layer for SpatialDropout {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, c) = (xs[0], self.channels);
        let b = &mut self.buf;
        let out = sized(&mut b.out, x.len());
        b.active = ctx.training && self.rate > 0.0;
        if !b.active {
            out.copy_from_slice(x);
            return;
        }
        let keep = 1.0 / (1.0 - self.rate);
        let per_sample = x.len() / ctx.n.max(1);
        // One factor per (sample, channel), spread over the sample's positions.
        let mask = sized(&mut b.mask, x.len());
        for s in 0..ctx.n {
            let first = s * per_sample;
            for ch in 0..c {
                mask[first + ch] = if ctx.rng.uniform() >= self.rate { keep } else { 0.0 };
            }
            let (head, rest) = mask[first..first + per_sample].split_at_mut(c);
            for row in rest.chunks_exact_mut(c) {
                row.copy_from_slice(head);
            }
        }
        out.iter_mut().zip(x).zip(mask.iter()).for_each(|((o, v), m)| *o = v * m);
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let b = &mut self.buf;
        let dx = sized(&mut b.dx, dy.len());
        if b.active {
            dx.iter_mut().zip(dy).zip(&b.mask).for_each(|((d, g), m)| *d = g * m);
        } else {
            dx.copy_from_slice(dy);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// Keras' `GaussianNoise(stddev)`: in training, adds zero-mean normal noise of `stddev` from the
/// model's stream; in inference it is the identity.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    stddev: f32,
    buf: NoiseBuffers,
}

impl GaussianNoise {
    /// A layer adding noise of standard deviation `stddev`.
    pub fn new(stddev: f32) -> Self {
        GaussianNoise { stddev, buf: NoiseBuffers::default() }
    }
}

impl Layer for GaussianNoise {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let x = xs[0];
        let out = sized(&mut self.buf.out, x.len());
        if ctx.training && self.stddev > 0.0 {
            out.iter_mut().zip(x).for_each(|(o, v)| *o = v + self.stddev * ctx.rng.normal());
        } else {
            out.copy_from_slice(x);
        }
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            sized(&mut self.buf.dx, dy.len()).copy_from_slice(dy);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// Keras' `Rescaling(scale, offset=0.0)`: `x · scale + offset`, in training and inference.
#[derive(Clone, Debug)]
pub struct Rescaling {
    scale: f32,
    offset: f32,
    buf: NoiseBuffers,
}

impl Rescaling {
    /// A layer computing `x · scale + offset`.
    pub fn new(scale: f32, offset: f32) -> Self {
        Rescaling { scale, offset, buf: NoiseBuffers::default() }
    }
}

impl Layer for Rescaling {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        out.iter_mut().zip(xs[0]).for_each(|(o, v)| *o = v * self.scale + self.offset);
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            let dx = sized(&mut self.buf.dx, dy.len());
            dx.iter_mut().zip(dy).for_each(|(d, g)| *d = g * self.scale);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

macro_rules! shareable {
    ($($t:ty),*) => {$(
        impl Shareable for $t {
            type Buffers = NoiseBuffers;
            fn buffers_mut(&mut self) -> &mut NoiseBuffers {
                &mut self.buf
            }
        }
    )*};
}

shareable!(Dropout, SpatialDropout, GaussianNoise, Rescaling);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Stream;

    #[test]
    fn dropout_keeps_one_minus_rate_and_is_the_identity_in_inference() {
        let x = vec![1.0f32; 100_000];
        let mut d = Dropout::new(0.3);
        let mut s = Stream::new(5);
        d.forward(&[&x], &mut Ctx::new(1, false, &mut s));
        assert_eq!(d.output(), &x[..], "inference is the identity");
        d.forward(&[&x], &mut Ctx::new(1, true, &mut s));
        let kept = d.output().iter().filter(|v| **v != 0.0).count() as f64 / x.len() as f64;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        let mean = d.output().iter().map(|v| *v as f64).sum::<f64>() / x.len() as f64;
        assert!((mean - 1.0).abs() < 0.02, "inverted scaling keeps the mean: {mean}");
        let mut zero = Dropout::new(0.0);
        zero.forward(&[&x], &mut Ctx::new(1, true, &mut s));
        assert_eq!(zero.output(), &x[..], "rate 0 is the identity");
    }
}
