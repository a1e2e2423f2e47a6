//! The inference kernels: slices in, slices out, sizes from the model's static shapes, no
//! allocation. Weight matrices are read as stored (f32, bf16, or int8 with one scale per output
//! channel) and widened to f32 in the multiply, so reduced-precision weights cost no extra pass.

use super::cpu::simd_fn;
use super::math::{ActKind, sqrt};

/// A bfloat16 value: the upper half of an f32's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// The bfloat16 nearest to `x` (ties to even).
    pub fn from_f32(x: f32) -> Self {
        let bits = x.to_bits();
        if x.is_nan() {
            return Bf16((bits >> 16) as u16 | 0x40);
        }
        let round = 0x7fff + ((bits >> 16) & 1);
        Bf16((bits.wrapping_add(round) >> 16) as u16)
    }
}

/// A weight value the kernels widen to f32.
pub trait Elem: Copy {
    /// The value as f32 (for int8, before its channel's scale).
    fn widen(self) -> f32;
}

impl Elem for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Elem for i8 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self as f32
    }
}

impl Elem for Bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// A kernel (`[.., in, out]` row-major, Keras' layout) as embedded.
#[derive(Clone, Copy, Debug)]
pub enum Kernel<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// bfloat16 values.
    Bf16(&'a [Bf16]),
    /// int8 values and one f32 scale per output channel (the last axis): `w = q · scale`.
    Int8(&'a [i8], &'a [f32]),
}

/// `acc[j] += Σ_i x[i] · w[i · stride + j]` for `j < acc.len()`: rows of the kernel scaled and
/// summed, four at a time (each output element is loaded and stored once per four rows).
#[inline(always)]
fn axpy_rows<T: Elem>(x: &[f32], w: &[T], stride: usize, acc: &mut [f32]) {
    let n = acc.len();
    let mut i = 0;
    while i + 4 <= x.len() {
        let (a, b, c, d) = (x[i], x[i + 1], x[i + 2], x[i + 3]);
        let r0 = &w[i * stride..][..n];
        let r1 = &w[(i + 1) * stride..][..n];
        let r2 = &w[(i + 2) * stride..][..n];
        let r3 = &w[(i + 3) * stride..][..n];
        for j in 0..n {
            acc[j] += (a * r0[j].widen() + b * r1[j].widen()) + (c * r2[j].widen() + d * r3[j].widen());
        }
        i += 4;
    }
    while i < x.len() {
        let a = x[i];
        let r = &w[i * stride..][..n];
        for j in 0..n {
            acc[j] += a * r[j].widen();
        }
        i += 1;
    }
}

/// See [`Kernel::channels`].
#[inline(always)]
fn per_channel<T: Elem>(x: &[f32], w: &[T], m: usize, acc: &mut [f32]) {
    if m == 1 {
        for ((a, &v), k) in acc.iter_mut().zip(x).zip(w) {
            *a += v * k.widen();
        }
        return;
    }
    for ((a, k), &v) in acc.chunks_exact_mut(m).zip(w.chunks_exact(m)).zip(x) {
        for (a, k) in a.iter_mut().zip(k) {
            *a += v * k.widen();
        }
    }
}

impl Kernel<'_> {
    /// [`axpy_rows`] on the kernel from element `start`.
    #[inline(always)]
    fn rows(self, x: &[f32], start: usize, stride: usize, acc: &mut [f32]) {
        match self {
            Kernel::F32(w) => axpy_rows(x, &w[start..], stride, acc),
            Kernel::Bf16(w) => axpy_rows(x, &w[start..], stride, acc),
            Kernel::Int8(q, _) => axpy_rows(x, &q[start..], stride, acc),
        }
    }

    /// `acc[c · m + j] += x[c] · w[start + c · m + j]`: each input channel times its own `m`
    /// kernel values (a depthwise window position).
    #[inline(always)]
    fn channels(self, x: &[f32], start: usize, m: usize, acc: &mut [f32]) {
        match self {
            Kernel::F32(w) => per_channel(x, &w[start..][..acc.len()], m, acc),
            Kernel::Bf16(w) => per_channel(x, &w[start..][..acc.len()], m, acc),
            Kernel::Int8(q, _) => per_channel(x, &q[start..][..acc.len()], m, acc),
        }
    }

    /// Scales (int8), adds the bias and applies the activation to output channels
    /// `col..col + row.len()`.
    #[inline(always)]
    fn finish(self, row: &mut [f32], col: usize, bias: Option<&[f32]>, act: ActKind) {
        if let Kernel::Int8(_, scales) = self {
            for (v, s) in row.iter_mut().zip(&scales[col..]) {
                *v *= s;
            }
        }
        if let Some(b) = bias {
            for (v, b) in row.iter_mut().zip(&b[col..]) {
                *v += b;
            }
        }
        act.apply_row(row);
    }
}

