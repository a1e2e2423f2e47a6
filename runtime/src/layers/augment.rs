//! Keras 3's image augmentation layers on `channels_last` samples `[height, width, channels]`:
//! `RandomFlip`, `RandomContrast` and `RandomBrightness` here, the geometric ones (translation,
//! rotation, zoom) in `warp.rs`. Each is active in
//! training only (the identity at inference, as in Keras) and draws one transformation per image
//! from the model's seeded stream (`ctx.rng`), so a training run stays reproducible. Backward
//! passes the gradient through the same transformation: flips are permutations, translations
//! bilinear shifts (the transpose of the gather), contrast and brightness affine maps per image
//! (zero where the output was clipped to `value_range`).

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// What one application of an augmentation layer writes.
#[derive(Clone, Debug, Default)]
pub struct AugmentBuffers {
    pub(super) out: Vec<f32>,
    pub(super) dx: Vec<f32>,
    /// The transformation drawn for each image of the last training pass (flip: 0 or 1;
    /// translation: dy, dx in pixels; contrast: the factor; brightness: the delta).
    pub(super) params: Vec<f32>,
    /// Per value, whether the output was clipped to `value_range` (contrast, brightness).
    clipped: Vec<bool>,
    /// The last forward pass transformed its input (a training pass).
    pub(super) active: bool,
}

impl LayerBuffers for AugmentBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

/// The shape of one sample.
#[derive(Clone, Copy, Debug)]
pub(super) struct Image {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Image {
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }
}

macro_rules! augment_layer {
    ($($t:ty),*) => {$(
        impl Shareable for $t {
            type Buffers = AugmentBuffers;
            fn buffers_mut(&mut self) -> &mut AugmentBuffers {
                &mut self.buf
            }
        }
    )*};
}
pub(super) use augment_layer;

/// The shared tail of `backward`: `dx = dy` when the last pass was the identity, else `f`.
pub(super) fn backward_with(b: &mut AugmentBuffers, dy: &[f32], opts: BackwardOpts, f: impl FnOnce(&mut [f32], &[f32], &[bool])) {
    if !opts.input_grad {
        return;
    }
    let dx = sized(&mut b.dx, dy.len());
    if b.active {
        f(dx, &b.params, &b.clipped);
    } else {
        dx.copy_from_slice(dy);
    }
}

/// Keras' `RandomFlip(mode)`: in training, each image is flipped with probability 1/2 (one draw
/// per image; `horizontal_and_vertical` flips both axes on that draw, as Keras 3 does).
#[derive(Clone, Debug)]
pub struct RandomFlip {
    img: Image,
    horizontal: bool,
    vertical: bool,
    buf: AugmentBuffers,
}

impl RandomFlip {
    /// A flip of `[h, w, c]` images along the width (`horizontal`) and/or the height (`vertical`).
    pub fn new(h: usize, w: usize, c: usize, horizontal: bool, vertical: bool) -> Self {
        RandomFlip { img: Image { h, w, c }, horizontal, vertical, buf: AugmentBuffers::default() }
    }

    /// Writes one image `src` flipped (or not) into `dst`, as Keras' transform in training for that
    /// draw (exposed for the parity tests); its own inverse.
    pub fn flip(&self, flip: bool, src: &[f32], dst: &mut [f32]) {
        let Image { h, w, c } = self.img;
        let (fh, fv) = (flip && self.horizontal, flip && self.vertical);
        for y in 0..h {
            let sy = if fv { h - 1 - y } else { y };
            for x in 0..w {
                let sx = if fh { w - 1 - x } else { x };
                dst[(y * w + x) * c..][..c].copy_from_slice(&src[(sy * w + sx) * c..][..c]);
            }
        }
    }
}

