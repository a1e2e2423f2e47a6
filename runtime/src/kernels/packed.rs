//! A packed matrix product with register tiles for AVX2+FMA and for AVX-512: the products of
//! machines without AVX-512 for every operand order (`x·W`, `xᵀ·dy`, `dy·Wᵀ`), and those with a
//! transposed operand on machines with it.
//!
//! The loops are those of BLIS: `b` is packed, `KC` of its rows at a time, into panels `W`
//! columns wide stored contiguously (16 with AVX2, 32 with AVX-512: a panel of 256 rows, 16 or
//! 32 KB, stays in L1 while it is used); for each block of `MC` rows of `a` (in L2) every panel
//! is swept by a 6-row register tile — 12 accumulators, two loads of the panel and six
//! broadcasts of `a` per 12 fused multiply-adds, which is the FMA units' rate (two FMAs per cycle,
//! latency 4–5). `a` is read in place through its strides (its six rows, or its six contiguous
//! columns when it is read transposed), so only `b` is copied, into a buffer each thread keeps.
//!
//! Each element of `c` is one chain of multiply-adds over `p` in order, started from `beta · c`
//! (blocks of `KC` continue the chain through `c`), so its bits do not depend on how the rows or
//! columns were split among threads, and equal those of [`super::matmul::gemm_small`]'s blocks.

use std::cell::RefCell;

/// Rows of the register tile.
const MR: usize = 6;
/// Rows of `b` packed at a time: a panel of `KC × W` values is 16 or 32 KB.
const KC: usize = 256;
/// Columns of `b` packed at a time: 1 MB with `KC` (512 and 2,048 measured the same).
const NC: usize = 1024;
/// Rows of `a` whose `KC` columns are reused across every panel (120 KB: in L2).
const MC: usize = 120;

thread_local! {
    /// The packed block of `b`, kept by each thread from one product to the next.
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`gemm_raw`] can run here: the kernels may use AVX2 and FMA.
pub fn available() -> bool {
    super::simd::avx2_fma()
}

/// `c[m×n] = a[m×k] · b[k×n] + beta · c` on this thread: `a` and `b` by their (row, column)
/// strides, `c` by its row stride `ldc`, written through a raw pointer so that callers may split
/// `c`'s columns among threads.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`available`]); `c` is valid for writes of `m` rows of `n` values
/// `ldc` apart, which no other thread reads or writes during the call.
///
/// # Panics
/// When a stride of `a` or `b` reaches outside its slice.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: `c = beta · c` (zeros for `beta = 0`, whatever `c` held).
        for i in 0..m {
            // SAFETY: row `i` of `c` is valid for `n` writes, as the caller guarantees.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) };
            row.iter_mut().for_each(|v| *v = if beta == 0.0 { 0.0 } else { beta * *v });
        }
        return;
    }
    assert!((m - 1) * rsa + (k - 1) * csa < a.len());
    assert!((k - 1) * rsb + (n - 1) * csb < b.len());
    // SAFETY: as the caller guarantees; the 32-wide panels only where the CPU has AVX-512 (and
    // the product is wide enough to fill them).
    unsafe {
        if super::simd::avx512() && n >= 32 {
            run::<32>(m, k, n, a, (rsa, csa), b, (rsb, csb), c, ldc, beta)
        } else {
            run::<16>(m, k, n, a, (rsa, csa), b, (rsb, csb), c, ldc, beta)
        }
    }
}

/// [`gemm_raw`] with panels `W` columns wide: 16 (two AVX2 vectors) or 32 (two AVX-512 ones).
///
/// # Safety
/// As [`gemm_raw`], with AVX-512 for `W = 32`; the strides checked.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run<const W: usize>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    PACK.with_borrow_mut(|buf| {
        let nc = NC.min(n.next_multiple_of(W));
        // Room for the largest block, and 64-byte alignment of the panels.
        let need = KC.min(k) * nc + 16;
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let skew = buf.as_ptr().align_offset(64).min(15);
        let packed = &mut buf[skew..need - 16 + skew];
        for k0 in (0..k).step_by(KC) {
            let kb = KC.min(k - k0);
            let beta = if k0 == 0 { beta } else { 1.0 };
            for j0 in (0..n).step_by(NC) {
                let nb = NC.min(n - j0);
                pack::<W>(kb, nb, &b[k0 * rsb + j0 * csb..], (rsb, csb), packed);
                for i0 in (0..m).step_by(MC) {
                    let mb = MC.min(m - i0);
                    for (q, jp) in (0..nb).step_by(W).enumerate() {
                        let panel = &packed[q * kb * W..(q + 1) * kb * W];
                        let w = W.min(nb - jp);
                        // The block's rows in tiles as even as can be (32 rows: 6, 6, 5, 5, 5,
                        // 5, not five of 6 and one of 2, whose 4 accumulators would leave the
                        // FMA units waiting on each other).
                        let tiles = mb.div_ceil(MR);
                        let (base, extra) = (mb / tiles, mb % tiles);
                        let mut i = i0;
                        for t in 0..tiles {
                            let r = base + usize::from(t < extra);
                            let at = &a[i * rsa + k0 * csa..];
                            // SAFETY: rows i..i + r < m and columns j0 + jp..+w ≤ n of `c`, as
                            // the caller guarantees; `at` holds rows < r and columns < kb (the
                            // assertion on `a`); `panel` holds kb rows of W values; the CPU has
                            // the instructions (the caller).
                            unsafe { tile::<W>(r, w, kb, at, (rsa, csa), panel, c.add(i * ldc + j0 + jp), ldc, beta) };
                            i += r;
                        }
                    }
                }
            }
        }
    });
}

