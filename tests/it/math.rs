//! User math in `#[kiln::call]` bodies: every element-wise function and reduction against Keras
//! 3 (`keras.ops`, values and gradients, `tests/fixtures/keras/math.txt` from
//! `examples/keras/math_reference.py`), gradient-checked alone and composed inside models, and a
//! model using them trains.

use kiln::ndarray::{Array2, Array3};
use kiln::prelude::*;
use kiln::testing::{assert_close, check_layer, check_model};
use kiln::{
    BackwardOpts, BinaryOp, Broadcast, Ctx, Layer, MatMul, Reduce, ReduceOp, SoftmaxAxis, Stream, Unary, UnaryOp,
};

fn reference(key: &str) -> Vec<f32> {
    let text = include_str!("../fixtures/keras/math.txt");
    kiln::testing::reference(text, key).unwrap_or_else(|| panic!("no reference line `{key}`"))
}

/// One case of the fixture against Keras (values and gradients), then the gradient check, for
/// inputs of one sample shape.
fn check<L: Layer>(case: &str, mut layer: L, shape: &[usize]) {
    check_shapes(case, &mut layer, &[shape, shape]);
}

/// [`check`] with each input's sample shape (`shapes[1]` for a second input).
fn check_shapes<L: Layer>(case: &str, layer: &mut L, shapes: &[&[usize]; 2]) {
    let text = include_str!("../fixtures/keras/math.txt");
    let x = reference(&format!("{case}.x"));
    let b = kiln::testing::reference(text, &format!("{case}.b"));
    let xs: Vec<&[f32]> = std::iter::once(&x[..]).chain(b.as_deref()).collect();
    let mut stream = Stream::new(0);
    layer.forward(&xs, &mut Ctx::new(2, true, &mut stream));
    assert_close(&format!("{case}.out"), layer.output(), &reference(&format!("{case}.out")), 1e-5);
    let dy = reference(&format!("{case}.dy"));
    let opts = BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
    layer.backward(&xs, &dy, &mut Ctx::new(2, true, &mut stream), opts);
    assert_close(&format!("{case}.dx"), layer.input_grad(0), &reference(&format!("{case}.dx")), 1e-5);
    if b.is_some() {
        assert_close(&format!("{case}.db"), layer.input_grad(1), &reference(&format!("{case}.db")), 1e-5);
    }
    // Away from the kinks (abs at 0, clip's bounds) and inside every domain (log, sqrt, 1/x).
    let size = |s: &[usize]| s.iter().product::<usize>();
    let x: Vec<f32> = (0..2 * size(shapes[0])).map(|i| 0.5625 + ((i * 37) % 23) as f32 / 20.0).collect();
    let b: Vec<f32> = (0..2 * size(shapes[1])).map(|i| 0.6 + ((i * 11) % 7) as f32 / 5.0).collect();
    let xs: Vec<&[f32]> = if xs.len() == 2 { vec![&x, &b] } else { vec![&x] };
    check_layer(layer, &xs, 2, 12, 2e-2).unwrap_or_else(|e| panic!("{case}: {e}"));
}

