//! Branch-free `exp`, `sigmoid` and `tanh` that vectorise (the `core`-only versions of
//! `infer::math`), over slices for the recurrent layers' gates, where libm's scalar calls were a
//! quarter of an LSTM step. Accurate to a few units in the last place (Cephes' polynomials), well
//! inside the 1e-5 of kiln's Keras parity tests.

pub use crate::infer::math::{exp, sigmoid, tanh};

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
                if super::simd::avx512() {
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

slice_fn!(
    /// `exp` over a slice, in place, saturating outside `[-87.3, 88.7]` (see [`exp_exact_limits`]).
    exp_saturating,
    exp
);

/// `e^x` over a slice, in place: the vectorised [`exp`] (within 4 units in the last place), then
/// the standard library's at the few values outside its range, so that overflow gives `inf`, a
/// very negative `x` a subnormal or 0, and NaN stays NaN, as `f32::exp` does.
pub fn exp_exact_limits(v: &mut [f32], x: &[f32]) {
    exp_saturating(v);
    for (y, &x) in v.iter_mut().zip(x) {
        if !(-87.336_55..=88.722_83).contains(&x) {
            *y = x.exp();
        }
    }
}

crate::infer::cpu::simd_fn! {
    /// Softmax over a slice, in place (its maximum subtracted first), summed in sixteen running
    /// parts so that it vectorises.
    pub fn softmax_in_place(v: &mut [f32]) {
        let mut m = [f32::NEG_INFINITY; 16];
        let mut chunks = v.chunks_exact(16);
        for c in &mut chunks {
            for l in 0..16 {
                m[l] = m[l].max(c[l]);
            }
        }
        let max = chunks.remainder().iter().chain(&m).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut s = [0.0f32; 16];
        let mut chunks = v.chunks_exact_mut(16);
        for c in &mut chunks {
            for l in 0..16 {
                c[l] = exp(c[l] - max);
                s[l] += c[l];
            }
        }
        let mut sum: f32 = s.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

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
        let mut v: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let want: Vec<f64> = {
            let e: Vec<f64> = v.iter().map(|&x| (x as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|x| x / s).collect()
        };
        softmax_in_place(&mut v);
        assert!(v.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-7), "{v:?}");
    }
}