/// Copies `kb` rows by `nb` columns of `b` into panels of `W` columns, each `kb × W` values in
/// row order, the last one padded with zeros.
fn pack<const W: usize>(kb: usize, nb: usize, b: &[f32], (rsb, csb): (usize, usize), out: &mut [f32]) {
    let full = nb / W;
    if csb == 1 {
        // Row-major `b`: eight rows at a time, read in order across their whole panels, each
        // panel's eight rows written as one contiguous run (a row at a time would write every
        // panel `kb · W` values apart: one cache set). Fixed-size copies compile to vector
        // moves; a copy of a run of unknown length is a `memmove` call.
        for p0 in (0..kb).step_by(8) {
            let rows = 8.min(kb - p0);
            for q in 0..full {
                for p in p0..p0 + rows {
                    let from: &[f32; W] = b[p * rsb + q * W..][..W].try_into().expect("W values");
                    let to = &mut out[(q * kb + p) * W..][..W];
                    *<&mut [f32; W]>::try_from(to).expect("W values") = *from;
                }
            }
        }
    } else if rsb == 1 && kb >= 8 && full > 0 {
        // `b` read transposed (`Wᵀ`, stored as [n, k]): blocks of 8 × 8 transposed in registers.
        // SAFETY: the CPU has AVX2 (`gemm_raw`'s contract); the call stays inside `b` and `out`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            pack_transposed::<W>(kb, full, b, csb, out)
        };
    }
    // What the fast paths above leave: the last, narrow panel, and any other layout.
    let done = if csb == 1 || (rsb == 1 && kb >= 8 && cfg!(target_arch = "x86_64")) { full } else { 0 };
    for q in done..nb.div_ceil(W) {
        let w = W.min(nb - q * W);
        let panel = &mut out[q * kb * W..(q + 1) * kb * W];
        for (p, row) in panel.chunks_exact_mut(W).enumerate() {
            for (col, v) in row.iter_mut().enumerate() {
                *v = if col < w { b[p * rsb + (q * W + col) * csb] } else { 0.0 };
            }
        }
    }
}

/// The `full` whole panels of a `b` stored transposed (column `j` of the logical `b` is the
/// contiguous run `b[j * ld..][..kb]`), 8 × 8 blocks at a time through registers; rows of `p`
/// past the last multiple of 8 one by one.
///
/// # Safety
/// The CPU has AVX2; `b` holds `full · W` runs of `kb` values `ld` apart, `out` `full` panels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_transposed<const W: usize>(kb: usize, full: usize, b: &[f32], ld: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!((full * W - 1) * ld + kb <= b.len() && out.len() >= full * kb * W);
    let (bp, op) = (b.as_ptr(), out.as_mut_ptr());
    // SAFETY: the assertion bounds every read of `b` (columns < full · W, p < kb) and every
    // write of `out` (panels < full, p < kb).
    unsafe {
        for q in 0..full {
            let panel = op.add(q * kb * W);
            for half in 0..W / 8 {
                let col0 = q * W + half * 8;
                let mut p = 0;
                while p + 8 <= kb {
                    let r: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(bp.add((col0 + c) * ld + p)));
                    // The 8 × 8 transpose: pairs, then quads, then 128-bit halves.
                    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let rows = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (d, v) in rows.iter().enumerate() {
                        _mm256_storeu_ps(panel.add((p + d) * W + half * 8), *v);
                    }
                    p += 8;
                }
                for p in p..kb {
                    for c in 0..8 {
                        *panel.add(p * W + half * 8 + c) = *bp.add((col0 + c) * ld + p);
                    }
                }
            }
        }
    }
}

