//! The inference kernels: slices in, slices out, sizes from the model's static shapes, no
//! allocation. Weight matrices are read as stored (f32, bf16, f16, or int8 with one scale per output
//! channel) and widened to f32 in the multiply, so reduced-precision weights cost no extra pass.

use super::cpu::simd_fn;
use super::math::{ActKind, sqrt};

/// A bfloat16 value: the upper half of an f32's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

/// An IEEE half-precision value (binary16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

impl Elem for F16 {
    /// Branch-free: the exponent and mantissa moved into f32's places and rescaled by 2^112
    /// (which also makes subnormals right), infinities and NaNs kept, the sign put back.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.0 as u32;
        let mag = h & 0x7fff;
        let scaled = f32::from_bits(mag << 13) * f32::from_bits(0x7780_0000);
        let special = f32::from_bits((mag << 13) | 0x7f80_0000);
        let v = if mag >= 0x7c00 { special } else { scaled };
        f32::from_bits(v.to_bits() | ((h & 0x8000) << 16))
    }
}

/// [`axpy_rows`] on half-precision weights: F16C's `vcvtph2ps` where the CPU has it.
#[inline(always)]
fn f16_rows(x: &[f32], w: &[F16], stride: usize, acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked by `f16c`).
        return unsafe { f16_rows_f16c(x, w, stride, acc) };
    }
    axpy_rows(x, w, stride, acc)
}

/// `acc[j] += Σ_i x[i] · w[i · stride + j]`, eight half-precision weights widened at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows_f16c(x: &[f32], w: &[F16], stride: usize, acc: &mut [f32]) {
    use core::arch::x86_64::*;
    let n = acc.len();
    for (i, &a) in x.iter().enumerate() {
        let row = &w[i * stride..][..n];
        let av = _mm256_set1_ps(a);
        let mut j = 0;
        while j + 8 <= n {
            // SAFETY: `row` and `acc` hold `n` values and j + 8 ≤ n.
            unsafe {
                let v = _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(j).cast()));
                let p = acc.as_mut_ptr().add(j);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(av, v, _mm256_loadu_ps(p)));
            }
            j += 8;
        }
        for k in j..n {
            acc[k] += a * row[k].widen();
        }
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
    /// IEEE half-precision values.
    F16(&'a [F16]),
    /// int8 values and one f32 scale per output channel (the last axis): `w = q · scale`.
    Int8(&'a [i8], &'a [f32]),
    /// int8 values as [`Kernel::Int8`], rows interleaved in pairs (`q[2p][j]` beside
    /// `q[2p + 1][j]`; an odd block of rows ends with a zero row) for the 16-bit integer
    /// multiply-add: the input is quantised to 15 bits per call, products summed in i32.
    Int8Pairs(&'a [i8], &'a [f32]),
}

/// The input's largest magnitude maps to this in the int8 kernels' 16-bit input: with int8
/// weights, 1024 rows of products stay inside i32.
const X_MAX: f32 = 16383.0;
/// Rows whose products the int8 kernels sum in i32 before adding them to the f32 result.
const INT_ROWS: usize = 1024;

