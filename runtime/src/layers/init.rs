//! Keras' weight initializers, regularizers and constraints, attached to a layer's weights by
//! name (`Dense(64, kernel_initializer = "he_normal", kernel_regularizer = l2(0.01))` in the
//! macros, or [`configure`] on any layer).

use rand::Rng;

use super::{Layer, Param};

/// Keras' initializers. Fans are Keras' `compute_fans`: a `[in, out]` kernel has fan-in `in` and
/// fan-out `out`; a convolution kernel `[.., c, f]` multiplies both by its receptive field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// U(-l, l), l = √(6 / (fan_in + fan_out)) — Keras' default for kernels.
    GlorotUniform,
    /// Truncated normal, σ = √(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// Truncated normal, σ = √(2 / fan_in).
    HeNormal,
    /// U(-l, l), l = √(6 / fan_in).
    HeUniform,
    /// Truncated normal, σ = √(1 / fan_in).
    LecunNormal,
    /// U(-l, l), l = √(3 / fan_in).
    LecunUniform,
    /// An orthogonal matrix (rows or columns orthonormal), of the weight seen as `[rows, last]`,
    /// times `gain`.
    Orthogonal(f32),
    /// All zeros — Keras' default for biases.
    Zeros,
    /// All ones.
    Ones,
    /// Every value the same.
    Constant(f32),
    /// U(min, max) — Keras' `RandomUniform` (`"uniform"`: U(-0.05, 0.05), the default for
    /// Embedding tables).
    RandomUniform(f32, f32),
    /// N(mean, stddev) — Keras' `RandomNormal` (`"random_normal"`: N(0, 0.05)).
    RandomNormal(f32, f32),
}

impl Initializer {
    /// Every name the macros accept, as Keras spells them.
    pub const NAMES: [&'static str; 13] = [
        "glorot_uniform",
        "glorot_normal",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
        "orthogonal",
        "zeros",
        "ones",
        "constant",
        "uniform",
        "random_uniform",
        "random_normal",
    ];

    /// Fills `p` (its values; its shape gives the fans).
    pub fn fill(&self, p: &mut Param, rng: &mut impl Rng) {
        let shape = p.shape().to_vec();
        let (fan_in, fan_out) = fans(&shape);
        let uniform = |v: &mut [f32], limit: f64, rng: &mut dyn FnMut() -> f64| {
            v.iter_mut().for_each(|x| *x = ((rng() * 2.0 - 1.0) * limit) as f32)
        };
        let mut u01 = || rng.random::<f64>();
        match *self {
            Initializer::GlorotUniform => uniform(&mut p.value, (6.0 / (fan_in + fan_out)).sqrt(), &mut u01),
            Initializer::HeUniform => uniform(&mut p.value, (6.0 / fan_in).sqrt(), &mut u01),
            Initializer::LecunUniform => uniform(&mut p.value, (3.0 / fan_in).sqrt(), &mut u01),
            Initializer::GlorotNormal => truncated(&mut p.value, (2.0 / (fan_in + fan_out)).sqrt(), &mut u01),
            Initializer::HeNormal => truncated(&mut p.value, (2.0 / fan_in).sqrt(), &mut u01),
            Initializer::LecunNormal => truncated(&mut p.value, (1.0 / fan_in).sqrt(), &mut u01),
            Initializer::Orthogonal(gain) => orthogonal(&mut p.value, &shape, gain, &mut u01),
            Initializer::Zeros => p.value.iter_mut().for_each(|v| *v = 0.0),
            Initializer::Ones => p.value.iter_mut().for_each(|v| *v = 1.0),
            Initializer::Constant(c) => p.value.iter_mut().for_each(|v| *v = c),
            Initializer::RandomUniform(lo, hi) => {
                let (lo, hi) = (lo as f64, hi as f64);
                p.value.iter_mut().for_each(|v| *v = (lo + u01() * (hi - lo)) as f32)
            }
            Initializer::RandomNormal(mean, std) => {
                p.value.iter_mut().for_each(|v| *v = (mean as f64 + std as f64 * normal(&mut u01)) as f32)
            }
        }
    }
}

