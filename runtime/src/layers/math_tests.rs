//! The user-math layers' own tests: thread-count independence and derivatives.

use super::*;

/// A large tensor is split across the threads in parts fixed by its length: the same values
/// on one thread and on two.
#[test]
fn a_large_elementwise_pass_is_the_same_on_any_thread_count() {
    let x: Vec<f32> = (0..200_003).map(|i| (i as f32 * 0.37).sin()).collect();
    let dy: Vec<f32> = (0..200_003).map(|i| (i as f32 * 0.11).cos()).collect();
    let run = |threads: usize| {
        crate::kernels::parallel::set_threads(threads);
        let mut stream = crate::random::Stream::new(0);
        let mut ctx = Ctx::new(1, true, &mut stream);
        let mut u = Unary::new(UnaryOp::Exp);
        u.forward(&[&x], &mut ctx);
        u.backward(&[&x], &dy, &mut ctx, BackwardOpts { input_grad: true, ..Default::default() });
        (u.output().to_vec(), u.input_grad(0).to_vec())
    };
    let (one, two) = (run(1), run(2));
    crate::kernels::parallel::set_threads(2);
    assert_eq!(one, two);
    // The vectorised exp: within 4 units in the last place of the standard library's.
    assert!(one.0.iter().zip(&x).all(|(y, x)| (y - x.exp()).abs() <= 4.0 * f32::EPSILON * x.exp()));
}

/// A large broadcast (a `[n, 1]` by `[n, 8]` product) and a large element-wise one split
/// across the threads give the same values on one thread and on two.
#[test]
fn a_large_broadcast_is_the_same_on_any_thread_count() {
    let n = 20_000;
    let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
    let b: Vec<f32> = (0..n * 8).map(|i| (i as f32 * 0.7).cos()).collect();
    let dy: Vec<f32> = (0..n * 8).map(|i| (i as f32 * 0.1).sin()).collect();
    let run = |threads: usize, a: &[f32], b: &[f32], sa: &[usize], sb: &[usize]| {
        crate::kernels::parallel::set_threads(threads);
        let mut stream = crate::random::Stream::new(0);
        let mut ctx = Ctx::new(n, true, &mut stream);
        let mut op = Broadcast::new(BinaryOp::Multiply, sa, sb);
        op.forward(&[a, b], &mut ctx);
        op.backward(&[a, b], &dy, &mut ctx, BackwardOpts { input_grad: true, ..Default::default() });
        (op.output().to_vec(), op.input_grad(0).to_vec(), op.input_grad(1).to_vec())
    };
    let (one, two) = (run(1, &a, &b, &[1], &[8]), run(2, &a, &b, &[1], &[8]));
    assert_eq!(one, two);
    assert_eq!(one.0[8 * 7 + 3], a[7] * b[8 * 7 + 3]);
    let (one, two) = (run(1, &b, &b, &[8], &[8]), run(2, &b, &b, &[8], &[8]));
    crate::kernels::parallel::set_threads(2);
    assert_eq!(one, two);
}

/// Large reductions (over a long axis, and over a short one with many outputs) and a fused
/// chain give the same values on one thread and on two.
#[test]
fn large_reductions_and_chains_are_the_same_on_any_thread_count() {
    let (n, shape) = (64, [40usize, 50]);
    let x: Vec<f32> = (0..n * 2000).map(|i| (i as f32 * 0.013).sin() * 3.0).collect();
    let dy: Vec<f32> = (0..n * 2000).map(|i| (i as f32 * 0.07).cos()).collect();
    fn run<L: Layer>(threads: usize, layer: &mut L, x: &[f32], dy: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        crate::kernels::parallel::set_threads(threads);
        let mut stream = crate::random::Stream::new(0);
        let mut ctx = Ctx::new(n, true, &mut stream);
        layer.forward(&[x], &mut ctx);
        let g = &dy[..layer.output().len()];
        layer.backward(&[x], g, &mut ctx, BackwardOpts { input_grad: true, ..Default::default() });
        (layer.output().to_vec(), layer.input_grad(0).to_vec())
    }
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::LogSumExp] {
        for axis in [0, 1] {
            let reduce = || Reduce::new(op, &shape, axis);
            let (one, two) = (run(1, &mut reduce(), &x, &dy, n), run(2, &mut reduce(), &x, &dy, n));
            assert_eq!(one, two, "{op:?} over axis {axis}");
        }
    }
    let chain = || Unary::chain(&[UnaryOp::Scale(0.5), UnaryOp::Exp, UnaryOp::Shift(1.0)]);
    let (one, two) = (run(1, &mut chain(), &x, &dy, n), run(2, &mut chain(), &x, &dy, n));
    crate::kernels::parallel::set_threads(2);
    assert_eq!(one, two);
    assert!(one.0.iter().zip(&x).all(|(y, x)| (y - ((x * 0.5).exp() + 1.0)).abs() <= 8.0 * f32::EPSILON * y));
}

/// Each function's derivative against a central difference, at points inside its domain.
#[test]
fn every_derivative_is_the_slope_of_its_function() {
    let ops = [
        UnaryOp::Negative,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Abs,
        UnaryOp::Scale(2.5),
        UnaryOp::Shift(-0.25),
        UnaryOp::SubtractFrom(1.5),
        UnaryOp::DivideBy(4.0),
        UnaryOp::Reciprocal(2.0),
        UnaryOp::Power(1.5),
        UnaryOp::Clip(-0.5, 0.7),
        UnaryOp::Maximum(0.5),
        UnaryOp::Minimum(1.2),
    ];
    for op in ops {
        for x in [0.3f32, 0.9, 1.7] {
            let h = 1e-3f64;
            let f = |x: f64| op.f(x as f32) as f64;
            let num = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h);
            let ana = op.df(x, op.f(x)) as f64;
            assert!((num - ana).abs() <= 2e-3 * num.abs().max(1.0), "{op:?} at {x}: {ana} against {num}");
        }
    }
}

#[test]
fn a_middle_axis_reduces_between_the_outer_and_inner_axes() {
    // One sample of shape [2, 3, 2], reduced over its axis 1.
    let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let mut r = Reduce::new(ReduceOp::Sum, &[2, 3, 2], 1);
    let mut s = crate::random::Stream::new(0);
    r.forward(&[&x], &mut Ctx::new(1, false, &mut s));
    assert_eq!(r.output(), &[6.0, 9.0, 24.0, 27.0]);
}