#[test]
fn every_op_matches_keras_and_passes_the_gradient_check() {
    let s = [3, 4];
    for (case, op) in [
        ("exp", UnaryOp::Exp),
        ("log", UnaryOp::Log),
        ("sqrt", UnaryOp::Sqrt),
        ("square", UnaryOp::Square),
        ("abs", UnaryOp::Abs),
        ("negative", UnaryOp::Negative),
        ("clip", UnaryOp::Clip(-0.5, 0.7)),
        ("power", UnaryOp::Power(1.5)),
        ("scale", UnaryOp::Scale(2.5)),
        ("shift", UnaryOp::Shift(0.25)),
        ("rsub", UnaryOp::SubtractFrom(1.5)),
        ("rdiv", UnaryOp::Reciprocal(2.0)),
        ("div_scalar", UnaryOp::DivideBy(4.0)),
        ("maximum_scalar", UnaryOp::Maximum(0.2)),
        ("minimum_scalar", UnaryOp::Minimum(-0.1)),
    ] {
        check(case, Unary::new(op), &s);
    }
    check("divide", Broadcast::new(BinaryOp::Divide, &s, &s), &s);
    // Keras' axes count the batch: axis 1 is a sample's axis 0.
    for (case, op, axis) in [
        ("sum1", ReduceOp::Sum, 0),
        ("sum2k", ReduceOp::Sum, 1),
        ("mean_last_k", ReduceOp::Mean, 1),
        ("max1", ReduceOp::Max, 0),
        ("min_last", ReduceOp::Min, 1),
        ("lse2k", ReduceOp::LogSumExp, 1),
        ("lse1", ReduceOp::LogSumExp, 0),
    ] {
        check(case, Reduce::new(op, &s, axis), &s);
    }
    check("mean1_rank3", Reduce::new(ReduceOp::Mean, &[3, 4, 2], 1), &[3, 4, 2]);
    // Broadcasting: per sample [4, 1] * [1, 5], [3, 4] / [3, 1], [3, 4] + [4].
    for (case, op, a, b) in [
        ("bcast_mul", BinaryOp::Multiply, &[4usize, 1][..], &[1usize, 5][..]),
        ("bcast_div", BinaryOp::Divide, &[3, 4], &[3, 1]),
        ("bcast_add_rank", BinaryOp::Add, &[3, 4], &[4]),
    ] {
        check_shapes(case, &mut Broadcast::new(op, a, b), &[a, b]);
    }
    // Keras' axis 1 of a batch of [3, 4] samples is the sample's axis 0, the batch's middle.
    check("softmax_mid", SoftmaxAxis::new(false, &s, 0), &s);
    check("log_softmax_mid", SoftmaxAxis::new(true, &s, 0), &s);
    check_shapes("matmul_tb", &mut MatMul::new(&[3, 4], &[5, 4], false, true), &[&[3, 4], &[5, 4]]);
    check_shapes("matmul_ta", &mut MatMul::new(&[4, 3], &[4, 5], true, false), &[&[4, 3], &[4, 5]]);
    // Leading axes that broadcast: [2, 3, 4] by [1, 4, 5], and by [4, 5].
    let (a, b1, b0) = (&[2, 3, 4][..], &[1, 4, 5][..], &[4, 5][..]);
    check_shapes("matmul_bcast", &mut MatMul::new(a, b1, false, false), &[a, b1]);
    check_shapes("matmul_bcast_rank", &mut MatMul::new(a, b0, false, false), &[a, b0]);
    // Keras' transpose (0, 3, 1, 4, 2) of samples of rank 4.
    let s4 = [2, 3, 4, 5];
    check_shapes("transpose_rank4", &mut kiln::Permute::new(&s4, &[2, 0, 3, 1]), &[&s4, &s4]);
}