/// Keras' `compute_fans`.
fn fans(shape: &[usize]) -> (f64, f64) {
    let (a, b) = match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [i, o] => (*i, *o),
        [rest @ .., i, o] => {
            let field: usize = rest.iter().product();
            (i * field, o * field)
        }
    };
    (a.max(1) as f64, b.max(1) as f64)
}

/// A standard normal draw (Box–Muller) from uniform draws.
fn normal(u01: &mut dyn FnMut() -> f64) -> f64 {
    let (u, v) = (u01().max(f64::MIN_POSITIVE), u01());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Keras' variance-scaling normal: a normal truncated at two standard deviations, scaled so the
/// truncated distribution has standard deviation `std` (Keras divides by 0.8796…).
fn truncated(v: &mut [f32], std: f64, u01: &mut dyn FnMut() -> f64) {
    let scale = std / 0.879_625_661_034_239_8;
    for x in v {
        let z = loop {
            let z = normal(u01);
            if z.abs() <= 2.0 {
                break z;
            }
        };
        *x = (z * scale) as f32;
    }
}

/// An orthogonal `[rows, cols]` matrix: Gram–Schmidt on a normal matrix, on the side with fewer
/// vectors.
fn orthogonal(v: &mut [f32], shape: &[usize], gain: f32, u01: &mut dyn FnMut() -> f64) {
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let rows = v.len() / cols;
    // Orthonormal vectors of length `len`, `count` of them (count <= len).
    let (count, len) = if rows < cols { (rows, cols) } else { (cols, rows) };
    let mut q = vec![0.0f64; count * len];
    for i in 0..count {
        loop {
            let mut w: Vec<f64> = (0..len).map(|_| normal(u01)).collect();
            for j in 0..i {
                let qj = &q[j * len..(j + 1) * len];
                let d: f64 = w.iter().zip(qj).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(qj).for_each(|(a, b)| *a -= d * b);
            }
            let n = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if n > 1e-6 {
                q[i * len..(i + 1) * len].iter_mut().zip(&w).for_each(|(a, b)| *a = b / n);
                break;
            }
        }
    }
    for r in 0..rows {
        for c in 0..cols {
            // Vectors are rows when rows < cols, columns otherwise.
            let x = if rows < cols { q[r * len + c] } else { q[c * len + r] };
            v[r * cols + c] = (x * gain as f64) as f32;
        }
    }
}

/// Keras' `l1`, `l2` and `l1_l2`: `l1 Σ|w| + l2 Σw²` added to the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    /// Factor of the sum of absolute values.
    pub l1: f32,
    /// Factor of the sum of squares.
    pub l2: f32,
}

impl Regularizer {
    /// The penalty of `w`.
    pub fn penalty(&self, w: &[f32]) -> f64 {
        let (mut a, mut s) = (0.0f64, 0.0f64);
        for &v in w {
            a += v.abs() as f64;
            s += (v * v) as f64;
        }
        self.l1 as f64 * a + self.l2 as f64 * s
    }

    /// Adds the penalty's gradient to `grad`.
    pub fn add_gradient(&self, w: &[f32], grad: &mut [f32]) {
        for (g, &v) in grad.iter_mut().zip(w) {
            *g += self.l1 * v.signum() * (v != 0.0) as u8 as f32 + 2.0 * self.l2 * v;
        }
    }
}

/// Keras' `activity_regularizer` for a layer: the penalty of its last output (divided by the batch
/// size, as Keras 3 does) and its gradient, added through the layer's activation in `backward`.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    regularizer: Option<Regularizer>,
    penalty: f64,
    dy: Vec<f32>,
    dz: Vec<f32>,
}

impl Activity {
    /// Sets (or clears) the regularizer.
    pub fn set(&mut self, regularizer: Option<Regularizer>) {
        self.regularizer = regularizer;
        self.penalty = 0.0;
    }

    /// After the layer's forward pass over `n` samples.
    pub fn forward(&mut self, out: &[f32], n: usize) {
        if let Some(r) = &self.regularizer {
            self.penalty = r.penalty(out) / n.max(1) as f64;
        }
    }

