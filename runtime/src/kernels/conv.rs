//! The geometry of a 2-D window over `channels_last` samples, shared by convolution and pooling,
//! and the im2col / col2im pair that turns a convolution into one matrix product.
//!
//! A 1-D layer is the 2-D case with a height of 1. Sizes follow Keras (TensorFlow): with `valid`
//! padding the output is `floor((H - (K-1)·d - 1) / s) + 1`; with `same` it is `ceil(H / s)`, the
//! padding split with the smaller half first (top, left).

pub use crate::infer::Window;

pub use kiln_shapes::axis;

impl Window {
    /// Values in one input sample.
    pub const fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Positions in one output sample.
    pub const fn out_positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Values in one column of the im2col matrix: one window over every channel.
    pub const fn patch(&self) -> usize {
        self.kh * self.kw * self.c
    }

    /// The input row and column a window position and tap read, if inside the input.
    #[inline(always)]
    fn at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.sh + ky * self.dh).checked_sub(self.ph)?;
        let x = (ox * self.sw + kx * self.dw).checked_sub(self.pw)?;
        (y < self.h && x < self.w).then_some((y, x))
    }

    /// Writes the im2col matrix of `n` samples: one row per output position, holding the window's
    /// values in `[kh, kw, c]` order (zeros where it hangs over the padding), matching a Keras
    /// kernel `[kh, kw, c, filters]` read as `[patch, filters]`.
    pub fn im2col(&self, x: &[f32], n: usize, cols: &mut [f32]) {
        let (patch, c) = (self.patch(), self.c);
        for s in 0..n {
            let sample = &x[s * self.in_len()..(s + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = &mut cols[((s * self.oh + oy) * self.ow + ox) * patch..][..patch];
                    for ky in 0..self.kh {
                        // A window row wholly inside the input, undilated, is one contiguous copy.
                        let y = (oy * self.sh + ky * self.dh).checked_sub(self.ph).filter(|&y| y < self.h);
                        let x0 = (ox * self.sw).checked_sub(self.pw).filter(|&x| x + self.kw <= self.w);
                        if let (Some(y), Some(x0), 1) = (y, x0, self.dw) {
                            let width = self.kw * c;
                            let (dst, src) = (&mut row[ky * width..][..width], &sample[(y * self.w + x0) * c..][..width]);
                            // A short row (3 values of one channel) inline: a memcpy call would
                            // cost more than the copy.
                            if width < 16 {
                                dst.iter_mut().zip(src).for_each(|(d, v)| *d = *v);
                            } else {
                                dst.copy_from_slice(src);
                            }
                            continue;
                        }
                        for kx in 0..self.kw {
                            let dst = &mut row[(ky * self.kw + kx) * c..][..c];
                            match self.at(oy, ox, ky, kx) {
                                // A few channels are copied inline: a memcpy call per tap would
                                // cost more than the copy.
                                Some((y, x)) if c < 16 => {
                                    let src = &sample[(y * self.w + x) * c..][..c];
                                    for (d, v) in dst.iter_mut().zip(src) {
                                        *d = *v;
                                    }
                                }
                                Some((y, x)) => dst.copy_from_slice(&sample[(y * self.w + x) * c..][..c]),
                                None => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`im2col`](Self::im2col): adds every column value back onto the input
    /// position it was read from, writing the input gradient of `n` samples.
    pub fn col2im(&self, cols: &[f32], n: usize, dx: &mut [f32]) {
        dx.fill(0.0);
        let (patch, c) = (self.patch(), self.c);
        for s in 0..n {
            let sample = &mut dx[s * self.in_len()..(s + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = &cols[((s * self.oh + oy) * self.ow + ox) * patch..][..patch];
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            if let Some((y, x)) = self.at(oy, ox, ky, kx) {
                                let src = &row[(ky * self.kw + kx) * c..][..c];
                                for (d, v) in sample[(y * self.w + x) * c..][..c].iter_mut().zip(src) {
                                    *d += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`im2col`](Self::im2col) of channels `c0..c0 + cw` only (one group of a grouped
    /// convolution): rows of `kh · kw · cw` values.
    pub fn im2col_group(&self, x: &[f32], n: usize, c0: usize, cw: usize, cols: &mut [f32]) {
        let patch = self.kh * self.kw * cw;
        for s in 0..n {
            let sample = &x[s * self.in_len()..(s + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = &mut cols[((s * self.oh + oy) * self.ow + ox) * patch..][..patch];
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            let dst = &mut row[(ky * self.kw + kx) * cw..][..cw];
                            match self.offset(oy, ox, ky, kx) {
                                Some(off) => dst.copy_from_slice(&sample[off + c0..][..cw]),
                                None => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`im2col_group`](Self::im2col_group), adding onto `dx`'s channels
    /// `c0..c0 + cw`.
    pub fn col2im_group_add(&self, cols: &[f32], n: usize, c0: usize, cw: usize, dx: &mut [f32]) {
        let patch = self.kh * self.kw * cw;
        for s in 0..n {
            let sample = &mut dx[s * self.in_len()..(s + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = &cols[((s * self.oh + oy) * self.ow + ox) * patch..][..patch];
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            if let Some(off) = self.offset(oy, ox, ky, kx) {
                                let src = &row[(ky * self.kw + kx) * cw..][..cw];
                                sample[off + c0..][..cw].iter_mut().zip(src).for_each(|(d, v)| *d += v);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The input offset (of the first channel) a window position and tap read, if inside.
    #[inline(always)]
    pub fn offset(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        self.at(oy, ox, ky, kx).map(|(y, x)| (y * self.w + x) * self.c)
    }

    /// Calls `f(output position, input offset)` for every input value a window position covers,
    /// over one channel-less sample (offsets are of the first channel): what pooling walks.
    #[inline(always)]
    pub fn taps(&self, oy: usize, ox: usize, mut f: impl FnMut(usize)) {
        for ky in 0..self.kh {
            for kx in 0..self.kw {
                if let Some((y, x)) = self.at(oy, ox, ky, kx) {
                    f((y * self.w + x) * self.c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_keras() {
        // valid: floor((H - K) / s) + 1
        assert_eq!(axis(28, 3, 1, 1, false), Some((26, 0)));
        assert_eq!(axis(8, 3, 2, 1, false), Some((3, 0)));
        assert_eq!(axis(7, 3, 1, 2, false), Some((3, 0)));
        assert_eq!(axis(3, 5, 1, 1, false), None);
        // same: ceil(H / s), padding split with the smaller half before
        assert_eq!(axis(8, 3, 1, 1, true), Some((8, 1)));
        assert_eq!(axis(8, 3, 2, 1, true), Some((4, 0)));
        assert_eq!(axis(7, 4, 1, 1, true), Some((7, 1)));
        assert_eq!(axis(5, 2, 0, 1, true), None);
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let (oh, ph) = axis(5, 3, 2, 1, true).unwrap();
        let (ow, pw) = axis(4, 2, 1, 2, false).unwrap();
        let g = Window { h: 5, w: 4, c: 2, kh: 3, kw: 2, sh: 2, sw: 1, dh: 1, dw: 2, ph, pw, oh, ow };
        let x: Vec<f32> = (0..2 * g.in_len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut cols = vec![0.0; 2 * g.out_positions() * g.patch()];
        g.im2col(&x, 2, &mut cols);
        let c: Vec<f32> = (0..cols.len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut back = vec![0.0; x.len()];
        g.col2im(&c, 2, &mut back);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        assert!((lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
    }
}

/// Patches up to this many values (a 3×3 window over up to 3 channels, say) multiply through the
/// row kernels below rather than sgemm, whose packing would cost as much as the product.
pub const SMALL_PATCH: usize = 32;

/// What the small-patch forward adds to its sums before it stores them: the bias, then a ReLU
/// when asked, as `bias_act` would in a pass of its own (the same operations, so the same bits).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// Added to each row (one value per filter).
    pub bias: Option<&'a [f32]>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Nothing added: the plain product.
    pub const NONE: Epilogue<'static> = Epilogue { bias: None, relu: false };

    /// On one row of outputs, in place.
    #[inline(always)]
    fn apply(&self, row: &mut [f32]) {
        if let Some(b) = self.bias {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        if self.relu {
            row.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Four rows' outputs for filters `j..j + 32`: eight independent sums per tap (two rows' worth
/// of registers each), so the multiply-adds overlap instead of waiting on one another.
#[inline(always)]
fn forward_rows4(c: &[f32], w: &[f32], patch: usize, f: usize, j: usize, ep: Epilogue<'_>, o: &mut [f32]) {
    let mut acc = [[0.0f32; 32]; 4];
    for p in 0..patch {
        let Ok(wr) = <&[f32; 32]>::try_from(&w[p * f + j..p * f + j + 32]) else { return };
        for (r, a) in acc.iter_mut().enumerate() {
            let x = c[r * patch + p];
            for i in 0..32 {
                a[i] = x.mul_add(wr[i], a[i]);
            }
        }
    }
    let bias = match ep.bias.map(|b| <&[f32; 32]>::try_from(&b[j..j + 32])) {
        Some(Ok(b)) => *b,
        _ => [0.0; 32],
    };
    let (add, relu) = (ep.bias.is_some(), ep.relu);
    for (r, a) in acc.iter().enumerate() {
        let Ok(out) = <&mut [f32; 32]>::try_from(&mut o[r * f + j..r * f + j + 32]) else { return };
        for i in 0..32 {
            let v = if add { a[i] + bias[i] } else { a[i] };
            out[i] = if relu { v.max(0.0) } else { v };
        }
    }
}

crate::infer::cpu::simd_fn! {
    /// `out[r, ..] = cols[r, ..] · w[patch, f]` for the rows of `cols`, four rows and 32 filters
    /// at a time where the filters come in 32s: the weights (a few KB) stay in L1, nothing is
    /// packed, and each output is the same sum over the patch in the same order either way.
    /// The epilogue (bias, ReLU) is applied while the sums are in registers.
    pub fn small_patch_forward(cols: &[f32], w: &[f32], patch: usize, f: usize, ep: Epilogue<'_>, out: &mut [f32]) {
        let rows = cols.len() / patch;
        let (fast_rows, fast_f) = if f.is_multiple_of(32) { (rows / 4 * 4, f) } else { (0, 0) };
        for r in (0..fast_rows).step_by(4) {
            for j in (0..fast_f).step_by(32) {
                forward_rows4(&cols[r * patch..(r + 4) * patch], w, patch, f, j, ep, &mut out[r * f..(r + 4) * f]);
            }
        }
        let rest = &mut out[fast_rows * f..];
        small_patch_forward_rows(&cols[fast_rows * patch..], w, patch, f, rest);
        rest.chunks_exact_mut(f).for_each(|row| ep.apply(row));
    }
}

super::simd::multiversion! {
    /// `out[r, ..] = cols[r, ..] · w[patch, f]` for the rows of `cols`: for each row and each
    /// block of 8 filters, the sum over the patch is kept in registers.
    fn small_patch_forward_rows(cols: &[f32], w: &[f32], patch: usize, f: usize, out: &mut [f32]) {
        let blocks = f / 8;
        for (c, o) in cols.chunks_exact(patch).zip(out.chunks_exact_mut(f)) {
            for b in 0..blocks {
                let mut acc = [0.0f32; 8];
                for (p, &cp) in c.iter().enumerate() {
                    let wr = &w[p * f + 8 * b..p * f + 8 * b + 8];
                    for i in 0..8 {
                        acc[i] = cp.mul_add(wr[i], acc[i]);
                    }
                }
                o[8 * b..8 * b + 8].copy_from_slice(&acc);
            }
            for j in 8 * blocks..f {
                o[j] = c.iter().enumerate().map(|(p, &cp)| cp * w[p * f + j]).sum();
            }
        }
    }
}

/// Whether a patch of this many values takes [`small_patch_grad`] for the kernel gradient
/// (3×3 and 2×2 windows on one channel, the first layer of a grey-scale CNN).
pub fn small_grad_patch(patch: usize) -> bool {
    matches!(patch, 4 | 9)
}

/// One block of `W` filters from `j` for a patch of `P` values: `dk[p, j..j + W] = Σ_r
/// cols[r, p] · dz[r, j..j + W]` and `db[j..j + W] = Σ_r dz[r, j..j + W]`, rows in order; the
/// `P · W` sums stay in registers.
#[inline(always)]
fn grad_block<const W: usize, const P: usize>(cols: &[f32], dz: &[f32], f: usize, j: usize, dk: &mut [f32], db: &mut [f32]) {
    let mut acc = [[0.0f32; W]; P];
    let mut accb = [0.0f32; W];
    for (c, d) in cols.chunks_exact(P).zip(dz.chunks_exact(f)) {
        let (Ok(c), Ok(d)) = (<&[f32; P]>::try_from(c), <&[f32; W]>::try_from(&d[j..j + W])) else { continue };
        for i in 0..W {
            accb[i] += d[i];
        }
        for p in 0..P {
            for i in 0..W {
                acc[p][i] = c[p].mul_add(d[i], acc[p][i]);
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        dk[p * f + j..p * f + j + W].copy_from_slice(a);
    }
    db[j..j + W].copy_from_slice(&accb);
}

/// All blocks of filters for a patch of `P` values: 16 at a time where the CPU has AVX-512,
/// then 8, then one.
#[inline(always)]
fn grad_blocks<const P: usize>(cols: &[f32], dz: &[f32], f: usize, dk: &mut [f32], db: &mut [f32]) {
    let mut j = 0;
    if crate::infer::cpu::level() >= 2 {
        while j + 16 <= f {
            grad_block::<16, P>(cols, dz, f, j, dk, db);
            j += 16;
        }
    }
    while j + 8 <= f {
        grad_block::<8, P>(cols, dz, f, j, dk, db);
        j += 8;
    }
    while j < f {
        grad_block::<1, P>(cols, dz, f, j, dk, db);
        j += 1;
    }
}

crate::infer::cpu::simd_fn! {
    /// The kernel and bias gradients of a convolution whose patch [`small_grad_patch`] accepts,
    /// without packing: `dk [patch, f] = colsᵀ · dz` and `db [f] = Σ_r dz[r]`, overwritten.
    pub fn small_patch_grad(cols: &[f32], dz: &[f32], patch: usize, f: usize, dk: &mut [f32], db: &mut [f32]) {
        match patch {
            4 => grad_blocks::<4>(cols, dz, f, dk, db),
            9 => grad_blocks::<9>(cols, dz, f, dk, db),
            _ => unreachable!("small_patch_grad takes the patches small_grad_patch accepts"),
        }
    }
}

#[cfg(test)]
mod grad_tests {
    use super::*;

    /// Against the plain sums, for both patches and a filter count that takes blocks of 16, of 8
    /// and single filters.
    #[test]
    fn small_patch_grad_is_the_plain_product() {
        for (patch, f) in [(9, 33), (4, 8), (9, 5)] {
            let rows = 37;
            let cols: Vec<f32> = (0..rows * patch).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let dz: Vec<f32> = (0..rows * f).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let (mut dk, mut db) = (vec![f32::NAN; patch * f], vec![f32::NAN; f]);
            small_patch_grad(&cols, &dz, patch, f, &mut dk, &mut db);
            for p in 0..patch {
                for j in 0..f {
                    let want: f32 = (0..rows).map(|r| cols[r * patch + p] * dz[r * f + j]).sum();
                    assert!((dk[p * f + j] - want).abs() < 1e-4, "dk[{p}, {j}]: {} vs {want}", dk[p * f + j]);
                }
            }
            for j in 0..f {
                let want: f32 = (0..rows).map(|r| dz[r * f + j]).sum();
                assert!((db[j] - want).abs() < 1e-4, "db[{j}]");
            }
        }
    }
}
