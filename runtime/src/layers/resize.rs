//! Keras' `Resizing(height, width)` (bilinear, with `crop_to_aspect_ratio`) and
//! `CenterCrop(height, width)` on `channels_last` samples, active in training and inference.
//! Both are one linear map: every output value mixes at most four input values of its channel
//! with TensorFlow's bilinear weights (`half_pixel_centers`, no antialiasing, as Keras 3's
//! `ops.image.resize` on TensorFlow), so backward scatters the gradient with the same weights.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// One output coordinate along an axis: the two input coordinates it reads and the weight of
/// the second.
#[derive(Clone, Copy, Debug)]
struct Tap {
    lo: usize,
    hi: usize,
    lerp: f32,
}

/// TensorFlow's `compute_interpolation_weights` with half-pixel centres: output coordinates
/// `0..out` read from input coordinates `start..start + len`.
fn taps(out: usize, start: usize, len: usize) -> Vec<Tap> {
    let scale = len as f32 / out as f32;
    (0..out)
        .map(|i| {
            let at = (i as f32 + 0.5) * scale - 0.5;
            let floor = at.floor();
            let lo = (floor.max(0.0) as usize).min(len - 1);
            let hi = (at.ceil().max(0.0) as usize).min(len - 1);
            Tap { lo: start + lo, hi: start + hi, lerp: at - floor }
        })
        .collect()
}

/// Keras' crop to the target's aspect ratio (`crop_to_aspect_ratio=True`, `smart_resize`): the
/// centred box `(top, left, height, width)` of an `h × w` image with the aspect of `oh × ow`.
pub fn aspect_crop(h: usize, w: usize, oh: usize, ow: usize) -> (usize, usize, usize, usize) {
    let ch = ((w * oh) as f32 / ow as f32) as usize;
    let cw = ((h * ow) as f32 / oh as f32) as usize;
    let (ch, cw) = (ch.min(h).max(1), cw.min(w).max(1));
    (((h - ch) as f32 / 2.0) as usize, ((w - cw) as f32 / 2.0) as usize, ch, cw)
}

/// What one application of a [`Resize`] writes.
#[derive(Clone, Debug, Default)]
pub struct ResizeBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for ResizeBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

/// `Resizing` and `CenterCrop`: a bilinear map from `[h, w, c]` to `[oh, ow, c]`.
#[derive(Clone, Debug)]
pub struct Resize {
    w: usize,
    c: usize,
    in_len: usize,
    rows: Vec<Tap>,
    cols: Vec<Tap>,
    buf: ResizeBuffers,
}

impl Resize {
    /// `Resizing(oh, ow, interpolation="bilinear", crop_to_aspect_ratio)` of `[h, w, c]` images.
    pub fn bilinear(h: usize, w: usize, c: usize, oh: usize, ow: usize, crop_to_aspect_ratio: bool) -> Self {
        let (top, left, ch, cw) = if crop_to_aspect_ratio { aspect_crop(h, w, oh, ow) } else { (0, 0, h, w) };
        Resize { w, c, in_len: h * w * c, rows: taps(oh, top, ch), cols: taps(ow, left, cw), buf: ResizeBuffers::default() }
    }

    /// `CenterCrop(oh, ow)` of `[h, w, c]` images: the centred window where it fits (Keras'
    /// `int((h - oh) / 2)` offsets), else Keras' `smart_resize` (crop to the aspect ratio, then
    /// resize bilinearly).
    pub fn center_crop(h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Self {
        if oh > h || ow > w {
            return Self::bilinear(h, w, c, oh, ow, true);
        }
        let window = |out: usize, start: usize| (0..out).map(|i| Tap { lo: start + i, hi: start + i, lerp: 0.0 }).collect();
        Resize { w, c, in_len: h * w * c, rows: window(oh, (h - oh) / 2), cols: window(ow, (w - ow) / 2), buf: ResizeBuffers::default() }
    }

    /// Points the window of a [`center_crop`](Self::center_crop) that fits at rows from `top`
    /// and columns from `left` (no allocation).
    fn move_window(&mut self, top: usize, left: usize) {
        for (i, t) in self.rows.iter_mut().enumerate() {
            (t.lo, t.hi) = (top + i, top + i);
        }
        for (i, t) in self.cols.iter_mut().enumerate() {
            (t.lo, t.hi) = (left + i, left + i);
        }
    }

    fn out_len(&self) -> usize {
        self.rows.len() * self.cols.len() * self.c
    }

    /// One image resized, in TensorFlow's order of operations.
    fn image(&self, src: &[f32], dst: &mut [f32]) {
        let (w, c) = (self.w, self.c);
        let mut o = dst.chunks_exact_mut(c);
        for r in &self.rows {
            for q in &self.cols {
                let (tl, tr) = (&src[(r.lo * w + q.lo) * c..][..c], &src[(r.lo * w + q.hi) * c..][..c]);
                let (bl, br) = (&src[(r.hi * w + q.lo) * c..][..c], &src[(r.hi * w + q.hi) * c..][..c]);
                let Some(o) = o.next() else { return };
                for ch in 0..c {
                    let top = tl[ch] + (tr[ch] - tl[ch]) * q.lerp;
                    let bottom = bl[ch] + (br[ch] - bl[ch]) * q.lerp;
                    o[ch] = top + (bottom - top) * r.lerp;
                }
            }
        }
    }
}

/// Resizes one `[h, w, c]` image to `[oh, ow, c]` bilinearly as Keras does (TensorFlow's
/// `resize_bilinear`, half-pixel centres, no antialiasing): what `Resizing` and
/// `image_dataset_from_directory` compute.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Vec<f32> {
    let r = Resize::bilinear(h, w, c, oh, ow, false);
    let mut out = vec![0.0; oh * ow * c];
    r.image(src, &mut out);
    out
}