impl Layer for RandomFlip {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, len) = (xs[0], self.img.len());
        let mut b = std::mem::take(&mut self.buf);
        let out = sized(&mut b.out, x.len());
        b.active = ctx.training && (self.horizontal || self.vertical);
        if b.active {
            let params = sized(&mut b.params, x.len() / len);
            for ((p, src), dst) in params.iter_mut().zip(x.chunks_exact(len)).zip(out.chunks_exact_mut(len)) {
                *p = if ctx.rng.uniform() < 0.5 { 1.0 } else { 0.0 };
                self.flip(*p == 1.0, src, dst);
            }
        } else {
            out.copy_from_slice(x);
        }
        self.buf = b;
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let len = self.img.len();
        let mut b = std::mem::take(&mut self.buf);
        backward_with(&mut b, dy, opts, |dx, params, _| {
            for ((p, g), d) in params.iter().zip(dy.chunks_exact(len)).zip(dx.chunks_exact_mut(len)) {
                self.flip(*p == 1.0, g, d);
            }
        });
        self.buf = b;
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// Keras' `RandomContrast(factor, value_range=(0, 255))`: in training, each image's channels are
/// moved away from (or towards) their mean over the image by a factor drawn from
/// `uniform(1 - lower, 1 + upper)`, then clipped to `value_range`. Keras 3 turns a single
/// `factor = f` into `(lower, upper) = (0, f)`: the factor is in `[1, 1 + f]`.
#[derive(Clone, Debug)]
pub struct RandomContrast {
    img: Image,
    factor: (f32, f32),
    range: (f32, f32),
    buf: AugmentBuffers,
    mean: Vec<f32>,
}

impl RandomContrast {
    /// A contrast change of `[h, w, c]` images by a factor in `[1 - lower, 1 + upper]`, clipped to `range`.
    pub fn new(h: usize, w: usize, c: usize, factor: (f32, f32), range: (f32, f32)) -> Self {
        RandomContrast { img: Image { h, w, c }, factor, range, buf: AugmentBuffers::default(), mean: vec![0.0; c] }
    }

    /// One image with contrast `factor`, as Keras' transform in training (exposed for the parity
    /// tests); marks the clipped values.
    pub fn adjust(&mut self, src: &[f32], dst: &mut [f32], clipped: &mut [bool], factor: f32) {
        let c = self.img.c;
        self.mean.fill(0.0);
        for px in src.chunks_exact(c) {
            self.mean.iter_mut().zip(px).for_each(|(m, v)| *m += v);
        }
        let positions = (self.img.h * self.img.w) as f32;
        self.mean.iter_mut().for_each(|m| *m /= positions);
        for ((o, k), px) in dst.chunks_exact_mut(c).zip(clipped.chunks_exact_mut(c)).zip(src.chunks_exact(c)) {
            for (((o, k), v), m) in o.iter_mut().zip(k).zip(px).zip(&self.mean) {
                let y = (v - m) * factor + m;
                *k = y < self.range.0 || y > self.range.1;
                *o = y.clamp(self.range.0, self.range.1);
            }
        }
    }
}

