//! Math on values in `functional!` bodies, as Keras applies `keras.ops` to symbolic tensors: the
//! ops of `call` bodies, checked when the model compiles, differentiated.

use kiln::ndarray::Array2;
use kiln::prelude::*;
use kiln::testing::check_model;

functional! {
    /// A VAE's sampling and KL term, and a distance, written as math between layers.
    pub struct Sampler {
        x = Input([6]);
        h = Dense(8, activation = tanh)(x);
        z_mean = Dense(3)(h);
        z_log_var = Dense(3)(h);
        z = z_mean + exp(0.5 * z_log_var) * random_normal(z_mean);
        kl = -0.5 * sum(1.0 + z_log_var - square(z_mean) - exp(z_log_var), axis = -1, keepdims = true);
        out = Dense(6, activation = sigmoid)(z);
        d = sqrt(sum(square(out - x), axis = 1, keepdims = true) + 1e-6);
        p = softmax(Dense(4)(h) / 2.0, axis = -1);
        Model(x, [out, kl, d, p])
    }
}

functional! {
    /// The same math without the draw, for the gradient check and exact values.
    pub struct Deterministic {
        x = Input([2, 3]);
        h = Dense(3)(x);
        m = mean(h, axis = 1);
        s = log_softmax(h * h - 1.0, axis = 1);
        c = clip(pow(h, 2.0), 0.0, 4.0) + maximum(h, 0.0) - relu(h) / 3.0;
        Model(x, [m, s, c])
    }
}

#[test]
fn math_between_layers_in_functional_computes_and_differentiates() {
    let x = Array2::from_shape_fn((5, 6), |(i, j)| ((i * 3 + j) % 7) as f32 / 7.0);
    let mut m = Sampler::with_seed(3);
    let (out, kl, d, p) = m.predict(&x).unwrap();
    assert_eq!((out.shape(), kl.shape(), d.shape(), p.shape()), (&[5, 6][..], &[5, 1][..], &[5, 1][..], &[5, 4][..]));
    assert!(kl.iter().all(|v| v.is_finite() && *v >= -1e-6), "{kl:?}");
    for (i, row) in out.rows().into_iter().enumerate() {
        let want = row.iter().zip(x.row(i)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
        assert!((d[[i, 0]] - (want * want + 1e-6).sqrt()).abs() < 1e-5);
    }
    assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-5));
    // Math's outputs are named after their statements; a layer's after the layer, as in Keras.
    let names: Vec<&str> = Sampler::OUTPUTS.iter().map(|o| o.name).collect();
    assert_eq!(names, ["dense_3", "kl", "d", "p"]);
    m.compile_with(
        Compile::new("adam")
            .output_loss("dense_3", "binary_crossentropy")
            .output_loss("kl", "mae")
            .output_loss("d", "mse")
            .output_loss("p", "mse"),
    )
    .unwrap();
    let zeros = Array2::<f32>::zeros((5, 1));
    let probs = Array2::<f32>::from_elem((5, 4), 0.25);
    let h = m.fit(&x, (&x, &zeros, &zeros, &probs), Fit { epochs: 3, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.get("loss").unwrap().iter().all(|v| v.is_finite()));

    let x3 = kiln::ndarray::Array3::from_shape_fn((4, 2, 3), |(i, j, k)| (i + 2 * j + k) as f32 / 5.0 - 0.6);
    let mut det = Deterministic::with_seed(1);
    let (mean, logp, _) = det.predict(&x3).unwrap();
    assert_eq!((mean.shape(), logp.shape()), (&[4, 3][..], &[4, 2, 3][..]));
    check_model(&mut det, &[x3.as_slice().unwrap()], 4, 12, 1e-2).unwrap();
    println!("{}", det.summary_string());
}

functional! {
    /// Keras' `for size in [..]:` blocks, and a name bound again as Python code does.
    pub struct Blocks {
        x = Input([6]);
        h = Dense(16, activation = relu)(x);
        for size in [12, 8] {
            r = h;
            h = Dense(size, activation = relu)(h);
            h = h + 0.1 * sum(r, axis = -1, keepdims = true);
        }
        h = Dense(3, activation = softmax)(h);
        Model(x, h)
    }
}

#[test]
fn loops_unroll_and_names_bound_again_read_their_latest_value() {
    let s = Blocks::new().summary_string();
    // dense (16), dense_1 (12), dense_2 (8), dense_3 (3), numbered as Keras numbers them.
    for (name, width) in [("dense ", 16), ("dense_1 ", 12), ("dense_2 ", 8), ("dense_3 ", 3)] {
        let row = s.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} in\n{s}"));
        assert!(row.contains(&format!("(None, {width})")), "{row}");
    }
    assert_eq!(Blocks::OUTPUTS[0].shape, &[3]);
    let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i + 2 * j) % 5) as f32 / 5.0 - 0.3);
    check_model(&mut Blocks::with_seed(2), &[x.as_slice().unwrap()], 4, 12, 1e-2).unwrap();
}

