//! Keras 3's geometric augmentation layers: `RandomTranslation`, `RandomRotation` and
//! `RandomZoom`. Each draws one affine map per image in training and reads the image through it
//! as TensorFlow's `ImageProjectiveTransform` does (Keras' `affine_transform`): output pixel
//! `(y, x)` reads the input at `(m3·x + m4·y + m5, m0·x + m1·y + m2)`, bilinearly, positions
//! outside the image as `fill_mode` says. Backward is the transpose of that gather. At inference
//! they are the identity.

use super::augment::{AugmentBuffers, Image, augment_layer, backward_with};
use super::{BackwardOpts, Ctx, Layer, Shareable, sized};

/// Where the geometric layers read positions outside the image (Keras' `fill_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillMode {
    /// `fill_value` (`"constant"`).
    Constant,
    /// The image mirrored about its edge, `dcba|abcd|dcba` (`"reflect"`, Keras' default).
    Reflect,
    /// The edge pixel (`"nearest"`).
    Nearest,
}

/// TensorFlow's `MapCoordinate`: the coordinate read for `at` along an axis of `len` positions.
fn map_coordinate(at: f32, len: usize, mode: FillMode) -> f32 {
    let last = (len - 1) as f32;
    let mapped = match mode {
        FillMode::Constant => return at,
        FillMode::Nearest => at,
        FillMode::Reflect if len <= 1 => 0.0,
        FillMode::Reflect => {
            let (n, sz2) = (len as f32, 2.0 * len as f32);
            if at < 0.0 {
                let at = sz2 * ((-at / sz2) as i64) as f32 + at;
                if at < -n { at + sz2 } else { -at - 1.0 }
            } else if at > last {
                let at = at - sz2 * ((at / sz2) as i64) as f32;
                if at >= n { sz2 - at - 1.0 } else { at }
            } else {
                at
            }
        }
    };
    mapped.clamp(0.0, last)
}

/// An affine map from output to input positions, TensorFlow's first six transform entries.
type Affine = [f32; 6];

/// The map of a shift down by `ty` rows and right by `tx` columns.
fn shift(ty: f32, tx: f32) -> Affine {
    [1.0, 0.0, -tx, 0.0, 1.0, -ty]
}

/// The four source positions (or `None` outside the image) of output `(y, x)` of an `h × w`
/// image read through `m`, and the fractions `(fy, fx)` between them, as TensorFlow's bilinear
/// `ImageProjectiveTransform` reads them.
#[inline]
fn bilinear_taps(y: usize, x: usize, (h, w): (usize, usize), m: &Affine, mode: FillMode) -> ([Option<usize>; 4], f32, f32) {
    let (xf, yf) = (x as f32, y as f32);
    let (sx, sy) = (m[0] * xf + m[1] * yf + m[2], m[3] * xf + m[4] * yf + m[5]);
    let (sy, sx) = (map_coordinate(sy, h, mode), map_coordinate(sx, w, mode));
    let (y0, x0) = (sy.floor(), sx.floor());
    let at = |yy: f32, xx: f32| {
        (yy >= 0.0 && xx >= 0.0 && (yy as usize) < h && (xx as usize) < w).then(|| yy as usize * w + xx as usize)
    };
    ([at(y0, x0), at(y0, x0 + 1.0), at(y0 + 1.0, x0), at(y0 + 1.0, x0 + 1.0)], sy - y0, sx - x0)
}

/// One image read through `m`.
fn warp(img: Image, src: &[f32], dst: &mut [f32], m: &Affine, mode: FillMode, fill: f32) {
    let Image { h, w, c } = img;
    for y in 0..h {
        for x in 0..w {
            let (taps, fy, fx) = bilinear_taps(y, x, (h, w), m, mode);
            let o = &mut dst[(y * w + x) * c..][..c];
            for (ch, o) in o.iter_mut().enumerate() {
                let v = |k: usize| taps[k].map_or(fill, |p| src[p * c + ch]);
                // TensorFlow's order: along x on both rows, then along y.
                let top = (1.0 - fx) * v(0) + fx * v(1);
                let bottom = (1.0 - fx) * v(2) + fx * v(3);
                *o = (1.0 - fy) * top + fy * bottom;
            }
        }
    }
}