    /// The last pass's penalty (0 without a regularizer).
    pub fn penalty(&self) -> f64 {
        if self.regularizer.is_some() { self.penalty } else { 0.0 }
    }

    /// Adds the penalty's gradient, taken through activation `kind` (output `out`, input `pre`),
    /// to `dz`, the gradient with respect to the activation's input.
    pub fn backward(
        &mut self,
        kind: crate::kernels::ActKind,
        out: &[f32],
        pre: &[f32],
        dz: &mut [f32],
        width: usize,
        n: usize,
    ) {
        let Some(r) = &self.regularizer else { return };
        let inv_n = 1.0 / n.max(1) as f32;
        let g = super::sized(&mut self.dy, out.len());
        g.iter_mut().for_each(|v| *v = 0.0);
        r.add_gradient(out, g);
        g.iter_mut().for_each(|v| *v *= inv_n);
        let t = super::sized(&mut self.dz, out.len());
        crate::kernels::activation::act_backward(kind, out, pre, &self.dy, t, width);
        dz.iter_mut().zip(&self.dz).for_each(|(d, t)| *d += t);
    }
}

/// Keras' weight constraints, applied after every optimizer step. Norms are taken along axis 0
/// (Keras' default): for a Dense kernel `[in, out]`, each unit's incoming weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constraint {
    /// Rescales each vector whose norm exceeds `max_value` down to it (Keras' `max_norm`, 2 by default).
    MaxNorm(f32),
    /// Negative values become 0.
    NonNeg,
    /// Each vector gets norm 1.
    UnitNorm,
}

