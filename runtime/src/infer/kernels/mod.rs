//! The inference kernels: slices in, slices out, sizes from the model's static shapes, no
//! allocation. Weight matrices are read as stored (f32, bf16, f16, or int8 with one scale per output
//! channel) and widened to f32 in the multiply, so reduced-precision weights cost no extra pass.

use super::cpu::simd_fn;
use super::math::{ActKind, sqrt};

mod weights;

pub use weights::{Bf16, Elem, F16, Kernel};

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
            k.rows(xr, 0, units, 0, yr);
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
                    let row = (ky * win.kw + kx) * k.block(cg);
                    for g in 0..groups {
                        k.rows(&xin[g * cg..][..cg], row, filters, g * fg, &mut yr[g * fg..][..fg]);
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

/// `GlobalAveragePooling1D` with Keras' mask: the mean of the steps whose `mask` is 1 (a sample
/// with none is divided by 1).
pub fn global_average_masked(x: &[f32], c: usize, mask: &[f32], y: &mut [f32]) {
    let y = &mut y[..c];
    y.fill(0.0);
    for (xr, &m) in x.chunks_exact(c).zip(mask) {
        if m != 0.0 {
            y.iter_mut().zip(xr).for_each(|(o, v)| *o += v);
        }
    }
    let inv = 1.0 / mask.iter().sum::<f32>().max(1.0);
    y.iter_mut().for_each(|o| *o *= inv);
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

/// Keras' `Normalization`: `(x - mean) / max(sqrt(var), 1e-7)` per feature of the last axis.
pub fn normalize(x: &[f32], mean: &[f32], var: &[f32], y: &mut [f32]) {
    let c = mean.len();
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        for i in 0..c {
            let sd = sqrt(var[i]);
            yr[i] = (xr[i] - mean[i]) / if sd > 1e-7 { sd } else { 1e-7 };
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
    /// `Divide` (first over second).
    Divide,
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
                Merge::Divide => *o / v,
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

/// `LayerNormalization` over the last axis (`c` values): `(x - mean) / √(var + ε) · γ + β`.
pub fn layer_norm(x: &[f32], gamma: Option<&[f32]>, beta: Option<&[f32]>, epsilon: f32, c: usize, y: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let mean = xr.iter().sum::<f32>() / c as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
        let inv = 1.0 / sqrt(var + epsilon);
        for i in 0..c {
            yr[i] = (xr[i] - mean) * inv * gamma.map_or(1.0, |g| g[i]) + beta.map_or(0.0, |b| b[i]);
        }
    }
}

/// Where `resample` takes each output pixel from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// `ZeroPadding2D`: rows and columns of zeros before (and after) the input.
    Pad {
        /// Rows before.
        top: usize,
        /// Columns before.
        left: usize,
    },
    /// `Cropping2D`: rows and columns dropped before (and after).
    Crop {
        /// Rows before.
        top: usize,
        /// Columns before.
        left: usize,
    },
    /// `UpSampling2D` (nearest): each pixel repeated `sy` × `sx` times.
    Up {
        /// Vertical factor.
        sy: usize,
        /// Horizontal factor.
        sx: usize,
    },
}

/// `ZeroPadding2D`, `Cropping2D`, `UpSampling2D` from `[h, w, c]` to `[oh, ow, c]`.
pub fn resample(x: &[f32], (h, w, c): (usize, usize, usize), (oh, ow): (usize, usize), op: Resize, y: &mut [f32]) {
    for oy in 0..oh {
        for ox in 0..ow {
            let (iy, ix) = match op {
                Resize::Pad { top, left } => (oy.wrapping_sub(top), ox.wrapping_sub(left)),
                Resize::Crop { top, left } => (oy + top, ox + left),
                Resize::Up { sy, sx } => (oy / sy, ox / sx),
            };
            let out = &mut y[(oy * ow + ox) * c..][..c];
            match iy < h && ix < w {
                true => out.copy_from_slice(&x[(iy * w + ix) * c..][..c]),
                false => out.fill(0.0),
            }
        }
    }
}

/// A sample of `shape` (rank 1 to 3) padded to rank 3 with leading 1s.
const fn padded(shape: &[usize]) -> ([usize; 3], usize) {
    let n = if shape.len() < 3 { shape.len() } else { 3 };
    let (pad, mut d, mut k) = (3 - n, [1usize; 3], 0);
    while k < n {
        d[3 - n + k] = shape[k];
        k += 1;
    }
    (d, pad)
}

/// `Permute`'s plan for a sample of `shape` and `order` (0-based: output axis `k` is input axis
/// `order[k]`): the output's shape and the input's stride along each output axis, rank 3.
pub const fn permute_plan(shape: &[usize], order: &[usize]) -> ([usize; 3], [usize; 3]) {
    let (d, pad) = padded(shape);
    let (mut p, mut k) = ([0usize, 1, 2], 0);
    while k + pad < 3 {
        p[pad + k] = pad + order[k];
        k += 1;
    }
    let strides = [d[1] * d[2], d[2], 1];
    ([d[p[0]], d[p[1]], d[p[2]]], [strides[p[0]], strides[p[1]], strides[p[2]]])
}

/// `PReLU`'s plan for a sample of `shape` sharing its slopes along `shared` (0-based axes): the
/// sample's shape and the strides its `alpha` is read with (0 along a shared axis), rank 3.
pub const fn prelu_plan(shape: &[usize], shared: &[usize]) -> ([usize; 3], [usize; 3]) {
    let (dims, pad) = padded(shape);
    let mut a = dims;
    let mut i = 0;
    while i < shared.len() {
        if shared[i] < shape.len() && pad + shared[i] < 3 {
            a[pad + shared[i]] = 1;
        }
        i += 1;
    }
    let full = [a[1] * a[2], a[2], 1];
    let mut strides = [0usize; 3];
    let mut k = 0;
    while k < 3 {
        strides[k] = if a[k] == 1 { 0 } else { full[k] };
        k += 1;
    }
    (dims, strides)
}

/// `Permute`: each sample's axes reordered. `dims` is the output's shape (rank 3, a leading 1
/// for rank 2) and `strides` the input's stride along each output axis ([`permute_plan`]).
pub fn permute(x: &[f32], dims: [usize; 3], strides: [usize; 3], y: &mut [f32]) {
    let mut o = 0;
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            let row = a * strides[0] + b * strides[1];
            for c in 0..dims[2] {
                y[o] = x[row + c * strides[2]];
                o += 1;
            }
        }
    }
}