#[kiln::model]
pub struct Mathy {
    inp: Dense<6, 8, Tanh>,
    out: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl Mathy {
    fn call(&self, x: Input<6>) -> Output<3> {
        let h = self.inp(x);
        let z = exp(0.5 * h) - h / 4.0 + square(h) * 0.1;
        let s = sqrt(square(z) + 1.0);
        let r = clip(s, 0.0, 3.0) / (abs(h) + 1.0);
        let p = pow(r + 0.5, 1.5) - log(s) + 2.0 / (s + 1.0) - (1.0 - negative(h)) + maximum(h, 0.1) - minimum(0.3, z);
        self.out(-p)
    }
}

#[kiln::model]
pub struct Pooled {
    proj: Dense<4, 5, Tanh>,
    head: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl Pooled {
    fn call(&self, x: Input<3, 4>) -> Output<2> {
        let h = self.proj(x);
        let m = mean(h, axis = 1) + max(h, 1) - min(h, axis = -2) + logsumexp(h, axis = 1) * 0.5;
        let k = sum(h, axis = 2, keepdims = true);
        self.head(concatenate([m, flatten(k)]))
    }
}

/// The identity on `[3, 4]` samples (the Dense is set to pass its input through), then math.
macro_rules! identity_then {
    ($name:ident, |$x:ident| $body:expr) => {
        #[kiln::model]
        pub struct $name {
            id: Dense<4, 4>,
        }

        #[kiln::call]
        impl $name {
            fn call(&self, x: Input<3, 4>) -> Output<3, 4> {
                let $x = self.id(x);
                $body
            }
        }
    };
}

identity_then!(LogSoftmax, |x| x - logsumexp(x, axis = -1, keepdims = true));
identity_then!(SoftmaxMiddle, |x| softmax(x, axis = 1));

#[kiln::model]
pub struct SliceConcat {
    id: Dense<4, 4>,
}

#[kiln::call]
impl SliceConcat {
    fn call(&self, x: Input<3, 4>) -> Output<3, 3> {
        let x = self.id(x);
        concatenate([slice(x, axis = -1, start = 0, end = 2), slice(x, 2, 3, 4)], axis = -1)
    }
}

#[kiln::model]
pub struct ConcatMiddle {
    id: Dense<4, 4>,
}

#[kiln::call]
impl ConcatMiddle {
    fn call(&self, a: Input<3, 4>, b: Input<2, 4>) -> Output<5, 4> {
        concatenate([self.id(a), self.id(b)], axis = 1)
    }
}

/// The identity weights of the `id` Dense of the models above.
fn identity<M: Model>(m: &mut M) {
    m.set_weight("id.kernel", &Array2::from_shape_fn((4, 4), |(i, j)| (i == j) as u8 as f32)).unwrap();
    m.set_weight("id.bias", &kiln::ndarray::Array1::<f32>::zeros(4)).unwrap();
}

#[test]
fn softmax_on_a_middle_axis_slices_and_concatenation_match_keras() {
    let x = Array3::from_shape_vec((2, 3, 4), reference("softmax_mid.x")).unwrap();
    let mut m = SoftmaxMiddle::new();
    identity(&mut m);
    assert_close("softmax_mid", m.predict(&x).unwrap().as_slice().unwrap(), &reference("softmax_mid.out"), 1e-5);
    let x = Array3::from_shape_vec((2, 3, 4), reference("slice_concat.x")).unwrap();
    let mut m = SliceConcat::new();
    identity(&mut m);
    assert_close("slice_concat", m.predict(&x).unwrap().as_slice().unwrap(), &reference("slice_concat.out"), 1e-5);
    let flat: Vec<f32> = x.iter().copied().collect();
    check_model(&mut m, &[&flat], 2, 12, 2e-2).unwrap();
    let a = Array3::from_shape_vec((2, 3, 4), reference("concat_mid.x")).unwrap();
    let b = Array3::from_shape_vec((2, 2, 4), reference("concat_mid.b")).unwrap();
    let mut m = ConcatMiddle::new();
    identity(&mut m);
    assert_close("concat_mid", m.predict((&a, &b)).unwrap().as_slice().unwrap(), &reference("concat_mid.out"), 1e-5);
    let (fa, fb): (Vec<f32>, Vec<f32>) = (a.iter().copied().collect(), b.iter().copied().collect());
    check_model(&mut m, &[&fa, &fb], 2, 12, 2e-2).unwrap();
}
identity_then!(L2Normalize, |x| x / sqrt(sum(square(x), axis = -1, keepdims = true)));

#[test]
fn log_softmax_and_l2_normalize_written_as_math_match_keras() {
    let x = reference("log_softmax.x");
    let identity = Array2::from_shape_fn((4, 4), |(i, j)| (i == j) as u8 as f32);
    let xs = Array3::from_shape_vec((2, 3, 4), x).unwrap();
    let mut m = LogSoftmax::new();
    m.set_weight("id.kernel", &identity).unwrap();
    m.set_weight("id.bias", &kiln::ndarray::Array1::<f32>::zeros(4)).unwrap();
    let p = m.predict(&xs).unwrap();
    assert_close("log_softmax", p.as_slice().unwrap(), &reference("log_softmax.out"), 1e-5);
    let flat: Vec<f32> = xs.iter().copied().collect();
    check_model(&mut m, &[&flat], 2, 12, 2e-2).unwrap();

    let xs = Array3::from_shape_vec((2, 3, 4), reference("l2_normalize.x")).unwrap();
    let mut m = L2Normalize::new();
    m.set_weight("id.kernel", &identity).unwrap();
    m.set_weight("id.bias", &kiln::ndarray::Array1::<f32>::zeros(4)).unwrap();
    let p = m.predict(&xs).unwrap();
    assert_close("l2_normalize", p.as_slice().unwrap(), &reference("l2_normalize.out"), 1e-5);
    let flat: Vec<f32> = xs.iter().copied().collect();
    check_model(&mut m, &[&flat], 2, 12, 2e-2).unwrap();
}

#[test]
fn stop_gradient_passes_values_forward_and_nothing_back() {
    let mut l = Unary::new(UnaryOp::StopGradient);
    let x = [0.5f32, -1.0, 2.0];
    let mut stream = Stream::new(0);
    l.forward(&[&x], &mut Ctx::new(1, true, &mut stream));
    assert_eq!(l.output(), &x);
    let opts = BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
    l.backward(&[&x], &[1.0, 1.0, 1.0], &mut Ctx::new(1, true, &mut stream), opts);
    assert_eq!(l.input_grad(0), &[0.0, 0.0, 0.0]);
}

#[test]
fn models_written_with_math_pass_the_gradient_check() {
    let x: Vec<f32> = (0..3 * 6).map(|i| ((i * 29) % 17) as f32 / 8.0 - 1.0).collect();
    check_model(&mut Mathy::with_seed(3), &[&x], 3, 12, 2e-2).unwrap();
    let x: Vec<f32> = (0..3 * 12).map(|i| ((i * 13) % 19) as f32 / 9.0 - 1.0).collect();
    check_model(&mut Pooled::with_seed(5), &[&x], 3, 12, 2e-2).unwrap();
    let s = Pooled::new().summary_string();
    assert!(s.contains("Total params: 43"), "{s}");
}

#[test]
fn a_model_with_reductions_learns_which_step_is_largest() {
    // Three steps of four features; the class is whether the first step has the largest sum.
    let n = 256;
    let x = Array3::from_shape_fn((n, 3, 4), |(i, t, f)| (((i * 7 + t * 5 + f * 3) % 11) as f32 - 5.0) / 5.0);
    let y = Array2::from_shape_fn((n, 2), |(i, c)| {
        let sums: Vec<f32> = (0..3).map(|t| (0..4).map(|f| x[[i, t, f]]).sum()).collect();
        let first = sums[0] >= sums[1] && sums[0] >= sums[2];
        (first == (c == 1)) as u8 as f32
    });
    let mut m = Pooled::with_seed(1);
    m.compile("categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 20, verbose: 0, ..Fit::default() }).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss[loss.len() - 1] < 0.8 * loss[0], "the loss went from {} to {}", loss[0], loss[loss.len() - 1]);
}

/// Keras' LayerNormalization written as math: a user layer's own weights (`Weight`, Keras'
/// `add_weight`) and its `call`.
#[kiln::model]
pub struct MathNorm {
    proj: Dense<6, 8, Tanh>,
    gamma: Weight<8, kiln::Ones>,
    beta: Weight<8>,
    head: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl MathNorm {
    fn call(&self, x: Input<6>) -> Output<3> {
        let h = self.proj(x);
        let c = h - mean(h, axis = -1, keepdims = true);
        let var = mean(square(c), axis = -1, keepdims = true);
        self.head(c / sqrt(var + 0.001) * self.gamma + self.beta)
    }
}

sequential! {
    pub struct BuiltinNorm: [6] {
        Dense(8, activation = tanh),
        LayerNormalization,
        Dense(3, activation = softmax),
    }
}

#[test]
fn layer_normalization_written_as_math_is_the_built_in_layer() {
    let mut math = MathNorm::with_seed(4);
    let mut built = BuiltinNorm::with_seed(9);
    // Scale and shift away from their initial values, so both are exercised.
    let n = 16;
    let x = Array2::from_shape_fn((n, 6), |(i, j)| ((i * 7 + j * 5) % 13) as f32 / 6.0 - 1.0);
    let y = Array2::from_shape_fn((n, 3), |(i, c)| (i % 3 == c) as u8 as f32);
    built
        .set_weight("layer_normalization.gamma", &kiln::ndarray::Array1::from_shape_fn(8, |i| 0.5 + i as f32 / 8.0))
        .unwrap();
    built
        .set_weight("layer_normalization.beta", &kiln::ndarray::Array1::from_shape_fn(8, |i| i as f32 / 10.0 - 0.3))
        .unwrap();
    kiln::testing::copy_weights(&built, &mut math);
    let (pm, pb) = (math.predict(&x).unwrap(), built.predict(&x).unwrap());
    assert_close("predictions", pm.as_slice().unwrap(), pb.as_slice().unwrap(), 1e-5);
    let loss = Loss::CategoricalCrossentropy;
    let (lm, gm) = math.loss_and_grads(&x, &y, &loss).unwrap();
    let (lb, gb) = built.loss_and_grads(&x, &y, &loss).unwrap();
    assert!((lm - lb).abs() <= 1e-5 * lb.abs().max(1.0), "loss {lm} against {lb}");
    assert_eq!(gm.iter().count(), 6, "kernel, bias, gamma, beta, kernel, bias");
    assert_eq!(gm.iter().count(), gb.iter().count());
    for ((nm, a), (nb, b)) in gm.iter().zip(gb.iter()) {
        assert_close(&format!("{nm} against {nb}"), a, b, 1e-5);
    }
    assert_eq!(math.count_params(), built.count_params());
    let summary = math.summary_string();
    assert!(summary.contains("gamma (Weight)") && summary.contains("Total params: 99"), "{summary}");
    let flat: Vec<f32> = x.iter().copied().take(3 * 6).collect();
    check_model(&mut math, &[&flat], 3, 12, 2e-2).unwrap();
}

/// Views in `call`: `reshape` (one `-1` worked out), `expand_dims`, `squeeze`.
#[kiln::model]
pub struct Views {
    id: Dense<4, 4>,
    mix: Dense<12, 12, Tanh>,
}

#[kiln::call]
impl Views {
    fn call(&self, x: Input<3, 4>) -> Output<3, 4> {
        let flat = reshape(self.id(x), [-1]);
        let g = reshape(self.mix(flat), [3, -1]);
        let e = squeeze(expand_dims(g, axis = 1), axis = 1);
        softmax(e, axis = -1) + 0.0 * expand_dims(sum(e, axis = -1), axis = -1)
    }
}

#[test]
fn reshape_expand_dims_and_squeeze_are_views_that_differentiate() {
    let x: Vec<f32> = (0..2 * 12).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    let mut m = Views::with_seed(2);
    check_model(&mut m, &[&x], 2, 12, 2e-2).unwrap();
    let p = m.predict(&Array3::from_shape_vec((2, 3, 4), x).unwrap()).unwrap();
    for row in p.as_slice().unwrap().chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "a softmax row sums to {}", row.iter().sum::<f32>());
    }
}

#[test]
fn a_model_with_weights_of_its_own_saves_and_loads() {
    let dir = std::env::temp_dir().join(format!("kiln-math-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("normed.safetensors");
    let mut a = MathNorm::with_seed(1);
    a.set_weight("gamma.value", &kiln::ndarray::Array1::from_shape_fn(8, |i| 1.0 + i as f32 / 10.0)).unwrap();
    a.save_weights(&path).unwrap();
    let mut b = MathNorm::with_seed(2);
    b.load_weights(&path).unwrap();
    let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i + 2 * j) % 5) as f32 / 2.0 - 1.0);
    let (pa, pb) = (a.predict(&x).unwrap(), b.predict(&x).unwrap());
    assert_close("loaded", pb.as_slice().unwrap(), pa.as_slice().unwrap(), 0.0);
    assert_eq!(b.get_weight("gamma.value").unwrap()[[3]], 1.3);
    std::fs::remove_dir_all(&dir).ok();
}

#[kiln::model]
pub struct Transposed {
    id: Dense<4, 4>,
}

#[kiln::call]
impl Transposed {
    fn call(&self, x: Input<3, 4>) -> Output<4, 3> {
        transpose(self.id(x), [0, 2, 1])
    }
}

/// Two-head self-attention written as math: projections, heads split by reshape and
/// transpose, scaled dot-product scores with matmul, softmax over the keys, heads joined again.
#[kiln::model]
pub struct MathAttention {
    q: Dense<8, 8>,
    k: Dense<8, 8>,
    v: Dense<8, 8>,
    out: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl MathAttention {
    fn call(&self, x: Input<5, 8>) -> Output<2> {
        let q = transpose(reshape(self.q(x), [5, 2, 4]), [0, 2, 1, 3]);
        let k = transpose(reshape(self.k(x), [5, 2, 4]), [0, 2, 1, 3]);
        let v = transpose(reshape(self.v(x), [5, 2, 4]), [0, 2, 1, 3]);
        let scores = softmax(matmul(q, k, transpose_b = true) * 0.5, axis = -1);
        let heads = reshape(transpose(matmul(scores, v), [0, 2, 1, 3]), [5, 8]);
        self.out(mean(heads, axis = 1))
    }
}

#[test]
fn transpose_matches_keras_and_attention_written_as_math_passes_the_gradient_check() {
    let x = Array3::from_shape_vec((2, 3, 4), reference("transpose_021.x")).unwrap();
    let mut m = Transposed::new();
    identity(&mut m);
    assert_close("transpose_021", m.predict(&x).unwrap().as_slice().unwrap(), &reference("transpose_021.out"), 1e-6);
    let flat: Vec<f32> = x.iter().copied().collect();
    check_model(&mut m, &[&flat], 2, 12, 2e-2).unwrap();
    let x: Vec<f32> = (0..2 * 40).map(|i| ((i * 17) % 13) as f32 / 6.0 - 1.0).collect();
    check_model(&mut MathAttention::with_seed(8), &[&x], 2, 12, 2e-2).unwrap();
}

/// Named constants where numbers go: `x / TEMPERATURE`, `clip(x, -LIMIT, LIMIT)`, `Self::EPS`.
const TEMPERATURE: f32 = 4.0;
const LIMIT: f64 = 0.75;

#[kiln::model]
pub struct NamedConstants {
    d: Dense<3, 4>,
}

impl NamedConstants {
    const EPS: f32 = 1e-3;
}

#[kiln::call]
impl NamedConstants {
    fn call(&self, x: Input<3>) -> Output<4> {
        let s = softmax(self.d(x) / TEMPERATURE);
        clip(pow(s + Self::EPS, 2.0), -LIMIT, LIMIT) - TEMPERATURE * s
    }
}

#[kiln::model]
pub struct WrittenOut {
    d: Dense<3, 4>,
}

#[kiln::call]
impl WrittenOut {
    fn call(&self, x: Input<3>) -> Output<4> {
        let s = softmax(self.d(x) / 4.0);
        clip(pow(s + 1e-3, 2.0), -0.75, 0.75) - 4.0 * s
    }
}

const SCALE: f32 = 0.5;

#[kiln::loss]
fn half_squared(y_true: Input<2>, y_pred: Input<2>) -> Output<1> {
    SCALE * sum(square(y_pred - y_true), axis = -1, keepdims = true)
}

#[test]
fn named_constants_are_read_where_numbers_go() {
    let x = Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 - 2.0) * 0.4 + j as f32 * 0.3);
    let (mut named, mut written) = (NamedConstants::with_seed(3), WrittenOut::with_seed(3));
    assert_eq!(named.predict(&x).unwrap(), written.predict(&x).unwrap());
    check_model(&mut named, &[x.as_slice().unwrap()], 5, 12, 1e-2).unwrap();
    let (p, y) = ([0.3f32, -1.0], [0.5f32, 0.5]);
    let want = 0.5 * ((0.3f32 - 0.5).powi(2) + (1.5f32).powi(2));
    assert!((kiln::CustomLoss::value(&half_squared, &p, &y) - want).abs() < 1e-6);
}