/// Where a window goes over one sample: input and output sizes, window, strides, dilation and the
/// padding before the first row and column. All fixed when the model compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input height (1 for a 1-D layer).
    pub h: usize,
    /// Input width (the length of a 1-D layer's input).
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Rows of padding before the first (`same`).
    pub ph: usize,
    /// Columns of padding before the first (`same`, `causal`).
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Window {
    /// For output position `(oy, ox)`, calls `f(ky, kx, input pixel)` for every window
    /// position inside the input (padding reads nothing).
    #[inline(always)]
    fn each(&self, oy: usize, ox: usize, mut f: impl FnMut(usize, usize, usize)) {
        for ky in 0..self.kh {
            let iy = (oy * self.sh + ky * self.dh).wrapping_sub(self.ph);
            if iy >= self.h {
                continue;
            }
            for kx in 0..self.kw {
                let ix = (ox * self.sw + kx * self.dw).wrapping_sub(self.pw);
                if ix < self.w {
                    f(ky, kx, iy * self.w + ix);
                }
            }
        }
    }
}

simd_fn! {
    /// `Dense` on `x` (rows of `inp` values) into `y` (rows of `units`).
    pub fn dense(x: &[f32], k: Kernel<'_>, bias: Option<&[f32]>, act: ActKind, inp: usize, units: usize, y: &mut [f32]) {
        for (xr, yr) in x.chunks_exact(inp).zip(y.chunks_exact_mut(units)) {
            yr.fill(0.0);
            k.rows(xr, 0, units, yr);
            k.finish(yr, 0, bias, act);
        }
    }
}

simd_fn! {
    /// `Conv1D` / `Conv2D` (a 1-D window has height 1) with `groups` channel groups: each output
    /// pixel is the kernel rows of its window's input pixels, scaled and summed.
    pub fn conv(x: &[f32], k: Kernel<'_>, bias: Option<&[f32]>, act: ActKind, win: &Window, filters: usize, groups: usize, y: &mut [f32]) {
        let (cg, fg) = (win.c / groups, filters / groups);
        for oy in 0..win.oh {
            for ox in 0..win.ow {
                let yr = &mut y[(oy * win.ow + ox) * filters..][..filters];
                yr.fill(0.0);
                win.each(oy, ox, |ky, kx, pixel| {
                    let xin = &x[pixel * win.c..][..win.c];
                    let row = (ky * win.kw + kx) * cg;
                    for g in 0..groups {
                        k.rows(&xin[g * cg..][..cg], row * filters + g * fg, filters, &mut yr[g * fg..][..fg]);
                    }
                });
                k.finish(yr, 0, bias, act);
            }
        }
    }
}

simd_fn! {
    /// `DepthwiseConv2D`: output channel `c · multiplier + m` is input channel `c`'s window
    /// under kernel `[.., c, m]`.
    pub fn depthwise(x: &[f32], k: Kernel<'_>, bias: Option<&[f32]>, act: ActKind, win: &Window, multiplier: usize, y: &mut [f32]) {
        let oc = win.c * multiplier;
        for oy in 0..win.oh {
            for ox in 0..win.ow {
                let yr = &mut y[(oy * win.ow + ox) * oc..][..oc];
                yr.fill(0.0);
                win.each(oy, ox, |ky, kx, pixel| {
                    let xin = &x[pixel * win.c..][..win.c];
                    let start = (ky * win.kw + kx) * oc;
                    k.channels(xin, start, multiplier, yr);
                });
                k.finish(yr, 0, bias, act);
            }
        }
    }
}