sequential! {
    /// Keras' `Lambda` in a Sequential model: math on the running value.
    pub struct WithLambda: [5] {
        Dense(4, activation = tanh),
        Lambda(|x| x * exp(-0.5 * square(x)) + 0.1),
        Dense(3),
        Lambda(|z| softmax(z / 2.0, axis = -1)),
    }
}

#[test]
fn a_lambda_in_sequential_is_math_on_the_running_value() {
    let x = Array2::from_shape_fn((4, 5), |(i, j)| ((i * 2 + j) % 7) as f32 / 7.0 - 0.4);
    let mut m = WithLambda::with_seed(5);
    let p = m.predict(&x).unwrap();
    assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-5));
    check_model(&mut m, &[x.as_slice().unwrap()], 4, 12, 1e-2).unwrap();
    let s = m.summary_string();
    assert!(s.contains("(Exp)") && s.contains("(Softmax)"), "{s}");
}

functional! {
    /// The math of `Deterministic` above, the same ops the subclassing style writes in `call`.
    pub struct ByStatements {
        x = Input([2, 3]);
        h = Dense(3)(x);
        s = log_softmax(h * h - 1.0, axis = 1);
        r = sqrt(sum(square(h), axis = -1, keepdims = true) + 1.0) / 2.0 + logsumexp(h, axis = 1);
        Model(x, [s, r])
    }
}

#[kiln::model]
pub struct ByCall {
    d: Dense<3, 3>,
}

#[kiln::call]
impl ByCall {
    fn call(&self, x: Input<2, 3>) -> (Output<2, 3>, Output<2, 3>) {
        let h = self.d(x);
        let s = log_softmax(h * h - 1.0, axis = 1);
        let r = sqrt(sum(square(h), axis = -1, keepdims = true) + 1.0) / 2.0 + logsumexp(h, axis = 1);
        (s, r)
    }
}

#[test]
fn math_gives_the_same_bits_in_functional_and_in_call() {
    let x = kiln::ndarray::Array3::from_shape_fn((3, 2, 3), |(i, j, k)| (i * 5 + j * 3 + k) as f32 / 9.0 - 0.7);
    let (mut f, mut c) = (ByStatements::with_seed(7), ByCall::with_seed(7));
    for (name, w) in [("kernel", f.get_weight("dense.kernel").unwrap()), ("bias", f.get_weight("dense.bias").unwrap())]
    {
        c.set_weight(&format!("d.{name}"), &w).unwrap();
    }
    let ((fs, fr), (cs, cr)) = (f.predict(&x).unwrap(), c.predict(&x).unwrap());
    assert_eq!((fs, fr), (cs, cr));
}

const SHARPNESS: f32 = 4.0;

functional! {
    /// Attention scores as math between layers, a slice, and a named constant.
    pub struct Scores {
        x = Input([4, 6]);
        q = Dense(5)(x);
        k = Dense(5)(x);
        s = softmax(matmul(q, k, transpose_b = true) / SHARPNESS, axis = -1);
        first = slice(s, axis = -1, start = 0, end = 2);
        Model(x, [s, first])
    }
}

#[test]
fn matmul_slice_and_named_constants_in_functional() {
    let x = kiln::ndarray::Array3::from_shape_fn((3, 4, 6), |(i, t, j)| ((i + t * 2 + j) % 7) as f32 / 7.0 - 0.4);
    let mut m = Scores::with_seed(4);
    let (s, first) = m.predict(&x).unwrap();
    assert_eq!((s.shape(), first.shape()), (&[3, 4, 4][..], &[3, 4, 2][..]));
    assert!(s.outer_iter().all(|m| m.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-5)));
    assert_eq!(first, s.slice(kiln::ndarray::s![.., .., 0..2]));
    check_model(&mut m, &[x.as_slice().unwrap()], 3, 12, 1e-2).unwrap();
}

functional! {
    /// The shape ops of `keras.ops` on values: views, transposes, joins and copies.
    pub struct ShapeOps {
        x = Input([4, 6]);
        h = Dense(6)(x);
        t = transpose(reshape(h, [6, -1]), [0, 2, 1]);
        q = squeeze(expand_dims(t, axis = 1), axis = 1);
        c = concatenate([q, h * 2.0], axis = -1);
        s = stack([q, square(h)], axis = 1);
        tl = tile(h, [1, 1, 2]);
        rp = repeat(h, 2, axis = 1);
        Model(x, [c, s, tl, rp])
    }
}