/// The gradient of [`warp`] with respect to its input: each output's gradient spread back over
/// the four positions it read (`d` is zeroed first).
fn warp_back(img: Image, g: &[f32], d: &mut [f32], m: &Affine, mode: FillMode) {
    let Image { h, w, c } = img;
    d.fill(0.0);
    for y in 0..h {
        for x in 0..w {
            let gy = &g[(y * w + x) * c..][..c];
            let (taps, fy, fx) = bilinear_taps(y, x, (h, w), m, mode);
            let weights = [(1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx, fy * (1.0 - fx), fy * fx];
            for (src, wt) in taps.into_iter().zip(weights) {
                if let Some(s) = src.filter(|_| wt != 0.0) {
                    d[s * c..][..c].iter_mut().zip(gy).for_each(|(d, g)| *d += wt * g);
                }
            }
        }
    }
}

/// The image shape and how a geometric layer reads outside it.
#[derive(Clone, Copy, Debug)]
struct Frame {
    img: Image,
    mode: FillMode,
    fill: f32,
}

/// A uniform draw in `[lo, hi)`.
fn between((lo, hi): (f32, f32), ctx: &mut Ctx<'_>) -> f32 {
    lo + (hi - lo) * ctx.rng.uniform()
}

/// What a geometric layer draws for an image.
trait Draw {
    fn frame(&self) -> Frame;
    /// The map for one image, from the model's stream.
    fn draw(&self, ctx: &mut Ctx<'_>) -> Affine;
}

fn forward<L: Draw>(layer: &L, b: &mut AugmentBuffers, x: &[f32], ctx: &mut Ctx<'_>) {
    let Frame { img, mode, fill } = layer.frame();
    let out = sized(&mut b.out, x.len());
    b.active = ctx.training;
    if !b.active {
        out.copy_from_slice(x);
        return;
    }
    let params = sized(&mut b.params, 6 * x.len() / img.len());
    for ((p, src), dst) in params.chunks_exact_mut(6).zip(x.chunks_exact(img.len())).zip(out.chunks_exact_mut(img.len())) {
        let m = layer.draw(ctx);
        p.copy_from_slice(&m);
        warp(img, src, dst, &m, mode, fill);
    }
}

fn backward<L: Draw>(layer: &L, b: &mut AugmentBuffers, dy: &[f32], opts: BackwardOpts) {
    let Frame { img, mode, .. } = layer.frame();
    backward_with(b, dy, opts, |dx, params, _| {
        for ((p, g), d) in params.chunks_exact(6).zip(dy.chunks_exact(img.len())).zip(dx.chunks_exact_mut(img.len())) {
            let m: Affine = [p[0], p[1], p[2], p[3], p[4], p[5]];
            warp_back(img, g, d, &m, mode);
        }
    });
}

macro_rules! warp_layer {
    ($($t:ty),*) => {$(
        impl Layer for $t {
            fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
                let mut b = std::mem::take(&mut self.buf);
                forward(self, &mut b, xs[0], ctx);
                self.buf = b;
            }

            fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
                let mut b = std::mem::take(&mut self.buf);
                backward(self, &mut b, dy, opts);
                self.buf = b;
            }

            fn output(&self) -> &[f32] {
                &self.buf.out
            }

            fn input_grad(&self, _i: usize) -> &[f32] {
                &self.buf.dx
            }
        }
    )*};
}

/// Keras' `RandomTranslation(height_factor, width_factor, fill_mode, fill_value)`: in training,
/// each image is shifted by `uniform(lower, upper) × height` rows and `× width` columns
/// (fractional: read bilinearly, as Keras' `affine_transform` on TensorFlow), positions outside the
/// image read as `fill_mode` says (`reflect`, `nearest` or `constant`; not `wrap`).
#[derive(Clone, Debug)]
pub struct RandomTranslation {
    frame: Frame,
    height: (f32, f32),
    width: (f32, f32),
    buf: AugmentBuffers,
}

impl RandomTranslation {
    /// A translation of `[h, w, c]` images by up to the given fractions (`(lower, upper)` of the
    /// height and of the width), reading outside the image as `mode` says (`fill` for `Constant`).
    pub fn new(h: usize, w: usize, c: usize, height: (f32, f32), width: (f32, f32), mode: FillMode, fill: f32) -> Self {
        let frame = Frame { img: Image { h, w, c }, mode, fill };
        RandomTranslation { frame, height, width, buf: AugmentBuffers::default() }
    }

    /// One image shifted down by `ty` rows and right by `tx` columns, as Keras' translation in
    /// training (exposed for the parity tests).
    pub fn translate(&self, src: &[f32], dst: &mut [f32], ty: f32, tx: f32) {
        let Frame { img, mode, fill } = self.frame;
        warp(img, src, dst, &shift(ty, tx), mode, fill);
    }
}

impl Draw for RandomTranslation {
    fn frame(&self) -> Frame {
        self.frame
    }
    fn draw(&self, ctx: &mut Ctx<'_>) -> Affine {
        let ty = between(self.height, ctx) * self.frame.img.h as f32;
        let tx = between(self.width, ctx) * self.frame.img.w as f32;
        shift(ty, tx)
    }
}

/// Keras' `RandomRotation(factor, fill_mode, fill_value)`: in training, each image is rotated
/// about its centre by an angle drawn from `uniform(lower, upper) × 360°` (`factor` is a fraction
/// of a full turn; one number `f` is `(-f, f)`; positive angles turn counter-clockwise), read
/// bilinearly, positions outside the image as `fill_mode` says.
#[derive(Clone, Debug)]
pub struct RandomRotation {
    frame: Frame,
    factor: (f32, f32),
    buf: AugmentBuffers,
}