/// `acc[j] += Σ_i x[i] · q[i][col + j]` on a pair-interleaved int8 kernel of `cols` columns whose
/// rows start at (even) row `row0`, times each column's weight scale `ws[j]`.
#[inline(always)]
fn int8_pairs(x: &[f32], q: &[i8], row0: usize, cols: usize, col: usize, ws: &[f32], acc: &mut [f32]) {
    let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if m == 0.0 || !m.is_finite() {
        if !m.is_finite() {
            acc.iter_mut().for_each(|a| *a = f32::NAN);
        }
        return;
    }
    let (inv, scale) = (X_MAX / m, m / X_MAX);
    // Rounds to the nearest 16-bit step: adding 1.5·2²³ leaves the integer in the low
    // mantissa bits (|x · inv| ≤ X_MAX).
    let q16 = |v: f32| (((v * inv) + 12_582_912.0).to_bits() as i32 - 0x4b40_0000) as i16;
    // Each input pair as the two 16-bit halves of an i32, as `vpmaddwd` reads it.
    let both = |p: usize| {
        let (a, b) = (q16(x[2 * p]), x.get(2 * p + 1).map_or(0, |&v| q16(v)));
        ((b as u16 as u32) << 16 | a as u16 as u32) as i32
    };
    let pairs = x.len().div_ceil(2);
    let mut p0 = 0;
    while p0 < pairs {
        let block = p0..(p0 + INT_ROWS / 2).min(pairs);
        let q = &q[(row0 / 2 + p0) * 2 * cols..];
        #[cfg(target_arch = "x86_64")]
        {
            let level = super::cpu::level();
            if level == 2 && super::cpu::vnni() {
                // SAFETY: the CPU has AVX-512 BW and VNNI (checked by `level` and `vnni`).
                unsafe { int8_512_vnni(q, block.clone().map(both), cols, col, scale, ws, acc) };
                p0 = block.end;
                continue;
            }
            if level == 2 {
                // SAFETY: the CPU has AVX-512 BW (checked by `level`).
                unsafe { int8_512(q, block.clone().map(both), cols, col, scale, ws, acc) };
                p0 = block.end;
                continue;
            }
            if level == 1 {
                // SAFETY: the CPU has AVX2 (checked by `level`).
                unsafe { int8_256(q, block.clone().map(both), cols, col, scale, ws, acc) };
                p0 = block.end;
                continue;
            }
        }
        for (k, p) in block.clone().enumerate() {
            let b = both(p);
            let (lo, hi) = (b as i16 as i32, (b >> 16) as i16 as i32);
            for (j, (a, w)) in acc.iter_mut().zip(ws).enumerate() {
                let at = k * 2 * cols + 2 * (col + j);
                *a += (q[at] as i32 * lo + q[at + 1] as i32 * hi) as f32 * scale * w;
            }
        }
        p0 = block.end;
    }
}

/// One block of pairs on AVX-512: 128, then 16 output columns at a time, the sums in registers;
/// `$madd(sum, w, pair)` adds the 16-bit products of `w` and `pair` to `sum`.
macro_rules! int8_avx512 {
    ($(#[$doc:meta])* $name:ident, $features:literal, $madd:path) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            q: &[i8],
            pairs: impl Iterator<Item = i32> + Clone,
            cols: usize,
            col: usize,
            scale: f32,
            ws: &[f32],
            acc: &mut [f32],
        ) {
            use core::arch::x86_64::*;
            /// `U` vectors of 16 columns from column `j`.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn run<const U: usize>(
                q: &[i8],
                pairs: impl Iterator<Item = i32>,
                cols: usize,
                at: usize,
                scale: f32,
                ws: &[f32],
                acc: &mut [f32],
            ) {
                let mut sums = [_mm512_setzero_si512(); U];
                // SAFETY: the caller checked that every row read holds 32·U bytes from `at` and
                // `acc` 16·U values.
                unsafe {
                    for (k, both) in pairs.enumerate() {
                        let pair = _mm512_set1_epi32(both);
                        let row = q.as_ptr().add(k * 2 * cols + at);
                        for (u, sum) in sums.iter_mut().enumerate() {
                            let w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(row.add(32 * u).cast()));
                            *sum = $madd(*sum, w, pair);
                        }
                    }
                    let s = _mm512_set1_ps(scale);
                    for (u, sum) in sums.iter().enumerate() {
                        let (a, w) = (acc.as_mut_ptr().add(16 * u), _mm512_loadu_ps(ws.as_ptr().add(16 * u)));
                        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(*sum), _mm512_mul_ps(s, w));
                        _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), v));
                    }
                }
            }
            let n = acc.len();
            let count = pairs.clone().count();
            assert!(count == 0 || (count - 1) * 2 * cols + 2 * (col + n) <= q.len(), "int8 kernel out of range");
            assert!(ws.len() >= n, "int8 scales out of range");
            let mut j = 0;
            // SAFETY: the assert bounds every row's columns col..col + n; j + 16·U ≤ n below.
            unsafe {
                while j + 128 <= n {
                    run::<8>(q, pairs.clone(), cols, 2 * (col + j), scale, &ws[j..], &mut acc[j..]);
                    j += 128;
                }
                while j + 16 <= n {
                    run::<1>(q, pairs.clone(), cols, 2 * (col + j), scale, &ws[j..], &mut acc[j..]);
                    j += 16;
                }
            }
            int8_tail(q, pairs, cols, col, scale, ws, j, acc);
        }
    };
}

