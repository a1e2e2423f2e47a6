//! Layers for images and sequences of channels: every one gradient-checked alone (strided,
//! dilated and `same`-padded convolutions, both poolings, BatchNormalization in training and
//! frozen), inside a model, and a small CNN trained on the shipped digits.

use kiln::kernels::conv::{Window, axis};
use kiln::ndarray::{Array4, s};
use kiln::prelude::*;
use kiln::testing::{check_layer, check_model};
use kiln::{BatchNorm, Conv, Dropout, GaussianNoise, GlobalPool, Layer, Pool, PoolKind, Rescaling};
use rand::{Rng, SeedableRng};

const TOL: f64 = 3e-3;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A window over `[h, w, c]` as the macros compute it.
fn window(h: usize, w: usize, c: usize, k: (usize, usize), s: (usize, usize), d: (usize, usize), same: bool) -> Window {
    let (oh, ph) = axis(h, k.0, s.0, d.0, same).unwrap();
    let (ow, pw) = axis(w, k.1, s.1, d.1, same).unwrap();
    Window { h, w, c, kh: k.0, kw: k.1, sh: s.0, sw: s.1, dh: d.0, dw: d.1, ph, pw, oh, ow }
}

#[test]
fn convolutions_valid_same_strided_dilated_and_1d() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let cases = [
        ("valid 3x3", window(6, 5, 2, (3, 3), (1, 1), (1, 1), false), false),
        ("same 3x3", window(5, 5, 3, (3, 3), (1, 1), (1, 1), true), false),
        ("strided same 3x2", window(7, 6, 2, (3, 2), (2, 2), (1, 1), true), false),
        ("strided valid 2x2", window(6, 6, 1, (2, 2), (2, 3), (1, 1), false), false),
        ("dilated 3x3", window(7, 7, 2, (3, 3), (1, 1), (2, 2), false), false),
        ("1-D same", window(1, 9, 3, (1, 3), (1, 1), (1, 1), true), true),
    ];
    for (name, g, one_d) in cases {
        let mut conv = Conv::<kiln::Tanh>::new(g, 4, true, one_d, &mut rng);
        if let Some(b) = &mut conv.bias {
            b.value = vec![0.1, -0.2, 0.05, 0.3];
        }
        // 2 samples run as one chunk; 9 as two, each with its own kernel and bias gradients.
        for n in [2, 9] {
            let x = random(n * g.in_len(), 2);
            if let Err(e) = check_layer(&mut conv, &[&x], n, 24, TOL) {
                panic!("{name}, {n} samples:\n{e}");
            }
        }
    }
}

#[test]
fn poolings_max_average_same_and_global() {
    for (name, g, kind) in [
        ("max 2x2", window(6, 6, 2, (2, 2), (2, 2), (1, 1), false), PoolKind::Max),
        ("max same 3x3 stride 2", window(5, 5, 2, (3, 3), (2, 2), (1, 1), true), PoolKind::Max),
        ("average 2x2", window(6, 4, 3, (2, 2), (2, 2), (1, 1), false), PoolKind::Average),
        ("average same 3x3", window(5, 5, 1, (3, 3), (1, 1), (1, 1), true), PoolKind::Average),
    ] {
        let mut pool = Pool::new(g, kind);
        // Distinct values, so a maximum never ties within a finite-difference step.
        let x: Vec<f32> = (0..2 * g.in_len()).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        if let Err(e) = check_layer(&mut pool, &[&x], 2, 0, TOL) {
            panic!("{name}:\n{e}");
        }
    }
    for kind in [PoolKind::Max, PoolKind::Average] {
        let mut global = GlobalPool::new(6, 3, kind);
        let x: Vec<f32> = (0..2 * 18).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        check_layer(&mut global, &[&x], 2, 0, TOL).unwrap();
    }
}

#[test]
fn batch_normalization_in_training_and_frozen() {
    let mut bn = BatchNorm::new(3, 0.99, 1e-3, true, true);
    bn.gamma.as_mut().unwrap().value = vec![1.5, 0.5, -1.0];
    bn.beta.as_mut().unwrap().value = vec![0.1, 0.0, -0.3];
    let x = random(4 * 2 * 3, 5);
    // Training: through the batch statistics.
    check_layer(&mut bn, &[&x], 4, 8, TOL).unwrap();
    // The moving statistics moved (the check ran many training passes) and are state.
    assert!(bn.moving_mean.value.iter().any(|v| *v != 0.0));
    assert_eq!(bn.moving_mean.role(), kiln::Role::State);
    // Frozen: inference mode even in a training pass, as in Keras 3.
    bn.set_trainable(false);
    let before = bn.moving_mean.value.clone();
    check_layer(&mut bn, &[&x], 4, 8, TOL).unwrap();
    assert_eq!(bn.moving_mean.value, before, "a frozen layer does not move its statistics");
}

