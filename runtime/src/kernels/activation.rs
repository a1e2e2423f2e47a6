//! Activation functions: each one's value `f` and derivative `df` side by side.
//!
//! Constants follow Keras 3's `keras.activations`: `leaky_relu` has negative slope 0.2, `elu`
//! alpha 1.0, `selu` the self-normalising constants, `gelu` is the exact (erf) form.

pub use crate::infer::ActKind;
use crate::infer::math::{LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE, SQRT_2_OVER_PI};

impl ActKind {
    /// Every activation, in the order of [`ActKind::NAMES`].
    pub const ALL: [ActKind; 12] = [
        ActKind::Linear,
        ActKind::Relu,
        ActKind::Sigmoid,
        ActKind::Tanh,
        ActKind::Softmax,
        ActKind::Gelu,
        ActKind::Elu,
        ActKind::Selu,
        ActKind::LeakyRelu,
        ActKind::Softplus,
        ActKind::Swish,
        ActKind::GeluApproximate,
    ];

    /// Keras' names for the activations (`gelu_approximate` is Keras' `gelu` with
    /// `approximate=True`).
    pub const NAMES: [&'static str; 12] = [
        "linear",
        "relu",
        "sigmoid",
        "tanh",
        "softmax",
        "gelu",
        "elu",
        "selu",
        "leaky_relu",
        "softplus",
        "swish",
        "gelu_approximate",
    ];

    /// Keras' name of this activation.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the derivative needs the activation's input; the others recover it from the output,
    /// so layers keep only one buffer for them.
    pub fn needs_input(self) -> bool {
        matches!(self, ActKind::Gelu | ActKind::GeluApproximate | ActKind::Softplus | ActKind::Swish)
    }