/// `stack`, `tile` and `repeat`, made of views and joins, with Keras' semantics.
#[kiln::model]
pub struct Copies {
    d: Dense<2, 3>,
}

#[kiln::call]
impl Copies {
    fn call(&self, x: Input<2>) -> (Output<2, 3>, Output<2, 6>, Output<6>, Output<3, 2>) {
        let h = self.d(x);
        let s = stack([h, square(h)], axis = 1);
        let t = tile(s, [1, 1, 2]);
        let r = repeat(h, 2, axis = 1);
        let last = stack([h, h * 2.0], axis = -1);
        (s, t, r, last)
    }
}

#[test]
fn stack_tile_and_repeat_copy_as_keras_ops_do_with_their_gradients() {
    let x = kiln::ndarray::arr2(&[[0.5f32, -1.0], [2.0, 0.25]]);
    let mut m = Copies::with_seed(2);
    let (s, t, r, last) = m.predict(&x).unwrap();
    let h = m.get_weight("d.kernel").unwrap();
    let b = m.get_weight("d.bias").unwrap();
    for i in 0..2 {
        let hi: Vec<f32> = (0..3).map(|j| x[[i, 0]] * h[[0, j]] + x[[i, 1]] * h[[1, j]] + b[[j]]).collect();
        for j in 0..3 {
            // keras.ops.stack([h, h**2], axis=1): [n, 2, 3]
            assert!((s[[i, 0, j]] - hi[j]).abs() < 1e-6 && (s[[i, 1, j]] - hi[j] * hi[j]).abs() < 1e-5);
            // keras.ops.tile(s, [1, 1, 2]): the last axis twice over, [h0 h1 h2 h0 h1 h2]
            assert_eq!((t[[i, 0, j]], t[[i, 0, j + 3]], t[[i, 1, j + 3]]), (s[[i, 0, j]], s[[i, 0, j]], s[[i, 1, j]]));
            // keras.ops.repeat(h, 2, axis=1): each value twice in a row, [h0 h0 h1 h1 h2 h2]
            assert_eq!((r[[i, 2 * j]], r[[i, 2 * j + 1]]), (s[[i, 0, j]], s[[i, 0, j]]));
            // keras.ops.stack([h, 2h], axis=-1): [n, 3, 2]
            assert_eq!((last[[i, j, 0]], last[[i, j, 1]]), (s[[i, 0, j]], 2.0 * s[[i, 0, j]]));
        }
    }
    check_model(&mut m, &[x.as_slice().unwrap()], 2, 12, 1e-2).unwrap();
}