impl Constraint {
    /// Every name the macros accept.
    pub const NAMES: [&'static str; 3] = ["max_norm", "non_neg", "unit_norm"];

    /// Applies the constraint to `w` of the given shape.
    pub fn apply(&self, w: &mut [f32], shape: &[usize]) {
        if let Constraint::NonNeg = self {
            w.iter_mut().for_each(|v| *v = v.max(0.0));
            return;
        }
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let cols = w.len() / rows;
        for c in 0..cols {
            let norm = (0..rows).map(|r| (w[r * cols + c] as f64).powi(2)).sum::<f64>().sqrt();
            // Keras: w · desired / (ε + norm), with desired = clip(norm, 0, max) or 1.
            let desired = match self {
                Constraint::MaxNorm(m) => norm.clamp(0.0, *m as f64),
                _ => 1.0,
            };
            let scale = (desired / (1e-7 + norm)) as f32;
            (0..rows).for_each(|r| w[r * cols + c] *= scale);
        }
    }
}

/// Sets the initializer, regularizer and constraint of the weight `name` (`kernel`, `bias`) of
/// `layer`; the initializer fills it at once. Unknown names change nothing and return false.
pub fn configure(
    layer: &mut impl Layer,
    name: &str,
    init: Option<Initializer>,
    regularizer: Option<Regularizer>,
    constraint: Option<Constraint>,
    rng: &mut impl Rng,
) -> bool {
    let mut at = None;
    let mut i = 0;
    layer.visit_params(&mut |n, _| {
        if n == name {
            at = Some(i);
        }
        i += 1;
    });
    let Some(at) = at else { return false };
    let mut i = 0;
    layer.visit_params_mut(&mut |p| {
        if i == at {
            if let Some(init) = init {
                init.fill(p, rng);
            }
            p.regularizer = regularizer;
            p.constraint = constraint;
            p.apply_constraint();
        }
        i += 1;
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stats(init: Initializer, shape: &[usize]) -> (f64, f64, Vec<f32>) {
        let mut p = Param::zeros(shape);
        init.fill(&mut p, &mut rand::rngs::StdRng::seed_from_u64(3));
        let n = p.value.len() as f64;
        let mean = p.value.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = p.value.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt(), p.value)
    }

    /// Each initializer's standard deviation is Keras' (variance scaling), within sampling error.
    #[test]
    fn initializers_have_kerass_spread() {
        let (fi, fo) = (200.0f64, 300.0f64);
        let cases = [
            (Initializer::GlorotUniform, (2.0 / (fi + fo)).sqrt()),
            (Initializer::GlorotNormal, (2.0 / (fi + fo)).sqrt()),
            (Initializer::HeNormal, (2.0 / fi).sqrt()),
            (Initializer::HeUniform, (2.0 / fi).sqrt()),
            (Initializer::LecunNormal, (1.0 / fi).sqrt()),
            (Initializer::LecunUniform, (1.0 / fi).sqrt()),
        ];
        for (init, want) in cases {
            let (mean, std, v) = stats(init, &[200, 300]);
            assert!(mean.abs() < 0.01 * want * 10.0, "{init:?} mean {mean}");
            assert!((std / want - 1.0).abs() < 0.02, "{init:?}: std {std}, Keras {want}");
            if matches!(init, Initializer::GlorotNormal | Initializer::HeNormal | Initializer::LecunNormal) {
                let cut = 2.0 * want / 0.879_625_661_034_239_8 + 1e-6;
                assert!(v.iter().all(|x| (*x as f64).abs() <= cut), "{init:?} is truncated at 2σ");
            }
        }
        // A 3x3 convolution from 16 to 32 channels: fan-in 144.
        let (_, std, _) = stats(Initializer::HeNormal, &[3, 3, 16, 32]);
        assert!((std / (2.0f64 / 144.0).sqrt() - 1.0).abs() < 0.03, "{std}");
    }

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        for shape in [[6usize, 4], [4, 6]] {
            let (_, _, v) = stats(Initializer::Orthogonal(1.0), &shape);
            let (r, c) = (shape[0], shape[1]);
            let small = r.min(c);
            let dot = |a: usize, b: usize| -> f64 {
                if r >= c {
                    (0..r).map(|i| v[i * c + a] as f64 * v[i * c + b] as f64).sum()
                } else {
                    (0..c).map(|j| v[a * c + j] as f64 * v[b * c + j] as f64).sum()
                }
            };
            for a in 0..small {
                for b in 0..small {
                    let want = (a == b) as u8 as f64;
                    assert!((dot(a, b) - want).abs() < 1e-5, "{shape:?} ({a}, {b}): {}", dot(a, b));
                }
            }
        }
    }

    #[test]
    fn constraints_match_kerass_formulas() {
        let mut w = [3.0f32, 0.1, 4.0, -0.2];
        Constraint::MaxNorm(2.0).apply(&mut w, &[2, 2]);
        // Column 0 has norm 5 → 2; column 1 (norm ≈ 0.2236) is left (up to ε).
        assert!((w[0] - 1.2).abs() < 1e-5 && (w[2] - 1.6).abs() < 1e-5, "{w:?}");
        assert!((w[1] - 0.1).abs() < 1e-5, "{w:?}");
        let mut u = [3.0f32, 4.0];
        Constraint::UnitNorm.apply(&mut u, &[2, 1]);
        assert!((u[0] - 0.6).abs() < 1e-6 && (u[1] - 0.8).abs() < 1e-6);
        let mut n = [-1.0f32, 2.0];
        Constraint::NonNeg.apply(&mut n, &[2]);
        assert_eq!(n, [0.0, 2.0]);
    }

    #[test]
    fn regularizer_gradient_is_the_penalty_derivative() {
        let r = Regularizer { l1: 0.03, l2: 0.02 };
        let w = [0.5f32, -1.5, 2.0];
        let mut g = [0.0f32; 3];
        r.add_gradient(&w, &mut g);
        for i in 0..3 {
            let h = 1e-3f32;
            let (mut a, mut b) = (w, w);
            a[i] += h;
            b[i] -= h;
            let fd = (r.penalty(&a) - r.penalty(&b)) / (2.0 * h as f64);
            assert!((fd - g[i] as f64).abs() < 1e-4, "{i}: {fd} vs {}", g[i]);
        }
        assert!((r.penalty(&w) - (0.03 * 4.0 + 0.02 * 6.5)).abs() < 1e-7);
    }
}