/// The same ops in a `call` body, whose ops match Keras (tests/it/math.rs).
#[kiln::model]
pub struct ShapeOpsCall {
    d: Dense<6, 6>,
}

#[kiln::call]
impl ShapeOpsCall {
    fn call(&self, x: Input<4, 6>) -> (Output<4, 12>, Output<2, 4, 6>, Output<4, 12>, Output<8, 6>) {
        let h = self.d(x);
        let t = transpose(reshape(h, [6, -1]), [0, 2, 1]);
        let q = squeeze(expand_dims(t, axis = 1), axis = 1);
        let c = concatenate([q, h * 2.0], axis = -1);
        let s = stack([q, square(h)], axis = 1);
        (c, s, tile(h, [1, 1, 2]), repeat(h, 2, axis = 1))
    }
}

functional! {
    /// `one_hot` of an integer input.
    pub struct OneHotBag {
        ids = Input([3], dtype = i32);
        rows = one_hot(ids, 4);
        counts = sum(rows, axis = 1);
        out = Dense(2)(counts);
        Model(ids, [rows, out])
    }
}

#[test]
fn shape_ops_in_functional_are_the_call_body_ops() {
    let x = kiln::ndarray::Array3::from_shape_fn((3, 4, 6), |(i, t, j)| ((i + t * 2 + j) % 7) as f32 / 7.0 - 0.4);
    let (mut f, mut c) = (ShapeOps::with_seed(5), ShapeOpsCall::with_seed(5));
    for name in ["kernel", "bias"] {
        c.set_weight(&format!("d.{name}"), &f.get_weight(&format!("dense.{name}")).unwrap()).unwrap();
    }
    let (fc, fs, ft, fr) = f.predict(&x).unwrap();
    let (cc, cs, ct, cr) = c.predict(&x).unwrap();
    assert_eq!(
        (fc.shape(), fs.shape(), ft.shape(), fr.shape()),
        (&[3, 4, 12][..], &[3, 2, 4, 6][..], &[3, 4, 12][..], &[3, 8, 6][..])
    );
    assert_eq!((fc, fs, ft, fr), (cc, cs, ct, cr));
    check_model(&mut f, &[x.as_slice().unwrap()], 3, 12, 1e-2).unwrap();

    let ids = kiln::ndarray::arr2(&[[0i32, 3, 3], [2, 1, 0]]);
    let mut bag = OneHotBag::new();
    let (rows, out) = bag.predict(&ids).unwrap();
    assert_eq!(rows.slice(kiln::ndarray::s![0, 1, ..]).to_vec(), vec![0.0, 0.0, 0.0, 1.0]);
    assert_eq!(out.shape(), &[2, 2]);
    assert_eq!(OneHotBag::INPUTS[0].dtype, kiln::DType::I32 { below: 4 });
}

functional! {
    /// A transpose of samples of rank 4, between layers (the first Dense's gradient passes
    /// through it).
    pub struct Rank4 {
        x = Input([6]);
        h = Dense(120)(x);
        t = transpose(reshape(h, [2, 3, 4, 5]), [0, 4, 2, 1, 3]);
        f = Flatten()(t);
        out = Dense(2)(f);
        Model(x, [t, out])
    }
}

#[test]
fn transposes_of_rank_4_samples() {
    let x = Array2::from_shape_fn((3, 6), |(i, j)| ((i * 5 + j) % 7) as f32 / 7.0 - 0.5);
    let mut m = Rank4::with_seed(1);
    let (t, out) = m.predict(&x).unwrap();
    assert_eq!((t.shape(), out.shape()), (&[3, 5, 3, 2, 4][..], &[3, 2][..]));
    // Keras' axes (0, 4, 2, 1, 3): t[.., e, b, a, c] is h[.., a, b, c, e].
    let h = x.dot(&m.get_weight("dense.kernel").unwrap().into_dimensionality::<kiln::ndarray::Ix2>().unwrap());
    let b = m.get_weight("dense.bias").unwrap();
    let at = |a: usize, bb: usize, c: usize, e: usize| ((a * 3 + bb) * 4 + c) * 5 + e;
    assert!((t[[2, 4, 2, 1, 1]] - (h[[2, at(1, 2, 1, 4)]] + b[[at(1, 2, 1, 4)]])).abs() < 1e-5);
    check_model(&mut m, &[x.as_slice().unwrap()], 3, 12, 1e-2).unwrap();
}