/// `one_hot` of token ids, Keras' `ops.one_hot`: a row per id, the ids checked when data comes in.
#[kiln::model]
pub struct Bag {
    d: Dense<4, 2>,
}

#[kiln::call]
impl Bag {
    fn call(&self, ids: Ids<3>) -> (Output<3, 4>, Output<2>) {
        let rows = one_hot(ids, 4);
        (rows, self.d(sum(rows, axis = 1)))
    }
}

#[test]
fn one_hot_turns_ids_into_rows_and_refuses_ids_out_of_range() {
    let ids = kiln::ndarray::arr2(&[[0i32, 3, 3], [2, 1, 0]]);
    let mut m = Bag::new();
    let (rows, _) = m.predict(&ids).unwrap();
    assert_eq!(
        rows.slice(kiln::ndarray::s![0, .., ..]),
        kiln::ndarray::arr2(&[[1.0f32, 0., 0., 0.], [0., 0., 0., 1.], [0., 0., 0., 1.]])
    );
    assert_eq!(rows.slice(kiln::ndarray::s![1, 0, ..]).to_vec(), vec![0.0, 0.0, 1.0, 0.0]);
    assert_eq!(Bag::INPUTS[0].dtype, kiln::DType::I32 { below: 4 });
    let e = m.predict(&kiln::ndarray::arr2(&[[0i32, 4, 1]])).unwrap_err().to_string();
    assert!(e.contains('4'), "{e}");
    let x: Vec<f32> = ids.iter().map(|&v| v as f32).collect();
    check_model(&mut m, &[&x], 2, 12, 1e-2).unwrap();
}