/// `sum + madd(w, pair)` (`vpmaddwd`, `vpaddd`).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn madd_add_512(
    sum: core::arch::x86_64::__m512i,
    w: core::arch::x86_64::__m512i,
    pair: core::arch::x86_64::__m512i,
) -> core::arch::x86_64::__m512i {
    use core::arch::x86_64::{_mm512_add_epi32, _mm512_madd_epi16};
    _mm512_add_epi32(sum, _mm512_madd_epi16(w, pair))
}

int8_avx512!(
    /// The block with `vpmaddwd` and `vpaddd`.
    int8_512,
    "avx512f,avx512bw",
    madd_add_512
);
int8_avx512!(
    /// The block with AVX-512 VNNI: one `vpdpwssd` for each multiply-add and sum.
    int8_512_vnni,
    "avx512f,avx512bw,avx512vnni",
    core::arch::x86_64::_mm512_dpwssd_epi32
);

/// One block of pairs on AVX2: 64, then 8 output columns at a time, the sums in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn int8_256(
    q: &[i8],
    pairs: impl Iterator<Item = i32> + Clone,
    cols: usize,
    col: usize,
    scale: f32,
    ws: &[f32],
    acc: &mut [f32],
) {
    use core::arch::x86_64::*;
    /// `U` vectors of 8 columns from column `j`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run<const U: usize>(
        q: &[i8],
        pairs: impl Iterator<Item = i32>,
        cols: usize,
        at: usize,
        scale: f32,
        ws: &[f32],
        acc: &mut [f32],
    ) {
        let mut sums = [_mm256_setzero_si256(); U];
        // SAFETY: as in `int8_512`, with 16·U bytes per row and 8·U values.
        unsafe {
            for (k, both) in pairs.enumerate() {
                let pair = _mm256_set1_epi32(both);
                let row = q.as_ptr().add(k * 2 * cols + at);
                for (u, sum) in sums.iter_mut().enumerate() {
                    let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.add(16 * u).cast()));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(w, pair));
                }
            }
            let s = _mm256_set1_ps(scale);
            for (u, sum) in sums.iter().enumerate() {
                let (a, w) = (acc.as_mut_ptr().add(8 * u), _mm256_loadu_ps(ws.as_ptr().add(8 * u)));
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(*sum), _mm256_mul_ps(s, w));
                _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), v));
            }
        }
    }
    let n = acc.len();
    let count = pairs.clone().count();
    assert!(count == 0 || (count - 1) * 2 * cols + 2 * (col + n) <= q.len(), "int8 kernel out of range");
    assert!(ws.len() >= n, "int8 scales out of range");
    let mut j = 0;
    // SAFETY: as in `int8_512`.
    unsafe {
        while j + 64 <= n {
            run::<8>(q, pairs.clone(), cols, 2 * (col + j), scale, &ws[j..], &mut acc[j..]);
            j += 64;
        }
        while j + 8 <= n {
            run::<1>(q, pairs.clone(), cols, 2 * (col + j), scale, &ws[j..], &mut acc[j..]);
            j += 8;
        }
    }
    int8_tail(q, pairs, cols, col, scale, ws, j, acc);
}

