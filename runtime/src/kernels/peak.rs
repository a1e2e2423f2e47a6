//! The machine's limit for products: the rate of a loop of fused multiply-adds on registers
//! only (no memory traffic), at the widest vector width the CPU has, so a product's GFLOP/s can
//! be read as a fraction of what the cores can do.

use std::time::Instant;

/// Independent accumulators: more than an FMA's latency times the FMA units, so the loop is
/// bound by throughput.
const ACCS: usize = 12;

/// GFLOP/s of fused multiply-adds on `threads` threads (each running its own loop), counting a
/// multiply-add as two operations, measured over about `millis` milliseconds.
pub fn fma_peak(threads: usize, millis: u64) -> f64 {
    let threads = threads.max(1);
    // A short run first: clocks up, code in cache.
    let _ = run(1, 1 << 14);
    let mut iters = 1u64 << 16;
    loop {
        let start = Instant::now();
        let flops = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || run(iters, 1))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum::<f64>()
        });
        let secs = start.elapsed().as_secs_f64();
        if secs * 1000.0 >= millis as f64 || iters >= 1 << 34 {
            return flops / secs / 1e9;
        }
        iters *= 2;
    }
}

/// Runs `iters` rounds (`reps` times); returns the floating-point operations done.
fn run(iters: u64, reps: u64) -> f64 {
    let mut flops = 0.0;
    for _ in 0..reps {
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd::avx512() {
                // SAFETY: the CPU has AVX-512F.
                unsafe { avx512(iters) };
                flops += iters as f64 * (ACCS * 16 * 2) as f64;
                continue;
            }
            if super::simd::avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { avx2(iters) };
                flops += iters as f64 * (ACCS * 8 * 2) as f64;
                continue;
            }
        }
        plain(iters);
        flops += iters as f64 * (ACCS * 2) as f64;
    }
    flops
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(iters: u64) {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); ACCS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(iters: u64) {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); ACCS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
}

fn plain(iters: u64) {
    let mut acc = [1.0f32; ACCS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = v.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_is_a_positive_rate() {
        let p = super::fma_peak(1, 5);
        assert!(p.is_finite() && p > 0.1, "{p} GFLOP/s");
    }
}