/// `gather` of each sample's rows by its own ids (`tf.gather(x, ids, axis = 1, batch_dims = 1)`).
#[kiln::model]
pub struct Pick {
    d: Dense<3, 4>,
}

#[kiln::call]
impl Pick {
    fn call(&self, x: Input<5, 3>, ids: Ids<3>) -> Output<3, 4> {
        tanh(gather(self.d(x), ids))
    }
}

functional! {
    /// The same in `functional!`.
    pub struct PickGraph {
        x = Input([5, 3]);
        ids = Input([3], dtype = i32);
        h = Dense(4)(x);
        g = gather(h, ids);
        out = tanh(g);
        Model([x, ids], out)
    }
}

#[test]
fn gather_reads_each_samples_rows_by_its_ids() {
    let x = kiln::ndarray::Array3::from_shape_fn((2, 5, 3), |(i, r, j)| ((i * 7 + r * 3 + j) % 11) as f32 / 5.0 - 1.0);
    let ids = kiln::ndarray::arr2(&[[4i32, 0, 4], [1, 1, 2]]);
    let (mut m, mut g) = (Pick::with_seed(3), PickGraph::with_seed(3));
    for name in ["kernel", "bias"] {
        g.set_weight(&format!("dense.{name}"), &m.get_weight(&format!("d.{name}")).unwrap()).unwrap();
    }
    let out = m.predict((&x, &ids)).unwrap();
    assert_eq!(out, g.predict((&x, &ids)).unwrap());
    // Row r of sample i is tanh(x[i, r] · kernel + bias).
    let (k, b) = (m.get_weight("d.kernel").unwrap(), m.get_weight("d.bias").unwrap());
    for (i, row) in ids.rows().into_iter().enumerate() {
        for (j, &r) in row.iter().enumerate() {
            for c in 0..4 {
                let h: f32 = (0..3).map(|q| x[[i, r as usize, q]] * k[[q, c]]).sum::<f32>() + b[[c]];
                assert!((out[[i, j, c]] - h.tanh()).abs() < 1e-6);
            }
        }
    }
    assert_eq!(Pick::INPUTS[1].dtype, kiln::DType::I32 { below: 5 });
    assert_eq!(PickGraph::INPUTS[1].dtype, kiln::DType::I32 { below: 5 });
    let e = m.predict((&x, &kiln::ndarray::arr2(&[[5i32, 0, 0], [0, 0, 0]]))).unwrap_err().to_string();
    assert!(e.contains('5'), "{e}");
    // Row 4 of the first sample is read twice: its gradient is the sum of both reads.
    let flat_ids: Vec<f32> = ids.iter().map(|&v| v as f32).collect();
    check_model(&mut m, &[x.as_slice().unwrap(), &flat_ids], 2, 12, 1e-2).unwrap();
    check_model(&mut g, &[x.as_slice().unwrap(), &flat_ids], 2, 12, 1e-2).unwrap();
}

