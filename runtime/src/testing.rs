//! Finite-difference gradient checks, for kiln's own tests and for anyone writing a layer.
//!
//! [`check_layer`] compares a layer's analytic gradients (parameters and input) with central
//! differences of the scalar `L = Σ r ⊙ forward(x)` for a fixed random `r`; [`check_loss`] does
//! the same for a loss with respect to the predictions (or, fused, the softmax's input).

use rand::{Rng, SeedableRng};

/// The numbers on the line of a reference file that starts with `key` (`key v1 v2 ...`, the
/// format of kiln's generated Keras fixtures), or `None` when no line does.
pub fn reference(text: &str, key: &str) -> Option<Vec<f32>> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(key))?;
    Some(line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(f32::NAN)).collect())
}

/// Copies every weight of `from` into `to`, in traversal order: the same architecture written
/// in two styles (a test helper: it panics when the weights do not line up).
pub fn copy_weights<A: crate::Model, B: crate::Model>(from: &A, to: &mut B) {
    let mut values = Vec::new();
    from.visit_weights(&mut |_, p| values.push(p.value.clone()));
    let mut i = 0;
    to.visit_weights_mut(&mut |p| {
        assert_eq!(p.value.len(), values[i].len(), "weight {i} has another shape");
        p.value.clone_from(&values[i]);
        i += 1;
    });
    assert_eq!(i, values.len(), "the two models hold different numbers of weights");
}

/// Asserts `got` equals `want` within `tol` relative to `max(|want|, 1)`, naming the first
/// value that is not (a test helper: it panics).
pub fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{name}[{i}]: kiln {g}, reference {w}");
    }
}

use crate::kernels::activation::softmax_rows;
use crate::layers::{BackwardOpts, Ctx, Layer};
use crate::losses::Loss;
use crate::random::Stream;

/// Step of the central differences. Large enough that f32 rounding of the objective (about 1e-7
/// relative) stays well below the differences, small enough for the curvature of the functions
/// checked here.
pub const EPS: f64 = 1e-3;

fn close(analytic: f64, numeric: f64, tol: f64) -> bool {
    (analytic - numeric).abs() <= tol * (1.0 + analytic.abs().max(numeric.abs()))
}

/// A training pass whose random draws (dropout masks, noise) are the same every time, so the
/// function being differentiated is fixed.
fn train_ctx(n: usize, stream: &mut Stream) -> Ctx<'_> {
    *stream = Stream::new(42);
    Ctx::new(n, true, stream)
}

fn objective<L: Layer>(layer: &mut L, xs: &[&[f32]], n: usize, r: &[f32]) -> f64 {
    let mut stream = Stream::new(42);
    layer.forward(xs, &mut train_ctx(n, &mut stream));
    layer.output().iter().zip(r).map(|(y, r)| *y as f64 * *r as f64).sum()
}