impl Layer for RandomContrast {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, len) = (xs[0], self.img.len());
        let mut b = std::mem::take(&mut self.buf);
        let out = sized(&mut b.out, x.len());
        b.active = ctx.training;
        if b.active {
            b.clipped.resize(x.len(), false);
            let params = sized(&mut b.params, x.len() / len);
            let rows = x.chunks_exact(len).zip(out.chunks_exact_mut(len)).zip(b.clipped.chunks_exact_mut(len));
            for (p, ((src, dst), clipped)) in params.iter_mut().zip(rows) {
                let (lo, hi) = (1.0 - self.factor.0, 1.0 + self.factor.1);
                *p = lo + (hi - lo) * ctx.rng.uniform();
                self.adjust(src, dst, clipped, *p);
            }
        } else {
            out.copy_from_slice(x);
        }
        self.buf = b;
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (Image { h, w, c }, len) = (self.img, self.img.len());
        let mut b = std::mem::take(&mut self.buf);
        let mean = &mut self.mean;
        backward_with(&mut b, dy, opts, |dx, params, clipped| {
            // y = f·x + (1 - f)·mean(x) where not clipped: dx = f·g + (1 - f)·mean(g over the image).
            for (((f, g), d), k) in
                params.iter().zip(dy.chunks_exact(len)).zip(dx.chunks_exact_mut(len)).zip(clipped.chunks_exact(len))
            {
                mean.fill(0.0);
                for (px, kp) in g.chunks_exact(c).zip(k.chunks_exact(c)) {
                    mean.iter_mut().zip(px).zip(kp).for_each(|((m, v), k)| *m += if *k { 0.0 } else { *v });
                }
                mean.iter_mut().for_each(|m| *m *= (1.0 - f) / (h * w) as f32);
                for ((o, px), kp) in d.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(k.chunks_exact(c)) {
                    for (((o, v), k), m) in o.iter_mut().zip(px).zip(kp).zip(mean.iter()) {
                        *o = if *k { 0.0 } else { f * v } + m;
                    }
                }
            }
        });
        self.buf = b;
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// Keras' `RandomBrightness(factor, value_range=(0, 255))`: in training, each image gets
/// `uniform(lower, upper) × (range max - range min)` added to every value, then is clipped to
/// `value_range`. A single `factor = f` is `(-f, f)`.
#[derive(Clone, Debug)]
pub struct RandomBrightness {
    len: usize,
    factor: (f32, f32),
    range: (f32, f32),
    buf: AugmentBuffers,
}

impl RandomBrightness {
    /// A brightness change of `[h, w, c]` images by `(lower, upper)` of `range`'s width, clipped to `range`.
    pub fn new(h: usize, w: usize, c: usize, factor: (f32, f32), range: (f32, f32)) -> Self {
        RandomBrightness { len: h * w * c, factor, range, buf: AugmentBuffers::default() }
    }
}

impl Layer for RandomBrightness {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, len, (lo, hi)) = (xs[0], self.len, self.range);
        let b = &mut self.buf;
        let out = sized(&mut b.out, x.len());
        b.active = ctx.training;
        if !b.active {
            out.copy_from_slice(x);
            return;
        }
        b.clipped.resize(x.len(), false);
        let params = sized(&mut b.params, x.len() / len);
        let rows = x.chunks_exact(len).zip(out.chunks_exact_mut(len)).zip(b.clipped.chunks_exact_mut(len));
        for (p, ((src, dst), clipped)) in params.iter_mut().zip(rows) {
            *p = (self.factor.0 + (self.factor.1 - self.factor.0) * ctx.rng.uniform()) * (hi - lo);
            for ((o, k), v) in dst.iter_mut().zip(clipped).zip(src) {
                let y = v + *p;
                *k = y < lo || y > hi;
                *o = y.clamp(lo, hi);
            }
        }
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        backward_with(&mut self.buf, dy, opts, |dx, _, clipped| {
            dx.iter_mut().zip(dy).zip(clipped).for_each(|((d, g), k)| *d = if *k { 0.0 } else { *g });
        });
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

augment_layer!(RandomFlip, RandomContrast, RandomBrightness);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Stream;

    #[test]
    fn flips_are_their_own_inverse_and_inference_is_the_identity() {
        let x: Vec<f32> = (0..2 * 3 * 4 * 2).map(|v| v as f32).collect();
        let mut f = RandomFlip::new(3, 4, 2, true, true);
        let mut s = Stream::new(3);
        f.forward(&[&x], &mut Ctx::new(2, false, &mut s));
        assert_eq!(f.output(), &x[..]);
        f.forward(&[&x], &mut Ctx::new(2, true, &mut s));
        let once = f.output().to_vec();
        let mut back = vec![0.0; x.len()];
        for (i, p) in f.buf.params.clone().iter().enumerate() {
            f.flip(*p == 1.0, &once[i * 24..(i + 1) * 24], &mut back[i * 24..(i + 1) * 24]);
        }
        assert_eq!(back, x);
    }
}
