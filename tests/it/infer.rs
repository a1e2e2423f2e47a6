//! The generated `infer` (no heap, no standard library, weights read in place) against the
//! trainable model's `predict` on the same embedded weights: every layer kind `infer` supports,
//! strided, dilated, grouped, `same` and `causal` windows, a graph with two inputs and two
//! outputs, shared layers, and the buffer plan's reuse of scratch space.
//!
//! The fixtures are the models below after a few training steps (so BatchNormalization's moving
//! statistics are not the identity); `cargo test --test it infer:: -- --ignored` writes them again.

use kiln::ndarray::{Array2, Array3, Array4};
use kiln::prelude::*;

/// A model trained and run through `predict`, and the same layers as `#[inference_only]` models
/// with reduced-precision weights from the same file (`also [CnnInt8 = int8, ..]`).
macro_rules! models {
    ($(#[$doc:meta])* $name:ident $input:tt from $file:literal, also [$($variant:ident = $dtype:ident),*] $body:tt) => {
        models!(@one $(#[$doc])* $name, #[weights($file)], $input, $body);
        $(
            models!(@one $variant, #[weights($file, dtype = $dtype)] #[inference_only], $input, $body);
        )*
    };
    // A functional! model: no input shape before `from`.
    ($(#[$doc:meta])* $name:ident from $file:literal, also [$($variant:ident = $dtype:ident),*] $body:tt) => {
        models!(@graph $(#[$doc])* $name, #[weights($file)], $body);
        $(
            models!(@graph $variant, #[weights($file, dtype = $dtype)] #[inference_only], $body);
        )*
    };
    (@one $(#[$doc:meta])* $name:ident, $(#[$attr:meta])*, ($($input:tt)+), { $($body:tt)* }) => {
        sequential! {
            $(#[$doc])*
            $(#[$attr])*
            pub struct $name: $($input)+ { $($body)* }
        }
    };
    (@graph $(#[$doc:meta])* $name:ident, $(#[$attr:meta])*, { $($body:tt)* }) => {
        functional! {
            $(#[$doc])*
            $(#[$attr])*
            pub struct $name { $($body)* }
        }
    };
}

models! {
    /// Every image layer `infer` has, one after the other.
    Cnn ([12, 12, 3]) from "../fixtures/infer/cnn.safetensors", also [CnnInt8 = int8, CnnF16 = f16] {
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

models! {
    /// The 1-D layers: causal and strided convolutions, pooling, noise.
    Seq ([20, 4]) from "../fixtures/infer/seq.safetensors", also [SeqInt8 = int8] {
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
    #[weights("../fixtures/infer/graph.safetensors")]
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

models! {
    /// Resampling, the separable and transposed convolutions, layer normalisation.
    More ([10, 10, 3]) from "../fixtures/infer/more.safetensors", also [MoreBf16 = bf16, MoreInt8 = int8] {
        ZeroPadding2D([1, 2]),
        SeparableConv2D(6, 3, depth_multiplier = 2, activation = relu),
        Conv2DTranspose(4, 3, strides = 2, padding = same, activation = tanh),
        Cropping2D([1, 2, 0, 1]),
        UpSampling2D([1, 2]),
        LayerNormalization(),
        Conv2DTranspose(2, [2, 3], strides = [1, 2]),
        GlobalMaxPooling2D(),
        Dense(3),
    }
}

sequential! {
    /// The 1-D resampling layers, Permute and RepeatVector.
    #[weights("../fixtures/infer/resampled1d.safetensors")]
    pub struct Resampled1d: [6, 2] {
        ZeroPadding1D([1, 2]),
        Conv1D(3, 2, activation = tanh),
        UpSampling1D(2),
        Cropping1D([1, 1]),
        Permute([2, 1]),
        GlobalMaxPooling1D(),
        RepeatVector(3),
        LSTM(4),
        Dense(2),
    }
}

sequential! {
    /// Keras' Normalization, adapted to data, and a PReLU.
    #[weights("../fixtures/infer/adapted.safetensors")]
    pub struct Adapted: [4] {
        Normalization(),
        PReLU(),
        Dense(3, activation = softmax),
    }
}

functional! {
    /// Dot of two towers.
    #[weights("../fixtures/infer/towers.safetensors")]
    pub struct Towers {
        a = Input([5]);
        b = Input([7]);
        ta = Dense(4, activation = tanh)(a);
        tb = Dense(4, activation = sigmoid)(b);
        d = Dot()([ta, tb]);
        n = LayerNormalization(center = false)(ta);
        out = Concatenate()([d, n]);
        Model([a, b], out)
    }
}

models! {
    /// Token ids through every recurrent cell, both Bidirectional kinds of output and
    /// TimeDistributed.
    Text (Input([12], dtype = i32)) from "../fixtures/infer/text.safetensors", also [TextInt8 = int8] {
        Embedding(50, 8),
        LSTM(6, return_sequences = true),
        Bidirectional(GRU(5, return_sequences = true), merge_mode = sum),
        TimeDistributed(Dense(4, activation = relu)),
        GRU(4, reset_after = false, return_sequences = true, go_backwards = true),
        Bidirectional(SimpleRNN(3, activation = relu), merge_mode = concat),
        Dense(2, activation = softmax),
    }
}

functional! {
    /// Ids and floats side by side; a recurrent layer reading the floats, one the ids.
    #[weights("../fixtures/infer/mixed.safetensors")]
    pub struct Mixed {
        ids = Input([6], dtype = i32);
        series = Input([6, 2]);
        e = Embedding(10, 3)(ids);
        h = LSTM(4, recurrent_activation = hard_sigmoid)(e);
        g = Bidirectional(LSTM(3, go_backwards = true), merge_mode = ave)(series);
        m = Concatenate()([h, g]);
        out = Dense(1, activation = sigmoid)(m);
        Model([ids, series], out)
    }
}

models! {
    /// A transformer block (causal self-attention, residual, LayerNormalization) and a shared
    /// cross-attention with a key of its own, a value width and an output width.
    Attend from "../fixtures/infer/attend.safetensors", also [AttendInt8 = int8] {
        ids = Input([7], dtype = i32);
        memory = Input([5, 3]);
        e = Embedding(20, 6)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3, use_causal_mask = true)(e, e);
        r = Add()([e, a]);
        n = LayerNormalization()(r);
        keys = Dense(4)(memory);
        cross = MultiHeadAttention(num_heads = 3, key_dim = 2, value_dim = 4, output_shape = 5);
        c = cross(n, memory, keys);
        d = Dense(8, activation = gelu)(c);
        p = GlobalAveragePooling1D()(d);
        out = Dense(3, activation = softmax)(p);
        Model([ids, memory], out)
    }
}

functional! {
    /// Keras' masking through infer: Embedding(mask_zero) to recurrent layers, attention and a
    /// masked average; Masking on a float sequence to a recurrent layer.
    #[weights("../fixtures/infer/masked.safetensors")]
    pub struct Masked {
        ids = Input([8], dtype = i32);
        series = Input([8, 3]);
        e = Embedding(12, 4, mask_zero = true)(ids);
        h = LSTM(5, return_sequences = true)(e);
        b = Bidirectional(GRU(3, go_backwards = true))(h);
        a = MultiHeadAttention(num_heads = 2, key_dim = 2)(h, h);
        p = GlobalAveragePooling1D()(a);
        m = Masking(mask_value = 0.0)(series);
        r = SimpleRNN(4, return_sequences = true)(m);
        q = GlobalAveragePooling1D()(r);
        c = Concatenate()([b, p, q]);
        out = Dense(2, activation = softmax)(c);
        Model([ids, series], out)
    }
}

functional! {
    /// Keras' `return_state` through infer: each sample's output and final states, under a mask.
    #[weights("../fixtures/infer/states.safetensors")]
    pub struct Stated {
        ids = Input([8], dtype = i32);
        e = Embedding(12, 4, mask_zero = true)(ids);
        (seq, h, c) = LSTM(5, return_sequences = true, return_state = true)(e);
        (last, s) = GRU(3, return_state = true, go_backwards = true)(seq);
        hc = Concatenate()([h, c, last, s]);
        out = Dense(2, activation = softmax)(hc);
        Model(ids, out)
    }
}

functional! {
    /// Keras' `attention_mask` through infer: which key steps each query step may see.
    #[weights("../fixtures/infer/looked.safetensors")]
    pub struct Looked {
        ids = Input([6], dtype = i32);
        allowed = Input([6, 6]);
        e = Embedding(10, 8)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 4)(e, e, attention_mask = allowed);
        s = Add()([e, a]);
        p = GlobalAveragePooling1D()(s);
        out = Dense(2, activation = softmax)(p);
        Model([ids, allowed], out)
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
    More::with_seed(6).save_weights(format!("{dir}/more.safetensors")).unwrap();
    Towers::with_seed(7).save_weights(format!("{dir}/towers.safetensors")).unwrap();
    Resampled1d::with_seed(13).save_weights(format!("{dir}/resampled1d.safetensors")).unwrap();
    let mut adapted = Adapted::with_seed(14);
    let x = Array2::from_shape_fn((32, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * (j as f32 + 1.0) - 4.0);
    adapted.adapt("normalization", &x).unwrap();
    adapted.set_weight("p_re_lu.alpha", &kiln::ndarray::arr1(&[0.1f32, 0.2, 0.3, 0.4])).unwrap();
    adapted.save_weights(format!("{dir}/adapted.safetensors")).unwrap();
    // A few steps so that the recurrent biases (zeros when initialised) are not.
    let mut text = Text::with_seed(8);
    let ids = Array2::from_shape_vec((64, 12), noise(64 * 12, 3).iter().map(|v| ((v + 1.0) * 25.0) as i32).collect())
        .unwrap();
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 2) as f32);
    text.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    text.fit(&ids, &y, quiet()).unwrap();
    text.save_weights(format!("{dir}/text.safetensors")).unwrap();

    let mut mixed = Mixed::with_seed(9);
    let ids =
        Array2::from_shape_vec((64, 6), noise(64 * 6, 4).iter().map(|v| ((v + 1.0) * 5.0) as i32).collect()).unwrap();
    let series = Array3::from_shape_vec((64, 6, 2), noise(64 * 12, 5)).unwrap();
    mixed.compile("binary_crossentropy", "adam", &[]).unwrap();
    mixed.fit((&ids, &series), &y, quiet()).unwrap();
    mixed.save_weights(format!("{dir}/mixed.safetensors")).unwrap();

    let mut stated = Stated::with_seed(11);
    let ids =
        Array2::from_shape_fn((64, 8), |(i, t)| if t < 8 - i % 5 { 1 + ((i * 7 + t * 3) % 11) as i32 } else { 0 });
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 2) as f32);
    stated.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    stated.fit(&ids, &y, quiet()).unwrap();
    stated.save_weights(format!("{dir}/states.safetensors")).unwrap();

    let mut looked = Looked::with_seed(12);
    let ids = Array2::from_shape_fn((64, 6), |(i, t)| ((i * 5 + t * 3) % 10) as i32);
    let allowed = Array3::from_shape_fn((64, 6, 6), |(i, r, c)| ((c <= r + i % 3) as u8) as f32);
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 2) as f32);
    looked.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    looked.fit((&ids, &allowed), &y, quiet()).unwrap();
    looked.save_weights(format!("{dir}/looked.safetensors")).unwrap();

    let mut attend = Attend::with_seed(10);
    let ids =
        Array2::from_shape_vec((64, 7), noise(64 * 7, 6).iter().map(|v| ((v + 1.0) * 10.0) as i32).collect()).unwrap();
    let memory = Array3::from_shape_vec((64, 5, 3), noise(64 * 15, 7)).unwrap();
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 3) as f32);
    attend.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    attend.fit((&ids, &memory), &y, quiet()).unwrap();
    attend.save_weights(format!("{dir}/attend.safetensors")).unwrap();

    let mut masked = Masked::with_seed(11);
    let (ids, series) = padded(64, 20);
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 2) as f32);
    masked.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    masked.fit((&ids, &series), &y, quiet()).unwrap();
    masked.save_weights(format!("{dir}/masked.safetensors")).unwrap();
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
fn resampling_separable_and_transposed_infer_as_predict_does() {
    let mut m = More::embedded();
    for s in 0..4 {
        let x: [f32; 300] = noise(300, 500 + s).try_into().unwrap();
        let want = m.predict_one(&x).unwrap().to_vec();
        assert_matches("more", &More::infer(&x), &want);
    }
    // The separable convolution's depthwise output has its own workspace in the scratch space.
    const { assert!(More::SCRATCH_LEN >= 17 * 46 * 4 + 17 * 46 * 4) };
}

#[test]
fn one_dimensional_resampling_and_repeat_infer_as_predict_does() {
    let mut m = Resampled1d::embedded();
    for s in 0..4 {
        let x: [f32; 12] = noise(12, 550 + s).try_into().unwrap();
        let want = m.predict_one(&x).unwrap().to_vec();
        assert_matches("resampled1d", &Resampled1d::infer(&x), &want);
    }
}

#[test]
fn an_adapted_normalization_infers_as_predict_does() {
    let mut m = Adapted::embedded();
    assert_ne!(m.get_weight("normalization.mean").unwrap()[0], 0.0);
    assert_eq!(m.get_weight("p_re_lu.alpha").unwrap()[3], 0.4);
    for s in 0..4 {
        let x: [f32; 4] = noise(4, 580 + s).iter().map(|v| v * 8.0).collect::<Vec<_>>().try_into().unwrap();
        let want = m.predict_one(&x).unwrap().to_vec();
        assert_matches("adapted", &Adapted::infer(&x), &want);
    }
}

#[test]
fn dot_infers_as_predict_does() {
    let mut m = Towers::embedded();
    for s in 0..4 {
        let a: [f32; 5] = noise(5, 600 + s).try_into().unwrap();
        let b: [f32; 7] = noise(7, 700 + s).try_into().unwrap();
        let xa = Array2::from_shape_vec((1, 5), a.to_vec()).unwrap();
        let xb = Array2::from_shape_vec((1, 7), b.to_vec()).unwrap();
        let want = m.predict((&xa, &xb)).unwrap();
        assert_matches("towers", &Towers::infer(&a, &b), want.as_slice().unwrap());
    }
}

#[test]
fn reduced_precision_weights_stay_close_to_f32() {
    // Per-channel int8 keeps each weight within half a step of 1/127 of its channel's largest;
    // bf16 within 2^-9 relative. Through a few layers the outputs move by well under 0.05.
    let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let mut drift = [0f32; 7];
    for s in 0..8 {
        let x: [f32; 432] = noise(432, 800 + s).iter().map(|v| v * 2.0 + 0.5).collect::<Vec<_>>().try_into().unwrap();
        drift[0] = drift[0].max(worst(&CnnInt8::infer(&x), &Cnn::infer(&x)));
        drift[5] = drift[5].max(worst(&CnnF16::infer(&x), &Cnn::infer(&x)));
        let x: [f32; 300] = noise(300, 900 + s).try_into().unwrap();
        drift[1] = drift[1].max(worst(&MoreBf16::infer(&x), &More::infer(&x)));
        drift[2] = drift[2].max(worst(&MoreInt8::infer(&x), &More::infer(&x)));
        let x: [f32; 80] = noise(80, 1000 + s).iter().map(|v| v * 3.0 - 0.5).collect::<Vec<_>>().try_into().unwrap();
        drift[3] = drift[3].max(worst(&SeqInt8::infer(&x), &Seq::infer(&x)));
        let ids: [i32; 12] =
            noise(12, 1400 + s).iter().map(|v| ((v + 1.0) * 25.0) as i32).collect::<Vec<_>>().try_into().unwrap();
        drift[4] = drift[4].max(worst(&TextInt8::infer(&ids).unwrap(), &Text::infer(&ids).unwrap()));
        let ids: [i32; 7] =
            noise(7, 1700 + s).iter().map(|v| ((v + 1.0) * 10.0) as i32).collect::<Vec<_>>().try_into().unwrap();
        let memory: [f32; 15] = noise(15, 1800 + s).try_into().unwrap();
        let (a, b) = (AttendInt8::infer(&ids, &memory).unwrap(), Attend::infer(&ids, &memory).unwrap());
        drift[6] = drift[6].max(worst(&a, &b));
    }
    println!(
        "largest output drift (Cnn int8, More bf16, More int8, Seq int8, Text int8, Cnn f16, Attend int8): {drift:?}"
    );
    assert!(drift.iter().all(|&d| d < 0.05 && d > 0.0), "{drift:?}");
    // And the embedded bytes shrink: int8 kernels are a quarter of f32's (plus scales).
    const { assert!(CnnInt8::WEIGHT_BYTES < Cnn::WEIGHT_BYTES / 2) };
    const { assert!(MoreBf16::WEIGHT_BYTES < More::WEIGHT_BYTES) };
    const { assert!(CnnF16::WEIGHT_BYTES < Cnn::WEIGHT_BYTES) };
    const { assert!(AttendInt8::WEIGHT_BYTES < Attend::WEIGHT_BYTES) };
}

#[test]
fn token_ids_and_recurrent_layers_infer_as_predict_does() {
    let mut m = Text::embedded();
    for s in 0..6 {
        let ids: [i32; 12] =
            noise(12, 1100 + s).iter().map(|v| ((v + 1.0) * 25.0) as i32).collect::<Vec<_>>().try_into().unwrap();
        let want = m.predict(&Array2::from_shape_vec((1, 12), ids.to_vec()).unwrap()).unwrap();
        assert_matches("text", &Text::infer(&ids).unwrap(), want.as_slice().unwrap());
    }
    let mut m = Mixed::embedded();
    for s in 0..6 {
        let ids: [i32; 6] =
            noise(6, 1200 + s).iter().map(|v| ((v + 1.0) * 5.0) as i32).collect::<Vec<_>>().try_into().unwrap();
        let series: [f32; 12] = noise(12, 1300 + s).try_into().unwrap();
        let xi = Array2::from_shape_vec((1, 6), ids.to_vec()).unwrap();
        let xs = Array3::from_shape_vec((1, 6, 2), series.to_vec()).unwrap();
        let want = m.predict((&xi, &xs)).unwrap();
        assert_matches("mixed", &Mixed::infer(&ids, &series).unwrap(), want.as_slice().unwrap());
    }
}

#[test]
fn attention_infers_as_predict_does() {
    let mut m = Attend::embedded();
    for s in 0..6 {
        let ids: [i32; 7] =
            noise(7, 1500 + s).iter().map(|v| ((v + 1.0) * 10.0) as i32).collect::<Vec<_>>().try_into().unwrap();
        let memory: [f32; 15] = noise(15, 1600 + s).try_into().unwrap();
        let xi = Array2::from_shape_vec((1, 7), ids.to_vec()).unwrap();
        let xm = Array3::from_shape_vec((1, 5, 3), memory.to_vec()).unwrap();
        let want = m.predict((&xi, &xm)).unwrap();
        assert_matches("attend", &Attend::infer(&ids, &memory).unwrap(), want.as_slice().unwrap());
    }
}

/// `n` rows of 8 ids in 1..12 and 8 steps of 3 floats, each row padded at its end (ids 0,
/// float steps all 0) by a different number of steps, one row of all padding.
fn padded(n: usize, seed: u64) -> (Array2<i32>, Array3<f32>) {
    let ids = noise(n * 8, seed);
    let f = noise(n * 24, seed + 1);
    let real = |i: usize| if i % 7 == 6 { 0 } else { 8 - i % 6 };
    let ids =
        Array2::from_shape_fn((n, 8), |(i, t)| if t < real(i) { 1 + ((ids[i * 8 + t] + 1.0) * 5.4) as i32 } else { 0 });
    let series =
        Array3::from_shape_fn((n, 8, 3), |(i, t, k)| if t + 1 < real(i) { f[(i * 8 + t) * 3 + k] } else { 0.0 });
    (ids, series)
}

#[test]
fn masks_infer_as_predict_does() {
    let mut m = Masked::embedded();
    let (ids, series) = padded(14, 40);
    let want = m.predict((&ids, &series)).unwrap();
    for i in 0..14 {
        let id: [i32; 8] = ids.row(i).to_vec().try_into().unwrap();
        let x: [f32; 24] =
            series.slice(kiln::ndarray::s![i, .., ..]).iter().copied().collect::<Vec<_>>().try_into().unwrap();
        assert_matches("masked", &Masked::infer(&id, &x).unwrap(), want.row(i).as_slice().unwrap());
    }
}

#[test]
fn final_states_infer_as_predict_does() {
    let mut m = Stated::embedded();
    let (ids, _) = padded(14, 50);
    let want = m.predict(&ids).unwrap();
    for i in 0..14 {
        let id: [i32; 8] = ids.row(i).to_vec().try_into().unwrap();
        assert_matches("states", &Stated::infer(&id).unwrap(), want.row(i).as_slice().unwrap());
    }
}

#[test]
fn an_attention_mask_infers_as_predict_does() {
    let mut m = Looked::embedded();
    // Random masks, one query row of sample 0 seeing nothing.
    let ids = Array2::from_shape_fn((6, 6), |(i, t)| ((i * 7 + t * 2) % 10) as i32);
    let coins = noise(6 * 36, 60);
    let allowed = Array3::from_shape_fn((6, 6, 6), |(i, r, c)| {
        let v = (coins[(i * 6 + r) * 6 + c] > -0.2) as u8 as f32;
        if i == 0 && r == 2 { 0.0 } else { v }
    });
    let want = m.predict((&ids, &allowed)).unwrap();
    for i in 0..6 {
        let id: [i32; 6] = ids.row(i).to_vec().try_into().unwrap();
        let mask: [f32; 36] =
            allowed.slice(kiln::ndarray::s![i, .., ..]).iter().copied().collect::<Vec<_>>().try_into().unwrap();
        assert_matches("looked", &Looked::infer(&id, &mask).unwrap(), want.row(i).as_slice().unwrap());
    }
}

#[test]
fn a_bad_token_id_is_an_error_not_a_read() {
    let mut ids = [1i32; 12];
    ids[7] = 50;
    let e = Text::infer(&ids).unwrap_err();
    assert_eq!(e, kiln::infer::BadId { input: 0, position: 7, id: 50, bound: 50 });
    assert_eq!(e.to_string(), "input 0, position 7 holds 50, not a token id in 0..50");
    ids[7] = -3;
    assert_eq!(Mixed::infer(&[0, 0, 0, 0, 0, -3], &[0.0; 12]).unwrap_err().position, 5);
    assert_eq!(Text::infer(&ids).unwrap_err().id, -3);
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