    /// `f(x)` for one value (not softmax, which needs the whole row).
    #[inline(always)]
    pub fn f(self, x: f32) -> f32 {
        match self {
            ActKind::Linear | ActKind::Softmax => x,
            ActKind::Relu => x.max(0.0),
            ActKind::Sigmoid => sigmoid(x),
            ActKind::Tanh => x.tanh(),
            ActKind::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            ActKind::GeluApproximate => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh()),
            ActKind::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            ActKind::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * x.exp_m1()
                }
            }
            ActKind::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    LEAKY_SLOPE * x
                }
            }
            ActKind::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            ActKind::Swish => x * sigmoid(x),
        }
    }

    /// `f'(x)` given the output `y = f(x)` and, where [`needs_input`](Self::needs_input), the input `x`.
    #[inline(always)]
    pub fn df(self, x: f32, y: f32) -> f32 {
        match self {
            ActKind::Linear | ActKind::Softmax => 1.0,
            ActKind::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            ActKind::Sigmoid => y * (1.0 - y),
            ActKind::Tanh => 1.0 - y * y,
            ActKind::GeluApproximate => {
                let t = (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x)
            }
            ActKind::Gelu => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                cdf + x * pdf
            }
            ActKind::Elu => {
                if y > 0.0 {
                    1.0
                } else {
                    y + 1.0
                }
            }
            // At exactly 0 the slope is `scale`, as in TensorFlow's SeluGrad (inputs below 0 take
            // the other branch).
            ActKind::Selu => {
                if y >= 0.0 {
                    SELU_SCALE
                } else {
                    y + SELU_SCALE * SELU_ALPHA
                }
            }
            ActKind::LeakyRelu => {
                if y > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
            ActKind::Softplus => sigmoid(x),
            ActKind::Swish => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
        }
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The error function (Abramowitz & Stegun 7.1.26 evaluated in f64; absolute error < 1.5e-7,
/// below f32's resolution around 1).
#[inline]
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    (if x >= 0.0 { y } else { -y }) as f32
}

/// Applies `y = f(z + bias)` row by row (`cols` values per row), in place in `y`.
///
/// When `pre` is given, it receives `z + bias` (for activations whose derivative needs the input).
pub fn bias_act(kind: ActKind, y: &mut [f32], pre: Option<&mut [f32]>, bias: Option<&[f32]>, cols: usize) {
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(cols) {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
    if let Some(pre) = pre {
        pre.copy_from_slice(y);
    }
    match kind {
        ActKind::Linear => {}
        ActKind::Softmax => softmax_rows(y, cols),
        // One monomorphised loop per activation, so the simple ones vectorise.
        ActKind::Relu => map(y, |x| ActKind::Relu.f(x)),
        ActKind::Sigmoid => map(y, |x| ActKind::Sigmoid.f(x)),
        ActKind::Tanh => map(y, |x| ActKind::Tanh.f(x)),
        ActKind::Gelu => map(y, |x| ActKind::Gelu.f(x)),
        ActKind::GeluApproximate => map(y, |x| ActKind::GeluApproximate.f(x)),
        ActKind::Elu => map(y, |x| ActKind::Elu.f(x)),
        ActKind::Selu => map(y, |x| ActKind::Selu.f(x)),
        ActKind::LeakyRelu => map(y, |x| ActKind::LeakyRelu.f(x)),
        ActKind::Softplus => map(y, |x| ActKind::Softplus.f(x)),
        ActKind::Swish => map(y, |x| ActKind::Swish.f(x)),
    }
}

#[inline(always)]
fn map(y: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in y {
        *v = f(*v);
    }
}

/// Numerically stable softmax over each row of `cols` values, in place.
pub fn softmax_rows(y: &mut [f32], cols: usize) {
    for row in y.chunks_exact_mut(cols) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// `dz = f'(z) ⊙ dy` (softmax: the Jacobian-vector product `y ⊙ (dy - Σ dy·y)` per row).
///
/// `pre` is the activation's input, required when [`ActKind::needs_input`]; `y` its output.
pub fn act_backward(kind: ActKind, y: &[f32], pre: &[f32], dy: &[f32], dz: &mut [f32], cols: usize) {
    match kind {
        ActKind::Linear => dz.copy_from_slice(dy),
        ActKind::Softmax => {
            for ((yr, gr), dr) in y.chunks_exact(cols).zip(dy.chunks_exact(cols)).zip(dz.chunks_exact_mut(cols)) {
                let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                for ((d, yv), gv) in dr.iter_mut().zip(yr).zip(gr) {
                    *d = yv * (gv - dot);
                }
            }
        }
        k if k.needs_input() => {
            for ((d, (x, yv)), g) in dz.iter_mut().zip(pre.iter().zip(y)).zip(dy) {
                *d = k.df(*x, *yv) * g;
            }
        }
        ActKind::Relu => zip_df(y, dy, dz, |y| ActKind::Relu.df(0.0, y)),
        ActKind::Sigmoid => zip_df(y, dy, dz, |y| ActKind::Sigmoid.df(0.0, y)),
        ActKind::Tanh => zip_df(y, dy, dz, |y| ActKind::Tanh.df(0.0, y)),
        k => zip_df(y, dy, dz, |y| k.df(0.0, y)),
    }
}

#[inline(always)]
fn zip_df(y: &[f32], dy: &[f32], dz: &mut [f32], df: impl Fn(f32) -> f32) {
    for ((d, yv), g) in dz.iter_mut().zip(y).zip(dy) {
        *d = df(*yv) * g;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn selu_slope_at_zero_is_scale_as_in_keras() {
        assert_eq!(ActKind::Selu.df(0.0, ActKind::Selu.f(0.0)), SELU_SCALE);
        assert!((ActKind::Selu.df(-1e-6, ActKind::Selu.f(-1e-6)) - SELU_SCALE * SELU_ALPHA).abs() < 1e-4);
    }

    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3)] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn names_follow_keras_and_index_order() {
        for (k, n) in ActKind::ALL.iter().zip(ActKind::NAMES) {
            assert_eq!(k.name(), n);
        }
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let mut y = [1000.0, 1000.0, -1000.0];
        softmax_rows(&mut y, 3);
        assert!((y[0] - 0.5).abs() < 1e-6 && y[2] == 0.0);
    }
}
