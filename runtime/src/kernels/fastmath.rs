//! Branch-free `exp`, `sigmoid` and `tanh` that vectorise, for the recurrent layers' gates, where
//! libm's scalar calls were a quarter of an LSTM step. Accurate to a few units in the last place
//! (Cephes' polynomials), well inside the 1e-5 of kiln's Keras parity tests.

/// `e^x` for `x` clamped to `[-87.3, 88.7]` (beyond, the result saturates as f32 does).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.336_55, 88.722_83);
    // x = n·ln2 + r, |r| ≤ ln2/2; e^r by a degree-6 polynomial; 2^n from the exponent bits.
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // n + 127 lies in 1..=255 after the clamp (n ≥ -126 and ≤ 128: 2^128 needs a split).
    let half = (n * 0.5).floor();
    let a = f32::from_bits(((half as i32 + 127) << 23) as u32);
    let b = f32::from_bits((((n - half) as i32 + 127) << 23) as u32);
    y * a * b
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x)`: an odd polynomial near 0 (Cephes' `tanhf`), `1 - 2 / (e^2|x| + 1)` beyond.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1) * z * x
            + x;
    let big = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 { small } else { big }
}

/// `f` over a slice in place, compiled for AVX-512, for AVX2+FMA and for the baseline, the
/// widest the CPU has chosen at run time.
macro_rules! slice_fn {
    ($(#[$meta:meta])* $name:ident, $f:ident) => {
        $(#[$meta])*
        pub fn $name(v: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn w512(v: &mut [f32]) {
                v.iter_mut().for_each(|x| *x = $f(*x));
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn w256(v: &mut [f32]) {
                v.iter_mut().for_each(|x| *x = $f(*x));
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `w512` was compiled for.
                    return unsafe { w512(v) };
                }
                if super::simd::avx2_fma() {
                    // SAFETY: the CPU has the features `w256` was compiled for.
                    return unsafe { w256(v) };
                }
            }
            v.iter_mut().for_each(|x| *x = $f(*x));
        }
    };
}

slice_fn!(
    /// `sigmoid` over a slice, in place.
    sigmoid_slice,
    sigmoid
);

slice_fn!(
    /// `tanh` over a slice, in place.
    tanh_slice,
    tanh
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Within 4 units in the last place of the f64 result over the range the gates see.
    #[test]
    fn close_to_the_exact_functions() {
        let ulps =
            |got: f32, want: f64| ((got as f64 - want).abs() / (want.abs().max(1e-30) * f32::EPSILON as f64)) as f32;
        let (mut e, mut s, mut t) = (0.0f32, 0.0f32, 0.0f32);
        for i in -200_000..=200_000 {
            let x = i as f32 * 4e-4;
            e = e.max(ulps(exp(x), (x as f64).exp()));
            s = s.max(ulps(sigmoid(x), 1.0 / (1.0 + (-(x as f64)).exp())));
            let want = (x as f64).tanh();
            if want.abs() > 1e-6 {
                t = t.max(ulps(tanh(x), want));
            }
        }
        assert!(e < 4.0 && s < 4.0 && t < 4.0, "exp {e}, sigmoid {s}, tanh {t} ulps");
        assert_eq!(exp(-100.0), exp(-87.336_55));
        assert!(exp(100.0).is_finite() && sigmoid(-100.0) >= 0.0 && sigmoid(100.0) == 1.0);
        assert_eq!((tanh(30.0), tanh(-30.0)), (1.0, -1.0));
        let mut v = vec![-3.0, 0.0, 2.0];
        sigmoid_slice(&mut v);
        assert_eq!(v, vec![sigmoid(-3.0), 0.5, sigmoid(2.0)]);
    }
}
