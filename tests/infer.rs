//! The generated `infer` (no heap, no standard library, weights read in place) against the
//! trainable model's `predict` on the same embedded weights: every layer kind `infer` supports,
//! strided, dilated, grouped, `same` and `causal` windows, a graph with two inputs and two
//! outputs, shared layers, and the buffer plan's reuse of scratch space.
//!
//! The fixtures are the models below after a few training steps (so BatchNormalization's moving
//! statistics are not the identity); `cargo test --test infer -- --ignored` writes them again.

use kiln::ndarray::{Array2, Array3, Array4};
use kiln::prelude::*;

sequential! {
    /// Every image layer `infer` has, one after the other.
    #[weights("fixtures/infer/cnn.safetensors")]
    pub struct Cnn: [12, 12, 3] {
        Rescaling(0.5, offset = -0.1),
        Conv2D(8, 3, padding = same, activation = relu),
        BatchNormalization(),
        AveragePooling2D(2, strides = 1, padding = same),
        Conv2D(8, 3, strides = 2, activation = gelu),
        DepthwiseConv2D(3, depth_multiplier = 2, padding = same, activation = tanh),
        Conv2D(8, 2, dilation_rate = 2, groups = 2, activation = elu),
        MaxPooling2D(2, padding = same),
        LeakyReLU(),
        SpatialDropout2D(0.2),
        GlobalAveragePooling2D(),
        Dropout(0.3),
        Dense(6, activation = softmax),
    }
}

sequential! {
    /// The 1-D layers: causal and strided convolutions, pooling, noise.
    #[weights("fixtures/infer/seq.safetensors")]
    pub struct Seq: [20, 4] {
        GaussianNoise(0.1),
        Conv1D(6, 3, padding = causal, activation = selu),
        Conv1D(6, 3, strides = 2, padding = same, activation = softplus),
        AveragePooling1D(2),
        Activation(swish),
        BatchNormalization(center = false),
        Conv1D(4, 2, dilation_rate = 2),
        MaxPooling1D(2, strides = 1),
        GlobalMaxPooling1D(),
        Dense(3, activation = sigmoid),
    }
}

functional! {
    /// Two inputs, a shared layer, every element-wise merge, Concatenate and two outputs.
    #[weights("fixtures/infer/graph.safetensors")]
    pub struct Graph {
        a = Input([10]);
        b = Input([2, 3]);
        fb = Flatten()(b);
        shared = Dense(6, activation = tanh);
        ha = shared(Dense(6, activation = gelu_approximate)(a));
        hb = shared(fb);
        s = Subtract()([ha, hb]);
        p = Multiply()([ha, hb, s]);
        av = Average()([p, ha]);
        mx = Maximum()([av, hb]);
        mn = Minimum()([mx, ha]);
        sum = Add()([mn, s, p]);
        r = Reshape([2, 3])(sum);
        c = Concatenate(axis = 2)([r, b]);
        fc = Flatten()(c);
        first = Dense(4, activation = softmax, name = "first")(fc);
        second = Dense(2, activation = selu, name = "second")(Concatenate()([fc, a]));
        Model([a, b], [first, second])
    }
}

/// Inputs with a fixed seed, in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
#[ignore = "writes the fixtures this file embeds"]
fn regenerate_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/infer");
    let quiet = || Fit { epochs: 3, batch_size: 16, verbose: 0, ..Fit::default() };
    let mut cnn = Cnn::with_seed(3);
    let x = Array4::from_shape_vec((64, 12, 12, 3), noise(64 * 432, 1)).unwrap().mapv(|v| v * 2.0 + 0.5);
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 6) as f32);
    cnn.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    cnn.fit(&x, &y, quiet()).unwrap();
    cnn.save_weights(format!("{dir}/cnn.safetensors")).unwrap();

    let mut seq = Seq::with_seed(4);
    let x = Array3::from_shape_vec((64, 20, 4), noise(64 * 80, 2)).unwrap().mapv(|v| v * 3.0 - 0.5);
    let y = Array2::from_shape_fn((64, 3), |(i, j)| ((i + j) % 2) as f32);
    seq.compile("binary_crossentropy", "adam", &[]).unwrap();
    seq.fit(&x, &y, quiet()).unwrap();
    seq.save_weights(format!("{dir}/seq.safetensors")).unwrap();

    Graph::with_seed(5).save_weights(format!("{dir}/graph.safetensors")).unwrap();
}

/// `infer` against `predict` on the same weights, for `n` samples.
fn assert_matches(name: &str, infer: &[f32], predict: &[f32]) {
    kiln::testing::assert_close(name, infer, predict, 2e-6);
}

#[test]
fn images_infer_as_predict_does() {
    let mut m = Cnn::embedded();
    for s in 0..8 {
        let x: [f32; 432] = noise(432, 100 + s).iter().map(|v| v * 2.0 + 0.5).collect::<Vec<_>>().try_into().unwrap();
        let want = m.predict_one(&x).unwrap().to_vec();
        assert_matches("cnn", &Cnn::infer(&x), &want);
    }
}

#[test]
fn sequences_infer_as_predict_does() {
    let mut m = Seq::embedded();
    for s in 0..8 {
        let x: [f32; 80] = noise(80, 200 + s).iter().map(|v| v * 3.0 - 0.5).collect::<Vec<_>>().try_into().unwrap();
        let want = m.predict_one(&x).unwrap().to_vec();
        assert_matches("seq", &Seq::infer(&x), &want);
    }
}

#[test]
fn graphs_infer_as_predict_does() {
    let mut m = Graph::embedded();
    for s in 0..8 {
        let a: [f32; 10] = noise(10, 300 + s).try_into().unwrap();
        let b: [f32; 6] = noise(6, 400 + s).try_into().unwrap();
        let xa = Array2::from_shape_vec((1, 10), a.to_vec()).unwrap();
        let xb = Array3::from_shape_vec((1, 2, 3), b.to_vec()).unwrap();
        let (first, second) = m.predict((&xa, &xb)).unwrap();
        let (f, s) = Graph::infer(&a, &b);
        assert_matches("first", &f, first.as_slice().unwrap());
        assert_matches("second", &s, second.as_slice().unwrap());
    }
}

#[test]
fn scratch_is_planned_and_reused() {
    // Cnn's largest outputs are [12, 12, 8] (Conv2D, BatchNormalization, AveragePooling2D): two
    // are alive at once, then their space is reused.
    assert_eq!(Cnn::SCRATCH_LEN, 2 * 12 * 12 * 8);
    assert_eq!(Cnn::SCRATCH_BYTES, 4 * Cnn::SCRATCH_LEN);
    assert_eq!(<Cnn as Model>::MEMORY, Some([Cnn::WEIGHT_BYTES, Cnn::SCRATCH_BYTES]));
    // The weights as embedded for `infer`: every parameter once, f32.
    let m = Cnn::new();
    assert_eq!(Cnn::WEIGHT_BYTES, 4 * m.count_params());
    assert_eq!(Cnn::weight_data().len(), Cnn::WEIGHT_BYTES);
    // The shared Dense's weights are stored once.
    assert_eq!(Graph::weight_data().len(), 4 * Graph::new().count_params());
    // A caller-owned scratch buffer gives the same answer.
    let x = [0.25f32; 80];
    let mut scratch = [f32::NAN; Seq::SCRATCH_LEN];
    assert_eq!(Seq::infer_with(&x, &mut scratch), Seq::infer(&x));
    assert!(
        Cnn::new().summary_string().contains("Inference memory: 5.15 KB of weights, 9.00 KB of scratch per sample"),
        "{}",
        Cnn::new().summary_string()
    );
}