impl Layer for Resize {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, il, ol) = (xs[0], self.in_len, self.out_len());
        let mut out = std::mem::take(&mut self.buf.out);
        let o = sized(&mut out, x.len() / il * ol);
        for (src, dst) in x.chunks_exact(il).zip(o.chunks_exact_mut(ol)) {
            self.image(src, dst);
        }
        self.buf.out = out;
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (w, c, il, ol) = (self.w, self.c, self.in_len, self.out_len());
        let dx = sized(&mut self.buf.dx, xs[0].len());
        dx.fill(0.0);
        for (g, d) in dy.chunks_exact(ol).zip(dx.chunks_exact_mut(il)) {
            let mut gs = g.chunks_exact(c);
            for r in &self.rows {
                for q in &self.cols {
                    let Some(g) = gs.next() else { return };
                    let corners = [
                        (r.lo, q.lo, (1.0 - r.lerp) * (1.0 - q.lerp)),
                        (r.lo, q.hi, (1.0 - r.lerp) * q.lerp),
                        (r.hi, q.lo, r.lerp * (1.0 - q.lerp)),
                        (r.hi, q.hi, r.lerp * q.lerp),
                    ];
                    for (y, x, wt) in corners {
                        if wt != 0.0 {
                            d[(y * w + x) * c..][..c].iter_mut().zip(g).for_each(|(d, g)| *d += wt * g);
                        }
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
}

impl Shareable for Resize {
    type Buffers = ResizeBuffers;
    fn buffers_mut(&mut self) -> &mut ResizeBuffers {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_identity_and_a_crop_is_centred() {
        let x: Vec<f32> = (0..4 * 5 * 2).map(|v| v as f32).collect();
        assert_eq!(resize_bilinear(&x, 4, 5, 2, 4, 5), x);
        let mut crop = Resize::center_crop(4, 5, 2, 2, 3);
        let mut s = crate::random::Stream::new(1);
        crop.forward(&[&x], &mut Ctx::new(1, false, &mut s));
        // Rows 1..3, columns 1..4.
        assert_eq!(crop.output(), &[12., 13., 14., 15., 16., 17., 22., 23., 24., 25., 26., 27.]);
        assert_eq!(aspect_crop(100, 50, 10, 10), (25, 0, 50, 50));
    }
}

/// Keras' `RandomCrop(height, width)` of `[h, w, c]` images: in training, when the images are
/// larger than the target both ways, a window at an offset drawn from the model's stream (one
/// offset per batch, as Keras 3 draws it); otherwise, and at inference, the centred crop to the
/// target's aspect ratio resized bilinearly (Keras' `smart_resize`). Keras 3.15 returns the
/// images unchanged at inference, whose shape is then not the layer's output shape; kiln keeps
/// one static shape, as Keras 2 did.
#[derive(Clone, Debug)]
pub struct RandomCrop {
    hw: (usize, usize),
    out: (usize, usize),
    resize: Resize,
    window: Resize,
    /// The last forward pass cropped a window (else it resized).
    windowed: bool,
}

impl RandomCrop {
    /// A random crop of `[h, w, c]` images to `[oh, ow, c]`.
    pub fn new(h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Self {
        let window = Resize::center_crop(h, w, c, oh.min(h), ow.min(w));
        RandomCrop { hw: (h, w), out: (oh, ow), resize: Resize::bilinear(h, w, c, oh, ow, true), window, windowed: false }
    }

    /// One image's window at rows from `top` and columns from `left`, as Keras crops it in
    /// training (for the parity tests).
    pub fn crop(&mut self, src: &[f32], dst: &mut [f32], top: usize, left: usize) {
        self.window.move_window(top, left);
        self.window.image(src, dst);
    }

    fn used(&self) -> &Resize {
        if self.windowed { &self.window } else { &self.resize }
    }
}

impl Layer for RandomCrop {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let ((h, w), (oh, ow)) = (self.hw, self.out);
        self.windowed = ctx.training && h > oh && w > ow;
        if self.windowed {
            // Keras: `int(uniform(0, h - oh + 1))`, rows then columns.
            let top = ((ctx.rng.uniform() * (h - oh + 1) as f32) as usize).min(h - oh);
            let left = ((ctx.rng.uniform() * (w - ow + 1) as f32) as usize).min(w - ow);
            self.window.move_window(top, left);
            self.window.forward(xs, ctx);
        } else {
            self.resize.forward(xs, ctx);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if self.windowed {
            self.window.backward(xs, dy, ctx, opts);
        } else {
            self.resize.backward(xs, dy, ctx, opts);
        }
    }

    fn output(&self) -> &[f32] {
        self.used().output()
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        self.used().input_grad(i)
    }
}
