//! Weight matrices as stored (f32, bf16, f16, or int8 with one scale per output channel) and the
//! products that read them, widening to f32 in the multiply: a reduced-precision weight costs no
//! extra pass.

use super::*;

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
    if super::super::cpu::f16c() {
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
            let level = super::super::cpu::level();
            if level == 2 && super::super::cpu::vnni() {
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
    pub(super) fn block(self, rows: usize) -> usize {
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
    pub(super) fn channels(self, x: &[f32], start: usize, m: usize, acc: &mut [f32]) {
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
    pub(super) fn finish(self, row: &mut [f32], col: usize, bias: Option<&[f32]>, act: ActKind) {
        if let Some(b) = bias {
            for (v, b) in row.iter_mut().zip(&b[col..]) {
                *v += b;
            }
        }
        act.apply_row(row);
    }
}
