//! Layers that move values between positions of `channels_last` samples without arithmetic:
//! `ZeroPadding2D`, `Cropping2D` and `UpSampling2D` (nearest). Each output position reads one
//! input position (or none: padding), so forward is a gather and backward a scatter-add.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// Keras' `ZeroPadding2D`, `Cropping2D` and `UpSampling2D`: for every output position of an
/// `[oh, ow, c]` sample, the input position it copies, if any.
#[derive(Clone, Debug)]
pub struct Resample {
    /// Per output position, the input position it reads, or `u32::MAX` for a zero.
    source: Vec<u32>,
    in_positions: usize,
    channels: usize,
    buf: ResampleBuffers,
}

/// What one application of a [`Resample`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct ResampleBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for ResampleBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Resample {
    fn build(
        h: usize,
        w: usize,
        c: usize,
        oh: usize,
        ow: usize,
        at: impl Fn(usize, usize) -> Option<(usize, usize)>,
    ) -> Self {
        let source = (0..oh * ow).map(|p| at(p / ow, p % ow).map_or(u32::MAX, |(y, x)| (y * w + x) as u32)).collect();
        Resample { source, in_positions: h * w, channels: c, buf: ResampleBuffers::default() }
    }

    /// `ZeroPadding2D`: `[h, w, c]` with rows `top`/`bottom` and columns `left`/`right` of zeros.
    pub fn zero_padding(h: usize, w: usize, c: usize, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Self::build(h, w, c, h + top + bottom, w + left + right, |y, x| {
            let (y, x) = (y.checked_sub(top)?, x.checked_sub(left)?);
            (y < h && x < w).then_some((y, x))
        })
    }

    /// `Cropping2D`: `[h, w, c]` without `top`/`bottom` rows and `left`/`right` columns.
    pub fn cropping(h: usize, w: usize, c: usize, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Self::build(h, w, c, h - top - bottom, w - left - right, |y, x| Some((y + top, x + left)))
    }

    /// `UpSampling2D(size, interpolation="nearest")`: every position repeated `sy × sx` times.
    pub fn up_sampling(h: usize, w: usize, c: usize, sy: usize, sx: usize) -> Self {
        Self::build(h, w, c, h * sy, w * sx, |y, x| Some((y / sy, x / sx)))
    }
}

impl Layer for Resample {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (c, ip, op) = (self.channels, self.in_positions, self.source.len());
        let n = xs[0].len() / (ip * c);
        let out = sized(&mut self.buf.out, n * op * c);
        for s in 0..n {
            let sample = &xs[0][s * ip * c..(s + 1) * ip * c];
            for (o, &src) in out[s * op * c..(s + 1) * op * c].chunks_exact_mut(c).zip(&self.source) {
                match src {
                    u32::MAX => o.fill(0.0),
                    src => o.copy_from_slice(&sample[src as usize * c..][..c]),
                }
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (c, ip, op) = (self.channels, self.in_positions, self.source.len());
        let dx = sized(&mut self.buf.dx, xs[0].len());
        dx.fill(0.0);
        let n = xs[0].len() / (ip * c);
        for s in 0..n {
            let d = &mut dx[s * ip * c..(s + 1) * ip * c];
            for (g, &src) in dy[s * op * c..(s + 1) * op * c].chunks_exact(c).zip(&self.source) {
                if src != u32::MAX {
                    d[src as usize * c..][..c].iter_mut().zip(g).for_each(|(d, g)| *d += g);
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
}

impl Shareable for Resample {
    type Buffers = ResampleBuffers;
    fn buffers_mut(&mut self) -> &mut ResampleBuffers {
        &mut self.buf
    }
}