/// Checks every trainable parameter gradient (up to `per_param` entries of each, spread over the
/// array) and every input gradient of `layer` at inputs `xs` (one slice per input, `n` samples
/// each) in a training pass. Returns the mismatches found.
///
/// This is the check every kiln layer passes; run it on your own layers:
///
/// ```ignore
/// let mut layer = Scale::<4>::new();
/// kiln::testing::check_layer(&mut layer, &[&x], 3, 16, 3e-3)?;
/// ```
pub fn check_layer<L: Layer>(layer: &mut L, xs: &[&[f32]], n: usize, per_param: usize, tol: f64) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut stream = Stream::new(42);
    layer.forward(xs, &mut train_ctx(n, &mut stream));
    let out_len = layer.output().len();
    let r: Vec<f32> = (0..out_len).map(|_| rng.random_range(-1.0..1.0)).collect();
    layer.backward(
        xs,
        &r,
        &mut train_ctx(n, &mut stream),
        BackwardOpts { input_grad: true, accumulate: false, fused_output: false },
    );
    let dxs: Vec<Vec<f32>> = (0..xs.len()).map(|i| layer.input_grad(i).to_vec()).collect();
    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    layer.visit_params(&mut |name, p| grads.push((name.to_string(), p.grad.clone())));
    let mut errors = Vec::new();

    for (slot, (name, grad)) in grads.iter().enumerate() {
        // State (moving statistics) has no gradient.
        if grad.is_empty() {
            continue;
        }
        let stride = (grad.len() / per_param.max(1)).max(1);
        for j in (0..grad.len()).step_by(stride) {
            let nudge = |layer: &mut L, delta: f64| {
                let mut s = 0;
                layer.visit_params_mut(&mut |p| {
                    if s == slot {
                        p.value[j] = (p.value[j] as f64 + delta) as f32;
                    }
                    s += 1;
                });
            };
            nudge(layer, EPS);
            let plus = objective(layer, xs, n, &r);
            nudge(layer, -2.0 * EPS);
            let minus = objective(layer, xs, n, &r);
            nudge(layer, EPS);
            let numeric = (plus - minus) / (2.0 * EPS);
            if !close(grad[j] as f64, numeric, tol) {
                errors.push(format!("{name}[{j}]: analytic {} vs numeric {numeric}", grad[j]));
            }
        }
    }
    for (i, dx) in dxs.iter().enumerate() {
        let mut inputs: Vec<Vec<f32>> = xs.iter().map(|x| x.to_vec()).collect();
        for j in 0..xs[i].len() {
            let mut at = |delta: f64, inputs: &mut Vec<Vec<f32>>| {
                inputs[i][j] = (xs[i][j] as f64 + delta) as f32;
                let views: Vec<&[f32]> = inputs.iter().map(|v| &v[..]).collect();
                objective(layer, &views, n, &r)
            };
            let plus = at(EPS, &mut inputs);
            let minus = at(-EPS, &mut inputs);
            inputs[i][j] = xs[i][j];
            let numeric = (plus - minus) / (2.0 * EPS);
            if !close(dx[j] as f64, numeric, tol) {
                errors.push(format!("input {i}[{j}]: analytic {} vs numeric {numeric}", dx[j]));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Checks `loss`'s gradient with respect to predictions `p` (`n` rows of `width`) against targets
/// `y`. With `fused`, `p` is read as logits `z`, the loss is applied to `softmax(z)`, and the
/// gradient checked is the fused one with respect to `z`.
pub fn check_loss(
    loss: &Loss,
    p: &[f32],
    y: &[f32],
    n: usize,
    width: usize,
    fused: bool,
    tol: f64,
) -> Result<(), String> {
    let value = |z: &[f32]| -> f64 {
        let mut q = z.to_vec();
        if fused {
            softmax_rows(&mut q, width);
        }
        loss.compute(&q, y, n, width, None, false) as f64
    };
    let mut q = p.to_vec();
    if fused {
        softmax_rows(&mut q, width);
    }
    let mut grad = vec![0.0; p.len()];
    loss.compute(&q, y, n, width, Some(&mut grad), fused);
    let mut errors = Vec::new();
    let mut zp = p.to_vec();
    for j in 0..p.len() {
        zp[j] = (p[j] as f64 + EPS) as f32;
        let plus = value(&zp);
        zp[j] = (p[j] as f64 - EPS) as f32;
        let minus = value(&zp);
        zp[j] = p[j];
        let numeric = (plus - minus) / (2.0 * EPS);
        if !close(grad[j] as f64, numeric, tol) {
            errors.push(format!("{}: d/dp[{j}] analytic {} vs numeric {numeric}", loss.name(), grad[j]));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Checks every parameter gradient of a whole model, with several inputs and outputs, against
/// central differences of `L = Σ_k Σ r_k ⊙ output_k` plus the model's own losses (activity
/// penalties, `add_loss` terms; up to `per_param` entries per parameter).
/// Shared layers are checked through every use, since their one parameter array feeds them all.
pub fn check_model<M: crate::Model>(
    m: &mut M,
    xs: &[&[f32]],
    n: usize,
    per_param: usize,
    tol: f64,
) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut stream = Stream::new(42);
    m.run(xs, &mut train_ctx(n, &mut stream));
    let rs: Vec<Vec<f32>> =
        (0..M::OUTPUTS.len()).map(|k| (0..m.output(k).len()).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
    let objective = |m: &mut M| -> f64 {
        let mut stream = Stream::new(42);
        m.run(xs, &mut train_ctx(n, &mut stream));
        rs.iter()
            .enumerate()
            .map(|(k, r)| m.output(k).iter().zip(r).map(|(y, r)| *y as f64 * *r as f64).sum::<f64>())
            .sum::<f64>()
            + m.activity_penalty()
    };
    let dys: Vec<&[f32]> = rs.iter().map(|r| &r[..]).collect();
    let fused = vec![false; rs.len()];
    m.run_backward(xs, &dys, &fused, &mut train_ctx(n, &mut stream));
    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    m.visit_weights(&mut |name, p| grads.push((name.to_string(), p.grad.clone())));
    let mut errors = Vec::new();
    for (slot, (name, grad)) in grads.iter().enumerate() {
        let stride = (grad.len() / per_param.max(1)).max(1);
        for j in (0..grad.len()).step_by(stride) {
            let nudge = |m: &mut M, delta: f64| {
                let mut s = 0;
                m.visit_weights_mut(&mut |p| {
                    if s == slot {
                        p.value[j] = (p.value[j] as f64 + delta) as f32;
                    }
                    s += 1;
                });
            };
            nudge(m, EPS);
            let plus = objective(m);
            nudge(m, -2.0 * EPS);
            let minus = objective(m);
            nudge(m, EPS);
            let numeric = (plus - minus) / (2.0 * EPS);
            if !close(grad[j] as f64, numeric, tol) {
                errors.push(format!("{name}[{j}]: analytic {} vs numeric {numeric}", grad[j]));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}