/// `matmul` whose leading axes broadcast: one [4, 2] matrix per sample applied at each of its
/// 3 × 5 positions, in a model, gradient-checked (the matrix's gradient sums over them).
#[kiln::model]
pub struct PerSampleMatrix {
    g: Weight<2, kiln::Ones>,
}

#[kiln::call]
impl PerSampleMatrix {
    fn call(&self, x: Input<3, 5, 4>, m: Input<4, 2>) -> Output<3, 5, 2> {
        tanh(matmul(x, m)) * self.g
    }
}

#[test]
fn matmul_broadcasts_leading_axes_in_a_model() {
    let x = kiln::ndarray::Array4::from_shape_fn((2, 3, 5, 4), |(i, a, b, c)| {
        ((i + a * 2 + b * 3 + c) % 7) as f32 / 7.0 - 0.4
    });
    let m = kiln::ndarray::Array3::from_shape_fn((2, 4, 2), |(i, a, b)| ((i * 3 + a + b * 5) % 5) as f32 / 5.0 - 0.3);
    let mut model = PerSampleMatrix::with_seed(1);
    let out = model.predict((&x, &m)).unwrap();
    assert_eq!(out.shape(), &[2, 3, 5, 2]);
    let want: f32 = (0..4).map(|c| x[[1, 2, 3, c]] * m[[1, c, 1]]).sum();
    assert!((out[[1, 2, 3, 1]] - want.tanh()).abs() < 1e-6);
    check_model(&mut model, &[x.as_slice().unwrap(), m.as_slice().unwrap()], 2, 12, 1e-2).unwrap();
}

sequential! {
    pub struct TwoOut: [3] { Dense(2) }
}

/// A metric written as math: the `#[kiln::loss]` above, logged per epoch as Keras logs a metric
/// function (the mean of its per-sample values), by its function's name.
#[test]
fn a_loss_written_as_math_is_also_a_metric() {
    let x = Array2::from_shape_fn((8, 3), |(i, j)| (i as f32 - 4.0) * 0.25 + j as f32 * 0.1);
    let y = Array2::from_shape_fn((8, 2), |(i, j)| ((i + j) % 3) as f32 / 3.0);
    let mut m = TwoOut::with_seed(2);
    m.compile_with(Compile::new("sgd").loss("mse").metric(kiln::Metric::custom(&half_squared))).unwrap();
    let logs = m.evaluate(&x, &y).unwrap();
    let p = m.predict(&x).unwrap();
    let want = (0..8).map(|i| 0.5 * (0..2).map(|j| (p[[i, j]] - y[[i, j]]).powi(2)).sum::<f32>()).sum::<f32>() / 8.0;
    let got = logs.iter().find(|(k, _)| *k == "half_squared").map(|(_, v)| *v).unwrap();
    assert!((got - want as f64).abs() < 1e-5, "{got} against {want}");
}