#[test]
fn dropout_noise_and_rescaling() {
    let x = random(3 * 10, 6);
    check_layer(&mut Dropout::new(0.4), &[&x], 3, 0, TOL).unwrap();
    check_layer(&mut GaussianNoise::new(0.2), &[&x], 3, 0, TOL).unwrap();
    check_layer(&mut Rescaling::new(1.0 / 16.0, -0.5), &[&x], 3, 0, TOL).unwrap();
    let mut r = Rescaling::new(2.0, 1.0);
    let mut stream = kiln::Stream::new(0);
    r.forward(&[&[1.0, -1.0]], &mut kiln::Ctx::new(1, false, &mut stream));
    assert_eq!(r.output(), &[3.0, -1.0]);
}

sequential! {
    pub struct Small: [6, 6, 2] {
        Conv2D(4, 3, padding = same, activation = tanh),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(3, [2, 2], strides = 1),
        GlobalAveragePooling2D,
        Dense(3, activation = softmax),
    }
}

sequential! {
    pub struct Seq1d: [9, 2] {
        Conv1D(4, 3, activation = tanh),
        AveragePooling1D(2),
        Flatten,
        Dense(2, activation = softmax),
    }
}

#[test]
fn models_of_these_layers_pass_the_gradient_check() {
    let mut m = Small::with_seed(3);
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 && p.is_trainable() {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    let x: Vec<f32> = (0..3 * 72).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    check_model(&mut m, &[&x], 3, 12, TOL).unwrap();
    let s = m.summary_string();
    for want in
        ["(None, 6, 6, 4)", "(None, 3, 3, 4)", "(None, 2, 2, 3)", "conv2d_1 (Conv2D)", "Non-trainable params: 8"]
    {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    let mut m = Seq1d::with_seed(4);
    check_model(&mut m, &[&random(2 * 18, 7)], 2, 12, TOL).unwrap();
}

sequential! {
    pub struct DigitsCnn: [8, 8, 1] {
        Conv2D(32, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(64, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Dropout(0.25),
        Flatten,
        Dense(64, activation = relu),
        Dropout(0.25),
        Dense(10, activation = softmax),
    }
}

#[test]
fn a_small_cnn_reaches_98_percent_on_held_out_digits() {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    let n = pixels.nrows();
    let x: Array4<f32> = (pixels / 16.0).into_shape_with_order((n, 8, 8, 1)).unwrap();
    let mut m = DigitsCnn::new();
    // examples/digits_cnn.rs's recipe: the rate along a cosine from 0.003 to 0 over the 40 epochs.
    let steps = 40 * (n - kiln::validation_rows(n, 0.2)).div_ceil(32);
    let adam = kiln::Scheduled::new(Adam::default(), kiln::CosineDecay::new(0.003, steps as u64));
    m.compile("sparse_categorical_crossentropy", adam, &["accuracy"]).unwrap();
    let h = m.fit(&x, &labels, Fit { epochs: 40, validation_split: 0.2, verbose: 0, ..Fit::default() }).unwrap();
    let from = n - kiln::validation_rows(n, 0.2);
    let held_out = m.evaluate(&x.slice(s![from.., .., .., ..]), &labels.slice(s![from..])).unwrap();
    assert_eq!(held_out["accuracy"], h.last("val_accuracy").unwrap());
    assert!(held_out["accuracy"] >= 0.98, "held-out accuracy {}", held_out["accuracy"]);
}

sequential! {
    pub struct Resampled: [5, 4, 2] {
        ZeroPadding2D([1, 2]),
        Conv2D(3, 3, activation = tanh),
        UpSampling2D(2),
        Cropping2D([1, 0, 2, 1]),
        SpatialDropout2D(0.3),
        GlobalMaxPooling2D,
        Dense(2, activation = softmax),
    }
}

sequential! {
    pub struct Steps1d: [8, 3] {
        SpatialDropout1D(0.5),
        Conv1D(4, 2, strides = 2),
        MaxPooling1D(2),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

#[test]
fn padding_cropping_up_sampling_and_spatial_dropout() {
    let pad = kiln::Resample::zero_padding(2, 2, 1, 1, 0, 0, 1);
    let mut p = pad.clone();
    let mut stream = kiln::Stream::new(0);
    p.forward(&[&[1.0, 2.0, 3.0, 4.0]], &mut kiln::Ctx::new(1, false, &mut stream));
    assert_eq!(p.output(), &[0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0]);
    let mut up = kiln::Resample::up_sampling(1, 2, 1, 2, 2);
    up.forward(&[&[1.0, 2.0]], &mut kiln::Ctx::new(1, false, &mut stream));
    assert_eq!(up.output(), &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    let cases = [
        (pad, 4),
        (kiln::Resample::cropping(4, 5, 2, 1, 1, 2, 0), 40),
        (kiln::Resample::up_sampling(3, 2, 2, 2, 3), 12),
    ];
    for (mut layer, sample) in cases {
        check_layer(&mut layer, &[&random(2 * sample, 9)], 2, 0, TOL).unwrap();
    }
    let mut m = Resampled::with_seed(2);
    let s = m.summary_string();
    for want in ["(None, 7, 8, 2)", "(None, 5, 6, 3)", "(None, 10, 12, 3)", "(None, 9, 9, 3)", "spatial_dropout2d"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    check_model(&mut m, &[&random(2 * 40, 10)], 2, 12, TOL).unwrap();
    let mut m = Steps1d::with_seed(3);
    check_model(&mut m, &[&random(2 * 24, 11)], 2, 12, TOL).unwrap();
    // Spatial dropout drops whole channels: each channel of a sample is all kept or all zero.
    let mut sd = kiln::SpatialDropout::new(0.5, 4);
    let x = vec![1.0f32; 2 * 6 * 4];
    sd.forward(&[&x], &mut kiln::Ctx::new(2, true, &mut stream));
    for sample in sd.output().chunks_exact(24) {
        for ch in 0..4 {
            let vals: Vec<f32> = sample.chunks_exact(4).map(|p| p[ch]).collect();
            assert!(vals.iter().all(|v| *v == vals[0]), "{vals:?}");
        }
    }
}

#[test]
fn depthwise_separable_and_transposed_convolutions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let g = window(5, 5, 3, (3, 3), (1, 1), (1, 1), true);
    let mut dw = kiln::Depthwise::<kiln::Tanh>::new(g, 2, true, &mut rng);
    check_layer(&mut dw, &[&random(2 * g.in_len(), 12)], 2, 16, TOL).unwrap();
    let g = window(6, 6, 2, (3, 3), (2, 2), (1, 1), true);
    let mut sep = kiln::Separable::<kiln::Tanh>::new(g, 2, 4, true, &mut rng);
    check_layer(&mut sep, &[&random(2 * g.in_len(), 13)], 2, 16, TOL).unwrap();
    // The transpose of a stride-2 `same` convolution over [6, 6, 3]: [3, 3, 2] in, [6, 6, 3] out.
    let g = window(6, 6, 3, (3, 3), (2, 2), (1, 1), true);
    let mut tr = kiln::ConvTranspose::<kiln::Tanh>::new(g, 2, true, &mut rng);
    check_layer(&mut tr, &[&random(2 * 3 * 3 * 2, 14)], 2, 16, TOL).unwrap();
    assert_eq!(tr.output().len(), 2 * 6 * 6 * 3);
}

sequential! {
    pub struct UNetish: [4, 4, 2] {
        SeparableConv2D(4, 3, padding = same, activation = relu),
        DepthwiseConv2D(3, strides = 2, padding = same),
        Conv2DTranspose(2, 3, strides = 2, padding = same, activation = tanh),
        Flatten,
        Dense(2, activation = softmax),
    }
}

#[test]
fn a_model_of_them_passes_the_gradient_check() {
    let mut m = UNetish::with_seed(5);
    let s = m.summary_string();
    for want in [
        "separable_conv2d (SeparableConv2D)",
        "(None, 2, 2, 4)",
        "conv2d_transpose (Conv2DTranspose)",
        "(None, 4, 4, 2)",
    ] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    check_model(&mut m, &[&random(2 * 32, 15)], 2, 12, TOL).unwrap();
}

#[test]
fn grouped_convolutions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for (groups, g) in
        [(2, window(5, 5, 4, (3, 3), (1, 1), (1, 1), true)), (3, window(6, 4, 6, (2, 2), (2, 1), (1, 1), false))]
    {
        let mut conv = Conv::<kiln::Tanh>::grouped(g, 6, groups, true, false, &mut rng);
        assert_eq!(conv.kernel.shape(), &[g.kh, g.kw, g.c / groups, 6]);
        check_layer(&mut conv, &[&random(2 * g.in_len(), 22)], 2, 24, TOL).unwrap();
    }
    // One group is the ordinary convolution.
    let g = window(4, 4, 2, (3, 3), (1, 1), (1, 1), true);
    let mut one = Conv::<kiln::Linear>::grouped(g, 2, 1, true, false, &mut rand::rngs::StdRng::seed_from_u64(1));
    let mut plain = Conv::<kiln::Linear>::new(g, 2, true, false, &mut rand::rngs::StdRng::seed_from_u64(1));
    let x = random(g.in_len(), 23);
    let mut s = kiln::Stream::new(0);
    one.forward(&[&x], &mut kiln::Ctx::new(1, false, &mut s));
    plain.forward(&[&x], &mut kiln::Ctx::new(1, false, &mut s));
    assert_eq!(one.output(), plain.output());
}

sequential! {
    pub struct Grouped: [6, 6, 4] {
        Conv2D(6, 3, groups = 2, padding = same, activation = relu),
        Conv2D(4, 3, groups = 2),
        GlobalAveragePooling2D,
        Dense(2, activation = softmax),
    }
}

#[test]
fn a_grouped_model_passes_the_gradient_check() {
    let mut m = Grouped::with_seed(4);
    assert_eq!(m.weights()[0].1.shape(), &[3, 3, 2, 6]);
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    check_model(&mut m, &[&random(2 * 144, 24)], 2, 16, TOL).unwrap();
}

kiln::sequential! {
    /// Conv1D with padding = causal: step t sees steps up to t only.
    pub struct CausalDilated: [7, 3] {
        Conv1D(4, 3, padding = causal, dilation_rate = 2),
    }
}

kiln::sequential! {
    pub struct CausalStrided: [7, 3] {
        Conv1D(4, 2, strides = 2, padding = causal),
    }
}

/// Keras 3 parity of `Conv1D(padding = "causal")` (`examples/keras/causal_conv_reference.py`),
/// finite differences, and causality: changing a later step changes nothing before it.
#[test]
fn causal_conv1d_matches_keras() {
    use kiln::Model;
    let text = include_str!("../fixtures/keras/causal_conv.txt");
    let f = |k: &str| kiln::testing::reference(text, k).unwrap_or_else(|| panic!("{k} missing"));
    fn check<M: Model>(mut m: M, case: &str, f: &dyn Fn(&str) -> Vec<f32>) {
        for (name, shape) in [("kernel", vec![m_shape::<M>(), 3, 4]), ("bias", vec![4])] {
            let v = kiln::ndarray::ArrayD::from_shape_vec(shape, f(&format!("{case}.{name}"))).unwrap();
            m.set_weight(&format!("conv1d.{name}"), &v).unwrap();
        }
        let x = f(&format!("{case}.x"));
        let mut stream = kiln::Stream::new(0);
        m.run(&[&x], &mut kiln::Ctx::new(2, false, &mut stream));
        kiln::testing::assert_close(case, kiln::Model::output(&m, 0), &f(&format!("{case}.out")), 1e-5);
        kiln::testing::check_model(&mut m, &[&x], 2, 12, 3e-3).unwrap();
    }
    fn m_shape<M: Model>() -> usize {
        if M::OUTPUTS[0].shape[0] == 7 { 3 } else { 2 }
    }
    check(CausalDilated::new(), "k3_d2", &f);
    check(CausalStrided::new(), "k2_s2", &f);
    assert_eq!(CausalStrided::OUTPUTS[0].shape, &[4, 4]);
    // Causality: the first three steps' outputs ignore step 3 onwards.
    let mut m = CausalDilated::new();
    let x = f("k3_d2.x");
    let mut y = x.clone();
    y[9..21].iter_mut().for_each(|v| *v += 1.0);
    let mut stream = kiln::Stream::new(0);
    m.run(&[&x], &mut kiln::Ctx::new(2, false, &mut stream));
    let before = kiln::Model::output(&m, 0)[..12].to_vec();
    m.run(&[&y], &mut kiln::Ctx::new(2, false, &mut stream));
    assert_eq!(&kiln::Model::output(&m, 0)[..12], &before[..]);
}

sequential! {
    /// Grey-scale windows of 3×3 and 2×2 (the register-kept kernel gradient), then a convolution
    /// whose input gradient is needed, on a batch of two chunks of samples.
    pub struct Grey: [7, 7, 1] {
        Conv2D(20, 3, activation = tanh),
        AveragePooling2D(2, strides = 1),
        Conv2D(6, 2, activation = tanh),
        Flatten,
        Dense(3),
    }
}

#[test]
fn grey_scale_windows_pass_the_gradient_check_on_split_batches() {
    let mut m = Grey::with_seed(5);
    check_model(&mut m, &[&random(9 * 49, 11)], 9, 12, TOL).unwrap();
}

sequential! {
    pub struct Pad2: [3, 4, 2] { ZeroPadding2D([1, 0, 2, 1]) }
}
sequential! {
    pub struct Crop2: [5, 6, 2] { Cropping2D([1, 0, 0, 2]) }
}
sequential! {
    pub struct Up2: [2, 3, 2] { UpSampling2D([2, 3]) }
}
sequential! {
    pub struct Pad1: [5, 3] { ZeroPadding1D([1, 2]) }
}
sequential! {
    pub struct Crop1: [6, 3] { Cropping1D([2, 1]) }
}
sequential! {
    pub struct Up1: [4, 3] { UpSampling1D(3) }
}
sequential! {
    pub struct Repeat: [5] { RepeatVector(4) }
}
sequential! {
    pub struct Swap: [3, 4] { Permute([2, 1]) }
}
sequential! {
    pub struct Rotate: [2, 3, 4] { Permute([3, 1, 2]) }
}

/// The output and input gradient of a one-layer model, against Keras'.
fn resample_case<M: Layer>(case: &str, mut m: M) {
    let get = |k: &str| {
        kiln::testing::reference(include_str!("../fixtures/keras/resample.txt"), &format!("{case}.{k}"))
            .unwrap_or_else(|| panic!("{case}.{k} missing"))
    };
    let (x, dy) = (get("x"), get("dy"));
    let mut stream = kiln::Stream::new(0);
    let mut ctx = kiln::Ctx::new(2, true, &mut stream);
    m.forward(&[&x], &mut ctx);
    assert_eq!(m.output(), &get("out")[..], "{case}: output");
    let opts = kiln::BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
    m.backward(&[&x], &dy, &mut ctx, opts);
    kiln::testing::assert_close(&format!("{case}.dx"), m.input_grad(0), &get("dx"), 1e-6);
}

#[test]
fn padding_cropping_up_sampling_repeat_and_permute_match_keras() {
    resample_case("zero_padding2d", Pad2::new());
    resample_case("cropping2d", Crop2::new());
    resample_case("up_sampling2d", Up2::new());
    resample_case("zero_padding1d", Pad1::new());
    resample_case("cropping1d", Crop1::new());
    resample_case("up_sampling1d", Up1::new());
    resample_case("repeat_vector", Repeat::new());
    resample_case("permute21", Swap::new());
    resample_case("permute312", Rotate::new());
}

sequential! {
    /// Keras' seq2seq of the tutorials: a vector repeated into steps for a decoder, and the 1-D
    /// resampling layers.
    pub struct Repeated: [4] {
        Dense(3, activation = tanh),
        RepeatVector(5),                 // [5, 3]
        ZeroPadding1D([1, 0]),           // [6, 3]
        LSTM(4, return_sequences = true),
        UpSampling1D(2),                 // [12, 4]
        Cropping1D([1, 3]),              // [8, 4]
        Permute([2, 1]),                 // [4, 8]
        Flatten,
        Dense(2, activation = softmax),
    }
}

#[test]
fn a_model_of_the_1d_resampling_layers_passes_the_gradient_check() {
    let mut m = Repeated::with_seed(3);
    let s = m.summary_string();
    for want in
        ["repeat_vector (RepeatVector)", "(None, 5, 3)", "(None, 12, 4)", "cropping1d (Cropping1D)", "(None, 8, 4)"]
    {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    check_model(&mut m, &[&random(2 * 4, 31)], 2, 12, TOL).unwrap();
}