/// One tile of `r ≤ MR` rows by `w ≤ W` columns; a narrow one goes through a full-width copy.
///
/// # Safety
/// `c` is valid for `r` rows of `w` values `ldc` apart; `a` holds `r` rows and `kb` columns by
/// its strides; `panel` holds `kb` rows of `W` values; the CPU has AVX2 and FMA (AVX-512 for
/// `W = 32`).
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const W: usize>(
    r: usize,
    w: usize,
    kb: usize,
    a: &[f32],
    sa: (usize, usize),
    panel: &[f32],
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    debug_assert!(r <= MR && w <= W && W <= 32 && panel.len() >= kb * W);
    debug_assert!((r - 1) * sa.0 + (kb - 1) * sa.1 < a.len());
    let (ap, bp) = (a.as_ptr(), panel.as_ptr());
    if w < W {
        let mut tmp = [0.0f32; MR * 32];
        // SAFETY: the caller bounds `c`'s `r × w` block; `tmp` holds a full `MR × W` tile.
        unsafe {
            if beta != 0.0 {
                for i in 0..r {
                    std::ptr::copy_nonoverlapping(c.add(i * ldc), tmp.as_mut_ptr().add(i * W), w);
                }
            }
            dispatch::<W>(r, kb, ap, sa, bp, tmp.as_mut_ptr(), W, beta);
            for i in 0..r {
                std::ptr::copy_nonoverlapping(tmp.as_ptr().add(i * W), c.add(i * ldc), w);
            }
        }
        return;
    }
    // SAFETY: as the caller guarantees.
    unsafe { dispatch::<W>(r, kb, ap, sa, bp, c, ldc, beta) }
}

/// The register tile for `r` rows and panels `W` wide.
///
/// # Safety
/// As [`tile`], with `w = W`.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn dispatch<const W: usize>(
    r: usize,
    kb: usize,
    a: *const f32,
    sa: (usize, usize),
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    macro_rules! rows {
        ($kernel:ident) => {
            match r {
                6 => $kernel::<6>(kb, a, sa, b, c, ldc, beta),
                5 => $kernel::<5>(kb, a, sa, b, c, ldc, beta),
                4 => $kernel::<4>(kb, a, sa, b, c, ldc, beta),
                3 => $kernel::<3>(kb, a, sa, b, c, ldc, beta),
                2 => $kernel::<2>(kb, a, sa, b, c, ldc, beta),
                _ => $kernel::<1>(kb, a, sa, b, c, ldc, beta),
            }
        };
    }
    // SAFETY: as the caller guarantees.
    unsafe {
        if W == 32 {
            rows!(kernel_512)
        } else {
            rows!(kernel)
        }
    }
}

/// Defines a register tile: `R` rows by two vectors of `LANES` columns in `2R` accumulators over
/// `kb` steps, each step two loads of the packed panel (`2 · LANES` values a row) and `R`
/// broadcasts of `a`.
macro_rules! register_tile {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal, $zero:ident, $set1:ident, $load:ident,
     $store:ident, $mul:ident, $fmadd:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU has the instruction set; `c` is valid for `R` rows of `2 · LANES` values `ldc`
        /// apart; `a` holds `R` rows and `kb` columns by its strides; `b` holds `kb` rows of
        /// `2 · LANES` values.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const R: usize>(
            kb: usize,
            a: *const f32,
            (rsa, csa): (usize, usize),
            b: *const f32,
            c: *mut f32,
            ldc: usize,
            beta: f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY: the caller bounds every pointer below.
            unsafe {
                let mut acc = [[$zero(); 2]; R];
                if beta != 0.0 {
                    let vb = $set1(beta);
                    for (r, row) in acc.iter_mut().enumerate() {
                        row[0] = $mul(vb, $load(c.add(r * ldc)));
                        row[1] = $mul(vb, $load(c.add(r * ldc + $lanes)));
                    }
                }
                for p in 0..kb {
                    let b0 = $load(b.add(p * 2 * $lanes));
                    let b1 = $load(b.add(p * 2 * $lanes + $lanes));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let x = $set1(*a.add(r * rsa + p * csa));
                        row[0] = $fmadd(x, b0, row[0]);
                        row[1] = $fmadd(x, b1, row[1]);
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    $store(c.add(r * ldc), row[0]);
                    $store(c.add(r * ldc + $lanes), row[1]);
                }
            }
        }

        /// Without x86-64 there is no such instruction set and [`gemm_raw`] never reaches here.
        #[cfg(not(target_arch = "x86_64"))]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const R: usize>(
            _: usize,
            _: *const f32,
            _: (usize, usize),
            _: *const f32,
            _: *mut f32,
            _: usize,
            _: f32,
        ) {
            unreachable!("the packed kernels need AVX2")
        }
    };
}

register_tile!(
    /// The AVX2 tile: `R` rows by 16 columns.
    kernel, "avx2,fma", 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_mul_ps,
    _mm256_fmadd_ps
);

register_tile!(
    /// The AVX-512 tile: `R` rows by 32 columns.
    kernel_512, "avx512f", 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
    _mm512_mul_ps, _mm512_fmadd_ps
);