impl RandomRotation {
    /// A rotation of `[h, w, c]` images by up to the given fractions of a turn.
    pub fn new(h: usize, w: usize, c: usize, factor: (f32, f32), mode: FillMode, fill: f32) -> Self {
        RandomRotation { frame: Frame { img: Image { h, w, c }, mode, fill }, factor, buf: AugmentBuffers::default() }
    }

    /// The map of a rotation by `degrees`, Keras' `_compute_affine_matrix` about the centre.
    fn map(&self, degrees: f32) -> Affine {
        let a = degrees * (std::f32::consts::PI / 180.0);
        let (sin, cos) = (a.sin(), a.cos());
        let img = self.frame.img;
        let (cx, cy) = (0.5 * (img.w as f32 - 1.0), 0.5 * (img.h as f32 - 1.0));
        [cos, -sin, cx - cx * cos - cy * -sin, sin, cos, cy - cx * sin - cy * cos]
    }

    /// One image rotated by `degrees`, as Keras' rotation in training (for the parity tests).
    pub fn rotate(&self, src: &[f32], dst: &mut [f32], degrees: f32) {
        let Frame { img, mode, fill } = self.frame;
        warp(img, src, dst, &self.map(degrees), mode, fill);
    }
}

impl Draw for RandomRotation {
    fn frame(&self) -> Frame {
        self.frame
    }
    fn draw(&self, ctx: &mut Ctx<'_>) -> Affine {
        self.map(between((self.factor.0 * 360.0, self.factor.1 * 360.0), ctx))
    }
}

/// Keras' `RandomZoom(height_factor, width_factor, fill_mode, fill_value)`: in training, each
/// image is scaled about its centre by `1 + uniform(lower, upper)` vertically and, with a
/// `width_factor`, by its own draw horizontally (else the same): a positive factor zooms out, a
/// negative one in. One number `f` is `(-f, f)`.
#[derive(Clone, Debug)]
pub struct RandomZoom {
    frame: Frame,
    height: (f32, f32),
    width: Option<(f32, f32)>,
    buf: AugmentBuffers,
}

impl RandomZoom {
    /// A zoom of `[h, w, c]` images by up to the given fractions.
    pub fn new(h: usize, w: usize, c: usize, height: (f32, f32), width: Option<(f32, f32)>, mode: FillMode, fill: f32) -> Self {
        RandomZoom { frame: Frame { img: Image { h, w, c }, mode, fill }, height, width, buf: AugmentBuffers::default() }
    }

    /// The map of a zoom by `zy` (rows) and `zx` (columns), Keras' `_get_zoom_matrix`.
    fn map(&self, zy: f32, zx: f32) -> Affine {
        let img = self.frame.img;
        let (x_offset, y_offset) = ((img.w as f32 - 1.0) / 2.0 * (1.0 - zx), (img.h as f32 - 1.0) / 2.0 * (1.0 - zy));
        [zx, 0.0, x_offset, 0.0, zy, y_offset]
    }

    /// One image zoomed by `zy` and `zx` (1 + the draws), as Keras' zoom in training (for the
    /// parity tests).
    pub fn zoom(&self, src: &[f32], dst: &mut [f32], zy: f32, zx: f32) {
        let Frame { img, mode, fill } = self.frame;
        warp(img, src, dst, &self.map(zy, zx), mode, fill);
    }
}

impl Draw for RandomZoom {
    fn frame(&self) -> Frame {
        self.frame
    }
    fn draw(&self, ctx: &mut Ctx<'_>) -> Affine {
        let zy = 1.0 + between(self.height, ctx);
        let zx = self.width.map_or(zy, |w| 1.0 + between(w, ctx));
        self.map(zy, zx)
    }
}

augment_layer!(RandomTranslation, RandomRotation, RandomZoom);
warp_layer!(RandomTranslation, RandomRotation, RandomZoom);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_pixel_translations_shift_and_fill() {
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let t = RandomTranslation::new(3, 3, 1, (0.0, 0.0), (0.0, 0.0), FillMode::Constant, 0.0);
        let mut out = vec![0.0; 9];
        t.translate(&x, &mut out, 1.0, -1.0);
        assert_eq!(out, vec![0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]);
    }


    #[test]
    fn a_quarter_turn_and_a_zoom_of_one_move_whole_pixels() {
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let r = RandomRotation::new(3, 3, 1, (0.0, 0.0), FillMode::Constant, 0.0);
        let mut out = vec![0.0; 9];
        r.rotate(&x, &mut out, 90.0);
        let rounded: Vec<f32> = out.iter().map(|v| v.round()).collect();
        assert_eq!(rounded, vec![3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]);
        let z = RandomZoom::new(3, 3, 1, (0.0, 0.0), None, FillMode::Constant, 0.0);
        z.zoom(&x, &mut out, 1.0, 1.0);
        assert_eq!(out, x);
    }
}
