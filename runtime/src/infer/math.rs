//! The activations and the few functions inference needs, written with `core` alone (no libm):
//! branch-free so that loops over them vectorise. Accurate to a few units in the last place
//! (Cephes' polynomials), well inside the 1e-5 kiln's parity tests allow.

/// Which activation a layer applies. Layers carry it as a type (`Relu`, ...); the kernels
/// dispatch on this value once per call, outside the element loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActKind {
    /// `f(x) = x`.
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `e^x / Σ e^x` over the last axis.
    Softmax,
    /// `x Φ(x)`, exact form.
    Gelu,
    /// `x` for x > 0, `e^x - 1` otherwise.
    Elu,
    /// `scale · elu(x, alpha)` with Keras' constants.
    Selu,
    /// `x` for x > 0, `0.2 x` otherwise.
    LeakyRelu,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x · sigmoid(x)`, also called silu.
    Swish,
    /// Keras' `gelu(x, approximate=True)`: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    GeluApproximate,
}

/// √(2/π), of the tanh form of gelu.
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// Keras' selu constants.
pub(crate) const SELU_ALPHA: f32 = 1.673_263_2;
pub(crate) const SELU_SCALE: f32 = 1.050_701;
/// The `leaky_relu` activation's slope (the `LeakyReLU` layer's default is 0.3).
pub(crate) const LEAKY_SLOPE: f32 = 0.2;

/// `x` rounded to the nearest integer, for |x| < 2²².
#[inline(always)]
fn round(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (x + MAGIC) - MAGIC
}

/// `e^x` for `x` clamped to `[-87.3, 88.7]` (beyond, the result saturates as f32 does).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.336_55, 88.722_83);
    // x = n·ln2 + r, |r| ≤ ln2/2; e^r by a degree-6 polynomial; 2^n from the exponent bits.
    let n = round(x * core::f32::consts::LOG2_E);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // n lies in -126..=128; 2^128 needs two factors. (`as i32` would saturate lane by lane,
    // which keeps the loops calling this from vectorising.)
    // SAFETY: `x` was clamped, so `n` is an integer in -126..=128, which an i32 holds.
    let n = unsafe { n.to_int_unchecked::<i32>() };
    let half = n >> 1;
    let a = f32::from_bits(((half + 127) << 23) as u32);
    let b = f32::from_bits((((n - half) + 127) << 23) as u32);
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

/// `ln(1 + u)` for `u` in `[0, 1]`: `2 atanh(u / (2 + u))` by its series (relative error below
/// 1e-7, also for tiny `u`).
#[inline(always)]
pub(crate) fn ln_1p_unit(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let z = s * s;
    let p = ((((((z / 15.0 + 1.0 / 13.0) * z + 1.0 / 11.0) * z + 1.0 / 9.0) * z + 1.0 / 7.0) * z + 1.0 / 5.0) * z
        + 1.0 / 3.0)
        * z;
    2.0 * (s + s * p)
}

/// The error function (Abramowitz & Stegun 7.1.26; absolute error below 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// `√x` for `x ≥ 0`, by three Newton steps from the exponent-halving guess (correct to f32's
/// last place or one unit off).
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut y = f32::from_bits(0x1fbd_1df5 + (x.to_bits() >> 1));
    y = 0.5 * (y + x / y);
    y = 0.5 * (y + x / y);
    0.5 * (y + x / y)
}

impl ActKind {
    /// `f(x)` with `core` alone (not softmax, which needs the whole row).
    #[inline(always)]
    pub fn value(self, x: f32) -> f32 {
        match self {
            ActKind::Linear | ActKind::Softmax => x,
            ActKind::Relu => x.max(0.0),
            ActKind::Sigmoid => sigmoid(x),
            ActKind::Tanh => tanh(x),
            ActKind::Gelu => 0.5 * x * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2)),
            ActKind::GeluApproximate => 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x))),
            ActKind::Elu => {
                if x > 0.0 {
                    x
                } else {
                    exp(x) - 1.0
                }
            }
            ActKind::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * (exp(x) - 1.0)
                }
            }
            ActKind::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    LEAKY_SLOPE * x
                }
            }
            ActKind::Softplus => x.max(0.0) + ln_1p_unit(exp(-x.abs())),
            ActKind::Swish => x * sigmoid(x),
        }
    }

    /// Applies the activation to one row of the last axis, in place (softmax normalises it).
    #[inline(always)]
    pub fn apply_row(self, row: &mut [f32]) {
        match self {
            ActKind::Linear => {}
            ActKind::Softmax => {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = exp(*v - max);
                    sum += *v;
                }
                let inv = 1.0 / sum;
                for v in row.iter_mut() {
                    *v *= inv;
                }
            }
            // One loop per kind, each with its function inlined (a `match` per value would not
            // vectorise).
            k => {
                macro_rules! each {
                    ($($kind:ident),*) => {
                        match k {
                            $(ActKind::$kind => row.iter_mut().for_each(|v| *v = ActKind::$kind.value(*v)),)*
                            _ => {}
                        }
                    };
                }
                each!(Relu, Sigmoid, Tanh, Gelu, Elu, Selu, LeakyRelu, Softplus, Swish, GeluApproximate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_libm() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let rel = |a: f32, b: f32| (a - b).abs() / b.abs().max(1e-30);
            assert!(rel(exp(x), x.exp()) < 3e-7, "exp({x})");
            assert!((tanh(x) - x.tanh()).abs() < 3e-7, "tanh({x})");
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 3e-7, "sigmoid({x})");
            let sp = x.max(0.0) + (-x.abs()).exp().ln_1p();
            assert!(rel(ActKind::Softplus.value(x), sp) < 5e-7, "softplus({x})");
            let y = x.abs() * 37.0;
            assert!(rel(sqrt(y), y.sqrt()) < 2e-7 || y == 0.0, "sqrt({y})");
        }
        for (x, want) in [(0.5f32, 0.520_499_9f32), (1.0, 0.842_700_8), (-2.0, -0.995_322_3)] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x})");
        }
    }
}