/// `PReLU`: `x` where `x > 0`, `alpha · x` elsewhere, `alpha` per position of a sample of
/// `dims` (rank 3, leading 1s for lower ranks) read with `strides` (0 along a shared axis;
/// [`prelu_plan`]).
pub fn prelu(x: &[f32], alpha: &[f32], dims: [usize; 3], strides: [usize; 3], y: &mut [f32]) {
    let mut o = 0;
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            let row = a * strides[0] + b * strides[1];
            for c in 0..dims[2] {
                let v = x[o];
                y[o] = if v > 0.0 { v } else { alpha[row + c * strides[2]] * v };
                o += 1;
            }
        }
    }
}

/// `Dot(axes = 1)`: the dot product of two vectors.
pub fn dot(a: &[f32], b: &[f32], y: &mut [f32]) {
    y[0] = a.iter().zip(b).map(|(a, b)| a * b).sum();
}

/// `Conv2DTranspose`: `win` is the convolution from this layer's output (`win.c` = filters) back
/// to its input; each input pixel spreads `kernel[ky, kx, f, :] · x` onto the output pixels its
/// window covers. The kernel is `[kh, kw, filters, in_channels]`.
pub fn conv_transpose(
    x: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    act: ActKind,
    win: &Window,
    in_channels: usize,
    y: &mut [f32],
) {
    let f = win.c;
    y.fill(0.0);
    for py in 0..win.oh {
        for px in 0..win.ow {
            let xin = &x[(py * win.ow + px) * in_channels..][..in_channels];
            win.each(py, px, |ky, kx, pixel| {
                let out = &mut y[pixel * f..][..f];
                let k = &kernel[(ky * win.kw + kx) * f * in_channels..][..f * in_channels];
                for (o, row) in out.iter_mut().zip(k.chunks_exact(in_channels)) {
                    *o += row.iter().zip(xin).map(|(w, v)| w * v).sum::<f32>();
                }
            });
        }
    }
    for row in y.chunks_exact_mut(f) {
        if let Some(b) = bias {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        act.apply_row(row);
    }
}

/// `SeparableConv2D`: the depthwise convolution into `work` (`oh · ow · c · multiplier` values),
/// then the pointwise one (a Dense on each pixel) into `y`.
#[allow(clippy::too_many_arguments)]
pub fn separable(
    x: &[f32],
    (depthwise_kernel, pointwise_kernel): (Kernel<'_>, Kernel<'_>),
    bias: Option<&[f32]>,
    act: ActKind,
    win: &Window,
    (multiplier, filters): (usize, usize),
    work: &mut [f32],
    y: &mut [f32],
) {
    depthwise(x, depthwise_kernel, None, ActKind::Linear, win, multiplier, work);
    dense(work, pointwise_kernel, bias, act, win.c * multiplier, filters, y);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widens_exactly() {
        let cases = [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0400, 6.103_515_6e-5),
            (0x3555, 0.333_251_95),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
            (0x8000, -0.0),
        ];
        for (h, want) in cases {
            assert_eq!(F16(h).widen().to_bits(), want.to_bits(), "{h:#06x}");
        }
        assert!(F16(0x7e00).widen().is_nan());
    }
}