/// `MaxPooling` / `AveragePooling` 1-D or 2-D; windows count only positions inside the input.
pub fn pool(x: &[f32], win: &Window, max: bool, y: &mut [f32]) {
    let c = win.c;
    for oy in 0..win.oh {
        for ox in 0..win.ow {
            let yr = &mut y[(oy * win.ow + ox) * c..][..c];
            yr.fill(if max { f32::NEG_INFINITY } else { 0.0 });
            let mut n = 0usize;
            win.each(oy, ox, |_, _, pixel| {
                let xin = &x[pixel * c..][..c];
                n += 1;
                for (o, &v) in yr.iter_mut().zip(xin) {
                    *o = if max { o.max(v) } else { *o + v };
                }
            });
            if !max && n > 0 {
                let inv = 1.0 / n as f32;
                yr.iter_mut().for_each(|o| *o *= inv);
            }
        }
    }
}

/// `GlobalMaxPooling` / `GlobalAveragePooling`: `positions` rows of `c` channels to one row.
pub fn global_pool(x: &[f32], c: usize, max: bool, y: &mut [f32]) {
    let y = &mut y[..c];
    y.fill(if max { f32::NEG_INFINITY } else { 0.0 });
    let rows = x.len() / c;
    for xr in x.chunks_exact(c) {
        for (o, &v) in y.iter_mut().zip(xr) {
            *o = if max { o.max(v) } else { *o + v };
        }
    }
    if !max {
        let inv = 1.0 / rows as f32;
        y.iter_mut().for_each(|o| *o *= inv);
    }
}

/// `BatchNormalization` in inference: `(x - mean) / √(var + ε) · γ + β` over the last axis of
/// `mean.len()` channels.
pub fn batch_norm(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
    y: &mut [f32],
) {
    let c = mean.len();
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        for i in 0..c {
            let inv = gamma.map_or(1.0, |g| g[i]) / sqrt(var[i] + epsilon);
            yr[i] = (xr[i] - mean[i]) * inv + beta.map_or(0.0, |b| b[i]);
        }
    }
}

/// An activation over rows of `cols` values (softmax normalises each row).
pub fn activation(x: &[f32], act: ActKind, cols: usize, y: &mut [f32]) {
    y.copy_from_slice(x);
    for row in y.chunks_exact_mut(cols) {
        act.apply_row(row);
    }
}

/// `LeakyReLU(negative_slope)`.
pub fn leaky_relu(x: &[f32], slope: f32, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = if v > 0.0 { v } else { slope * v };
    }
}

/// `Rescaling(scale, offset)`: `x · scale + offset`.
pub fn rescale(x: &[f32], scale: f32, offset: f32, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v * scale + offset;
    }
}

/// An element-wise merge of inputs of one shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// `Add`.
    Add,
    /// `Subtract` (first minus second).
    Subtract,
    /// `Multiply`.
    Multiply,
    /// `Average`.
    Average,
    /// `Maximum`.
    Maximum,
    /// `Minimum`.
    Minimum,
}

/// `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`.
pub fn merge(inputs: &[&[f32]], op: Merge, y: &mut [f32]) {
    let Some((first, rest)) = inputs.split_first() else { return };
    y.copy_from_slice(&first[..y.len()]);
    for x in rest {
        for (o, &v) in y.iter_mut().zip(x.iter()) {
            *o = match op {
                Merge::Add | Merge::Average => *o + v,
                Merge::Subtract => *o - v,
                Merge::Multiply => *o * v,
                Merge::Maximum => o.max(v),
                Merge::Minimum => o.min(v),
            };
        }
    }
    if op == Merge::Average {
        let inv = 1.0 / inputs.len() as f32;
        y.iter_mut().for_each(|o| *o *= inv);
    }
}

/// `Concatenate`: for each of `outer` blocks, input `i`'s `widths[i]` values one after another.
pub fn concatenate(inputs: &[&[f32]], widths: &[usize], outer: usize, y: &mut [f32]) {
    let total: usize = widths.iter().sum();
    for b in 0..outer {
        let mut at = b * total;
        for (x, &w) in inputs.iter().zip(widths) {
            y[at..at + w].copy_from_slice(&x[b * w..][..w]);
            at += w;
        }
    }
}