/// The columns from `j` on that the vector loops leave, one at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn int8_tail(
    q: &[i8],
    pairs: impl Iterator<Item = i32>,
    cols: usize,
    col: usize,
    scale: f32,
    ws: &[f32],
    j: usize,
    acc: &mut [f32],
) {
    if j == acc.len() {
        return;
    }
    let mut sums = [0i32; 16];
    let n = acc.len() - j;
    for (k, both) in pairs.enumerate() {
        let (lo, hi) = (both as i16 as i32, (both >> 16) as i16 as i32);
        let row = &q[k * 2 * cols + 2 * (col + j)..][..2 * n];
        for (s, w) in sums.iter_mut().zip(row.chunks_exact(2)) {
            *s += w[0] as i32 * lo + w[1] as i32 * hi;
        }
    }
    for ((a, s), w) in acc[j..].iter_mut().zip(&sums).zip(&ws[j..]) {
        *a += *s as f32 * scale * w;
    }
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
    /// Rows a block of `rows` kernel rows takes in this layout (pairs: rounded up to even).
    #[inline(always)]
    fn block(self, rows: usize) -> usize {
        match self {
            Kernel::Int8Pairs(..) => rows + (rows & 1),
            _ => rows,
        }
    }

    /// `acc[j] += Σ_i x[i] · w[row + i][col + j]` for a kernel of `cols` columns (int8: times
    /// column `col + j`'s scale).
    #[inline(always)]
    pub(crate) fn rows(self, x: &[f32], row: usize, cols: usize, col: usize, acc: &mut [f32]) {
        let start = row * cols + col;
        match self {
            Kernel::F32(w) => axpy_rows(x, &w[start..], cols, acc),
            Kernel::Bf16(w) => axpy_rows(x, &w[start..], cols, acc),
            Kernel::F16(w) => f16_rows(x, &w[start..], cols, acc),
            Kernel::Int8(q, ws) => {
                // Plain int8 rows (kiln embeds matrix kernels in pairs; this serves any other).
                for (i, &v) in x.iter().enumerate() {
                    let r = &q[start + i * cols..][..acc.len()];
                    for ((a, &w), s) in acc.iter_mut().zip(r).zip(&ws[col..]) {
                        *a += v * w as f32 * s;
                    }
                }
            }
            Kernel::Int8Pairs(q, ws) => int8_pairs(x, q, row, cols, col, &ws[col..], acc),
        }
    }

    /// `acc[c · m + j] += x[c] · w[start + c · m + j]`: each input channel times its own `m`
    /// kernel values (a depthwise window position).
    #[inline(always)]
    fn channels(self, x: &[f32], start: usize, m: usize, acc: &mut [f32]) {
        match self {
            Kernel::F32(w) => per_channel(x, &w[start..][..acc.len()], m, acc),
            Kernel::Bf16(w) => per_channel(x, &w[start..][..acc.len()], m, acc),
            Kernel::F16(w) => per_channel(x, &w[start..][..acc.len()], m, acc),
            // int8: each product scaled by its channel's scale as it is added.
            Kernel::Int8(q, ws) => {
                let q = &q[start..][..acc.len()];
                for (c, &v) in x.iter().enumerate() {
                    for j in c * m..(c + 1) * m {
                        acc[j] += v * q[j] as f32 * ws[j];
                    }
                }
            }
            Kernel::Int8Pairs(q, ws) => {
                // Depthwise kernels are embedded plain; this layout is read value by value.
                let (cols, row) = (acc.len(), start / acc.len().max(1));
                for (c, &v) in x.iter().enumerate() {
                    for j in c * m..(c + 1) * m {
                        acc[j] += v * q[(row / 2) * 2 * cols + 2 * j + (row & 1)] as f32 * ws[j];
                    }
                }
            }
        }
    }

    /// Adds the bias and applies the activation to output channels `col..col + row.len()`.
    #[inline(always)]
    fn finish(self, row: &mut [f32], col: usize, bias: Option<&[f32]>, act: ActKind) {
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
