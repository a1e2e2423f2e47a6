//! Export: `save_onnx` writes a model kiln built as an ONNX file, its weights as they are; the
//! committed files `kiln_export*.onnx` are what it writes (`cargo test --test it onnx::export --
//! --ignored` writes them again), onnxruntime's outputs on them are in `kiln_export*.txt`
//! (`examples/onnx/make_fixtures.py`), and the files import back into kiln.

use super::*;

functional! {
    /// Dense layers with several activations, BatchNormalization, a skip Add, a Concatenate
    /// and Dropout.
    pub struct Exported {
        x = Input([6]);
        h = Dense(16, activation = relu)(x);
        n = BatchNormalization()(h);
        a = Dense(16, activation = tanh)(n);
        s = Add()([n, a]);
        g = Dense(4, activation = gelu)(x);
        c = Concatenate()([s, g]);
        d = Dropout(0.5)(c);
        y = Dense(3, activation = softmax)(d);
        Model(x, y)
    }
}

sequential! {
    /// Convolutions (same and strided valid padding), pooling and a channels-last Flatten:
    /// kiln's NHWC images, transposed around each ONNX Conv.
    pub struct ExportedCnn: [12, 10, 3] {
        Conv2D(4, 3, padding = same, activation = relu),
        MaxPooling2D(2),
        Conv2D(6, 3, strides = 2, activation = elu),
        BatchNormalization(),
        AveragePooling2D(2, padding = same),
        Flatten,
        Dense(3),
    }
}

sequential! {
    /// A causal, dilated Conv1D, max pooling and global average pooling over the steps.
    pub struct ExportedSeq: [16, 2] {
        Conv1D(5, 3, padding = causal, dilation_rate = 2, activation = swish),
        MaxPooling1D(2),
        Conv1D(4, 2, groups = 1, activation = sigmoid),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// Token ids (int64 in the file) through an Embedding (Gather), LeakyReLU, Rescaling.
    pub struct ExportedText: [7], dtype = i32 {
        Embedding(20, 6),
        Flatten,
        Dense(4),
        LeakyReLU(negative_slope = 0.2),
        Rescaling(0.5, offset = 0.1),
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// An LSTM returning its sequence, a SimpleRNN, a GRU (`reset_after`), a Dense head.
    pub struct ExportedRnn: [7, 3] {
        LSTM(5, return_sequences = true),
        SimpleRNN(6, return_sequences = true),
        GRU(4),
        Dense(2),
    }
}

sequential! {
    /// Zero padding and cropping around a convolution, and permuted axes: Pad between
    /// Transposes, Slice, Transpose.
    pub struct ExportedResample: [9, 8, 2] {
        ZeroPadding2D([1, 2, 0, 1]),
        Conv2D(3, 3, activation = relu),
        Cropping2D([1, 0, 2, 1]),
        Permute([2, 1, 3]),
        Flatten,
        Dense(3),
    }
}

sequential! {
    /// Nearest up-sampling in 2-D and 1-D: Resize (which kiln does not import yet).
    pub struct ExportedUpSampling: [5, 4, 2] {
        UpSampling2D([2, 3]),
        Conv2D(2, 3),
        Reshape([8, 20]),
        UpSampling1D(2),
        Flatten,
        Dense(2),
    }
}

sequential! {
    /// Depthwise, separable and transposed convolutions: grouped Convs, a MatMul, and
    /// ConvTranspose with the pads and output padding of `same` and `valid`.
    pub struct ExportedConvs: [7, 6, 2] {
        DepthwiseConv2D(3, depth_multiplier = 2, padding = same, activation = relu),
        SeparableConv2D(3, 3, depth_multiplier = 2, activation = tanh),
        Conv2DTranspose(3, 3, strides = 2, padding = same),
        Conv2DTranspose(2, 2, strides = 2, activation = sigmoid),
        SeparableConv2D(2, 3, strides = 2, padding = same, use_bias = false),
        Flatten,
        Dense(2),
    }
}

sequential! {
    /// Bidirectional LSTM and GRU in each merge mode: ONNX's bidirectional operators, the
    /// directions merged after them.
    pub struct ExportedBidirectional: [6, 3] {
        Bidirectional(LSTM(4, return_sequences = true)),
        Bidirectional(GRU(3, return_sequences = true), merge_mode = "sum"),
        Bidirectional(SimpleRNN(3, return_sequences = true), merge_mode = "mul"),
        Bidirectional(LSTM(2), merge_mode = "ave"),
        Dense(2),
    }
}

functional! {
    /// The dot product of two branches (Keras' Dot of two vectors).
    pub struct ExportedDot {
        x = Input([6]);
        p = Dense(4)(x);
        q = Dense(4, activation = tanh)(x);
        d = Dot(axes = 1)([p, q]);
        y = Dense(2)(Concatenate()([d, q]));
        Model(x, y)
    }
}

sequential! {
    /// Recurrent layers reading the steps backwards: ONNX's reverse direction (their
    /// sequence read back to front).
    pub struct ExportedBackwards: [5, 2] {
        LSTM(3, return_sequences = true, go_backwards = true),
        GRU(2, go_backwards = true),
        Dense(2),
    }
}

sequential! {
    /// Recurrent layers reading backwards whose final states alone are read: ONNX's reverse
    /// direction, which imports back as `go_backwards`.
    pub struct ExportedBackwardsLast: [5, 2] {
        GRU(3, go_backwards = true),
        RepeatVector(4),
        LSTM(2, go_backwards = true),
    }
}

sequential! {
    /// Dense layers on every step, one wrapped in TimeDistributed.
    pub struct ExportedSteps: [4, 3] {
        TimeDistributed(Dense(5, activation = relu)),
        Dense(2, activation = tanh),
        Flatten,
        Dense(2),
    }
}

sequential! {
    /// A Bidirectional layer returning its last outputs, concatenated.
    pub struct ExportedBidirectionalLast: [5, 2] {
        Bidirectional(GRU(3)),
        Dense(2),
    }
}

sequential! {
    /// Normalization (adapted), PReLU with a shared axis, RepeatVector.
    pub struct ExportedFeatures: [5] {
        Normalization(),
        Dense(4),
        RepeatVector(3),
        PReLU(shared_axes = [1]),
        Flatten,
        Dense(2),
    }
}

/// `ExportedFeatures` adapted to features of different scales, its PReLU slopes not zero.
fn features() -> ExportedFeatures {
    let mut m = ExportedFeatures::with_seed(19);
    let data = kiln::ndarray::Array2::from_shape_fn((40, 5), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * (j + 1) as f32);
    m.adapt("normalization", &data).unwrap();
    let alpha = m.weights().into_iter().map(|(n, _)| n).find(|n| n.ends_with(".alpha")).unwrap();
    m.set_weight(&alpha, &kiln::ndarray::arr2(&[[0.1f32, -0.2, 0.3, 0.25]])).unwrap();
    m
}

functional! {
    /// User math: element-wise chains, broadcasting across ranks, reductions, softmax along
    /// an axis, a product read transposed and a slice.
    pub struct ExportedMath {
        x = Input([4, 6]);
        h = Dense(6, activation = tanh)(x);
        e = clip(pow(exp(0.5 * h) - 1.0, 2.0), 0.0, 4.0) + maximum(h, 0.1) / 3.0;
        n = sqrt(sum(square(h), axis = -1, keepdims = true) + 1e-6);
        u = h / n;
        m = mean(u, axis = 1);
        s = log_softmax(e * 2.0, axis = 1);
        p = softmax(h, axis = -1);
        a = matmul(p, u, transpose_b = true);
        c = slice(a, axis = -1, start = 1, end = 3);
        t = s + m - abs(h - 0.2) * p + log(1.0 + square(h)) - 2.0 / (2.5 + h);
        y = Dense(3)(Flatten()(Concatenate()([t, c])));
        Model(x, y)
    }
}

sequential! {
    /// The same in one dimension.
    pub struct ExportedResample1d: [10, 2] {
        ZeroPadding1D([2, 1]),
        Conv1D(3, 3),
        Cropping1D([1, 2]),
        Permute([2, 1]),
        Flatten,
        Dense(2),
    }
}

functional! {
    /// Self-attention, then a causal cross-attention with a value and a key of their own (other
    /// widths, value_dim apart from key_dim), a residual Add, LayerNormalization and pooling: per
    /// head MatMuls, the causal mask added to the scores, a Softmax over the key steps.
    pub struct ExportedAttention {
        x = Input([5, 6]);
        v = Dense(4)(x);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(x, x);
        c = MultiHeadAttention(num_heads = 3, key_dim = 2, value_dim = 5, use_causal_mask = true)(a, v, x);
        s = Add()([x, c]);
        n = LayerNormalization()(s);
        y = Dense(3)(GlobalAveragePooling1D()(n));
        Model(x, y)
    }
}

functional! {
    /// Attention under Keras' `attention_mask`, here computed from the input (the positive
    /// entries of `x·xᵀ`), without biases: the mask is a Where on the scores.
    pub struct ExportedAttentionMask {
        x = Input([5, 6]);
        m = relu(matmul(x, x, transpose_b = true));
        a = MultiHeadAttention(num_heads = 2, key_dim = 4, use_bias = false)(x, x, attention_mask = m);
        y = Dense(2)(GlobalAveragePooling1D()(a));
        Model(x, y)
    }
}

functional! {
    /// Keras' masks: token ids padded anywhere (id 0), through recurrent layers reading
    /// forwards, backwards and both ways (returning their states too, and started from them),
    /// self-attention and masked means, every branch an output feature of its own.
    pub struct ExportedMasked {
        tokens = Input([7], dtype = i32);
        e = Embedding(20, 6, mask_zero = true)(tokens);
        s = LSTM(5, return_sequences = true)(e);
        b = GRU(4, go_backwards = true, return_sequences = true)(s);
        last = LSTM(3)(b);
        back = GRU(3, go_backwards = true)(e);
        both = Bidirectional(SimpleRNN(3, return_sequences = true))(e);
        summed = Bidirectional(GRU(2, return_sequences = true), merge_mode = "sum")(e);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(e, e);
        (rs, rh, rc) = LSTM(3, return_sequences = true, return_state = true, go_backwards = true)(e);
        (bo, bf, bb) = Bidirectional(GRU(2, return_state = true))(e);
        started = LSTM(3, return_sequences = true)(e, initial_state = [rh, rc]);
        back_started = GRU(2, return_sequences = true, go_backwards = true)(e, initial_state = [bf]);
        pooled = Concatenate()([GlobalAveragePooling1D()(both), GlobalAveragePooling1D()(summed)]);
        states = Concatenate()([GlobalAveragePooling1D()(rs), rh, rc, bo, bf, bb, Flatten()(started), Flatten()(back_started)]);
        y = Concatenate()([last, back, pooled, GlobalAveragePooling1D()(a), states]);
        Model(tokens, y)
    }
}

/// [`ExportedMasked`] with its embeddings scaled from Keras' ±0.05 to ±1, so that a padded
/// step read as a real one would change the outputs far beyond the tolerance.
fn masked() -> ExportedMasked {
    let mut m = ExportedMasked::with_seed(33);
    let e = m.get_weight("embedding.embeddings").unwrap().mapv(|v| 20.0 * v);
    m.set_weight("embedding.embeddings", &e).unwrap();
    m
}

sequential! {
    /// Keras' `Masking`: the steps whose features are all 0 skipped by the recurrent layers.
    pub struct ExportedMasking: [5, 3] {
        Masking(mask_value = 0.0),
        SimpleRNN(4, return_sequences = true),
        GRU(3, go_backwards = true),
    }
}

functional! {
    /// Bidirectional layers' `return_state`: Keras' five values of an LSTM (the output, then
    /// each direction's final states), three of a GRU returning its averaged sequence, all read,
    /// and the states starting two more Bidirectional layers (`initial_state`).
    pub struct ExportedBidirectionalStates {
        x = Input([6, 3]);
        (o, fh, fc, bh, bc) = Bidirectional(LSTM(4, return_state = true))(x);
        (seq, gf, gb) = Bidirectional(GRU(3, return_sequences = true, return_state = true), merge_mode = "ave")(x);
        started = Bidirectional(LSTM(4))(seq, initial_state = [fh, fc, bh, bc]);
        again = Bidirectional(GRU(3), merge_mode = "sum")(x, initial_state = [gf, gb]);
        y = Concatenate()([o, fh, fc, bh, bc, GlobalAveragePooling1D()(seq), gf, gb, started, again]);
        Model(x, y)
    }
}

sequential! {
    /// TimeDistributed around layers other than Dense: a Conv2D and a pooling on every frame,
    /// a reshape, then an LSTM over each frame's rows.
    pub struct ExportedFrames: [3, 6, 6, 2] {
        TimeDistributed(Conv2D(4, 3, activation = relu)),
        TimeDistributed(MaxPooling2D(2)),
        TimeDistributed(Reshape([4, 4])),
        TimeDistributed(LSTM(5)),
        LSTM(3),
    }
}

functional! {
    /// Keras' `return_state` and `initial_state`: an LSTM's final states start a second LSTM,
    /// a GRU read backwards returns its sequence and its state, which starts a SimpleRNN.
    pub struct ExportedStates {
        x = Input([6, 3]);
        (_, h, c) = LSTM(5, return_state = true)(x);
        (seq, s) = GRU(4, return_sequences = true, return_state = true, go_backwards = true)(x);
        d = LSTM(5, return_sequences = true)(seq, initial_state = [h, c]);
        (last, r) = SimpleRNN(4, return_state = true)(d, initial_state = [s]);
        y = Dense(2)(Concatenate()([last, r, h]));
        Model(x, y)
    }
}

functional! {
    /// An encoder's final states starting a decoder, and a GRU's returned state starting a
    /// SimpleRNN, all forward: exported, and imported back.
    pub struct ExportedEncoderDecoder {
        x = Input([6, 3]);
        (_, h, c) = LSTM(5, return_state = true)(x);
        d = LSTM(5, return_sequences = true)(x, initial_state = [h, c]);
        (seq, s) = GRU(4, return_sequences = true, return_state = true)(d);
        r = SimpleRNN(4)(seq, initial_state = [s]);
        y = Dense(2)(Concatenate()([r, h]));
        Model(x, y)
    }
}

sequential! {
    /// Numbers to their buckets as multi-hot rows (Discretization), then a Dense.
    pub struct ExportedBuckets: [3] {
        Discretization(bin_boundaries = [-1.0, -0.25, 0.0, 0.5, 1.5], output_mode = multi_hot),
        Dense(2),
    }
}

sequential! {
    /// Integer ids counted into rows (CategoryEncoding), then a Dense.
    pub struct ExportedCategories: [3], dtype = i32 {
        CategoryEncoding(num_tokens = 5, output_mode = count),
        Dense(2),
    }
}

sequential! {
    /// Integers through an IntegerLookup (two out-of-vocabulary columns, one vocabulary entry
    /// left unused) counted into rows, then a Dense.
    pub struct ExportedLookup: [4] {
        IntegerLookup(max_tokens = 9, num_oov_indices = 2, output_mode = count),
        Dense(3),
    }
}

functional! {
    /// Keras' dot-product Attention (a learnt scale, causal) and Bahdanau's AdditiveAttention
    /// over a key of its own, on token ids padded anywhere, every output an output feature.
    pub struct ExportedDotAttention {
        tokens = Input([6], dtype = i32);
        e = Embedding(20, 4, mask_zero = true)(tokens);
        k = Dense(4)(e);
        a = Attention(use_scale = true, use_causal_mask = true)([e, e]);
        b = AdditiveAttention()([e, e, k]);
        y = Concatenate()([Flatten()(a), Flatten()(b)]);
        Model(tokens, y)
    }
}

/// [`ExportedDotAttention`] with its embeddings scaled to ±1 and the dot product's scale away
/// from its initial 1.
fn dot_attention() -> ExportedDotAttention {
    let mut m = ExportedDotAttention::with_seed(38);
    let e = m.get_weight("embedding.embeddings").unwrap().mapv(|v| 20.0 * v);
    m.set_weight("embedding.embeddings", &e).unwrap();
    m.set_weight("attention.scale", &kiln::ndarray::arr0(1.7f32)).unwrap();
    m
}

/// [`ExportedLookup`] adapted to six values.
fn lookup() -> ExportedLookup {
    let mut m = ExportedLookup::with_seed(37);
    let seen = [7.0f32, 3.0, 3.0, 9.0, 7.0, 12.0, -4.0, 3.0, 12.0, 5.0];
    m.adapt("integer_lookup", &kiln::ndarray::Array2::from_shape_vec((10, 1), seen.to_vec()).unwrap()).unwrap();
    m
}

#[kiln::onnx("../fixtures/onnx/kiln_export.onnx")]
pub struct Reimported;
#[kiln::onnx("../fixtures/onnx/kiln_export_backwards_last.onnx")]
pub struct ReimportedBackwardsLast;
#[kiln::onnx("../fixtures/onnx/kiln_export_rnn.onnx")]
pub struct ReimportedRnn;
#[kiln::onnx("../fixtures/onnx/kiln_export_text.onnx")]
pub struct ReimportedText;
#[kiln::onnx("../fixtures/onnx/kiln_export_cnn.onnx")]
pub struct ReimportedCnn;
#[kiln::onnx("../fixtures/onnx/kiln_export_seq.onnx")]
pub struct ReimportedSeq;
#[kiln::onnx("../fixtures/onnx/kiln_export_resample.onnx")]
pub struct ReimportedResample;
#[kiln::onnx("../fixtures/onnx/kiln_export_resample1d.onnx")]
pub struct ReimportedResample1d;
#[kiln::onnx("../fixtures/onnx/kiln_export_upsampling.onnx")]
pub struct ReimportedUpSampling;
#[kiln::onnx("../fixtures/onnx/kiln_export_convs.onnx")]
pub struct ReimportedConvs;
#[kiln::onnx("../fixtures/onnx/kiln_export_math.onnx")]
pub struct ReimportedMath;
#[kiln::onnx("../fixtures/onnx/kiln_export_bidirectional_last.onnx")]
pub struct ReimportedBidirectionalLast;
#[kiln::onnx("../fixtures/onnx/kiln_export_features.onnx")]
pub struct ReimportedFeatures;
#[kiln::onnx("../fixtures/onnx/kiln_export_bidirectional.onnx")]
pub struct ReimportedBidirectional;
#[kiln::onnx("../fixtures/onnx/kiln_export_steps.onnx")]
pub struct ReimportedSteps;
#[kiln::onnx("../fixtures/onnx/kiln_export_dot.onnx")]
pub struct ReimportedDot;
#[kiln::onnx("../fixtures/onnx/kiln_export_attention.onnx")]
pub struct ReimportedAttention;
#[kiln::onnx("../fixtures/onnx/kiln_export_encoder_decoder.onnx")]
pub struct ReimportedEncoderDecoder;

/// Moving statistics that are not the identity.
fn statistics(m: &mut impl Model, layer: &str, n: usize) {
    let mean = kiln::ndarray::Array1::from_shape_fn(n, |i| (i as f32 - 8.0) / 20.0);
    let var = kiln::ndarray::Array1::from_shape_fn(n, |i| 0.5 + i as f32 / 16.0);
    m.set_weight(&format!("{layer}.moving_mean"), &mean).unwrap();
    m.set_weight(&format!("{layer}.moving_variance"), &var).unwrap();
}

fn mlp() -> Exported {
    let mut m = Exported::with_seed(7);
    statistics(&mut m, "batch_normalization", 16);
    m
}

fn cnn() -> ExportedCnn {
    let mut m = ExportedCnn::with_seed(8);
    statistics(&mut m, "batch_normalization", 6);
    m
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/onnx/{name}.onnx", env!("CARGO_MANIFEST_DIR"))
}

/// A subclassed model: Dense fields, an array field, LayerNormalization, a residual sum and
/// math on the values (`sigmoid(h) * 2.0`), the fields written as the other styles' layers.
#[kiln::model]
pub struct ExportedSubclass {
    inp: Dense<6, 8, Tanh>,
    blocks: [Dense<8, 8, Relu>; 2],
    norm: kiln::LayerNormalization<8>,
    head: Dense<16, 3, Softmax>,
}

#[kiln::call]
impl ExportedSubclass {
    fn call(&self, x: Input<6>) -> Output<3> {
        let h = self.inp(x);
        let r = self.blocks[1](self.blocks[0](h)) + h;
        let n = self.norm(r);
        self.head(concatenate([n, sigmoid(h) * 2.0]))
    }
}

/// A subclassed CNN and LSTM: convolution and pooling fields on an image, an LSTM field on
/// the rows of its feature map.
#[kiln::model]
pub struct ExportedSubclassCnn {
    conv: kiln::Conv2D<1, 4, 3, Relu, kiln::Same>,
    pool: kiln::MaxPooling2D<2>,
    lstm: kiln::LstmSeq<16, 5>,
    head: Dense<5, 2, Softmax>,
}

#[kiln::call]
impl ExportedSubclassCnn {
    fn call(&self, x: Input<8, 8, 1>) -> Output<2> {
        let f = self.pool(self.conv(x));
        self.head(last_step(self.lstm(reshape(f, [4, 16]))))
    }
}

/// A subclassed transformer block: a causal self-attention field with a residual
/// LayerNormalization, a feed-forward pair of Dense fields, the steps averaged, a head.
#[kiln::model]
pub struct ExportedSubclassBlock {
    attn: kiln::SelfAttention<8, 2, 4, true>,
    norm1: kiln::LayerNormalization<8>,
    ff: Dense<8, 16, Relu>,
    ff2: Dense<16, 8>,
    norm2: kiln::LayerNormalization<8>,
    head: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl ExportedSubclassBlock {
    fn call(&self, x: Input<5, 8>) -> Output<3> {
        let h = self.norm1(x + self.attn(x));
        let f = self.norm2(h + self.ff2(self.ff(h)));
        self.head(mean(f, axis = 1))
    }
}

/// A subclassed model with weights of its own: a `Matrix` product, a scale and a shift by
/// `Weight` fields (set away from their initial ones and zeros), a Dense head.
#[kiln::model]
pub struct ExportedSubclassWeights {
    proj: kiln::Matrix<6, 8>,
    gamma: kiln::Weight<8, kiln::Ones>,
    beta: kiln::Weight<8>,
    head: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl ExportedSubclassWeights {
    fn call(&self, x: Input<6>) -> Output<3> {
        let h = tanh(matmul(x, self.proj)) * self.gamma + self.beta;
        self.head(h)
    }
}

fn weights() -> ExportedSubclassWeights {
    let mut m = ExportedSubclassWeights::with_seed(32);
    let gamma = kiln::ndarray::Array1::from_iter((0..8).map(|i| 0.5 + 0.25 * i as f32));
    let beta = kiln::ndarray::Array1::from_iter((0..8).map(|i| 0.1 * i as f32 - 0.3));
    m.set_weight("gamma.value", &gamma).unwrap();
    m.set_weight("beta.value", &beta).unwrap();
    m
}

/// A subclassed model holding a nested model, which `save_onnx` does not write.
#[kiln::model]
pub struct NotExported {
    inner: Exported,
}

#[kiln::call]
impl NotExported {
    fn call(&self, x: Input<6>) -> Output<3> {
        self.inner(x)
    }
}

#[test]
#[ignore = "writes tests/fixtures/onnx/kiln_export*.onnx"]
fn write_the_export_fixtures() {
    mlp().save_onnx(fixture("kiln_export")).unwrap();
    cnn().save_onnx(fixture("kiln_export_cnn")).unwrap();
    ExportedSeq::with_seed(9).save_onnx(fixture("kiln_export_seq")).unwrap();
    ExportedText::with_seed(10).save_onnx(fixture("kiln_export_text")).unwrap();
    ExportedRnn::with_seed(11).save_onnx(fixture("kiln_export_rnn")).unwrap();
    ExportedResample::with_seed(12).save_onnx(fixture("kiln_export_resample")).unwrap();
    ExportedResample1d::with_seed(13).save_onnx(fixture("kiln_export_resample1d")).unwrap();
    ExportedUpSampling::with_seed(14).save_onnx(fixture("kiln_export_upsampling")).unwrap();
    ExportedConvs::with_seed(15).save_onnx(fixture("kiln_export_convs")).unwrap();
    ExportedBidirectional::with_seed(16).save_onnx(fixture("kiln_export_bidirectional")).unwrap();
    ExportedBidirectionalLast::with_seed(17).save_onnx(fixture("kiln_export_bidirectional_last")).unwrap();
    ExportedMath::with_seed(18).save_onnx(fixture("kiln_export_math")).unwrap();
    features().save_onnx(fixture("kiln_export_features")).unwrap();
    ExportedSteps::with_seed(20).save_onnx(fixture("kiln_export_steps")).unwrap();
    ExportedDot::with_seed(21).save_onnx(fixture("kiln_export_dot")).unwrap();
    ExportedBackwards::with_seed(22).save_onnx(fixture("kiln_export_backwards")).unwrap();
    ExportedAttention::with_seed(23).save_onnx(fixture("kiln_export_attention")).unwrap();
    ExportedAttentionMask::with_seed(24).save_onnx(fixture("kiln_export_attention_mask")).unwrap();
    ExportedStates::with_seed(25).save_onnx(fixture("kiln_export_states")).unwrap();
    ExportedEncoderDecoder::with_seed(26).save_onnx(fixture("kiln_export_encoder_decoder")).unwrap();
    ExportedBuckets::with_seed(27).save_onnx(fixture("kiln_export_buckets")).unwrap();
    ExportedCategories::with_seed(28).save_onnx(fixture("kiln_export_categories")).unwrap();
    ExportedSubclass::with_seed(29).save_onnx(fixture("kiln_export_subclass")).unwrap();
    ExportedSubclassCnn::with_seed(30).save_onnx(fixture("kiln_export_subclass_cnn")).unwrap();
    ExportedSubclassBlock::with_seed(31).save_onnx(fixture("kiln_export_subclass_block")).unwrap();
    weights().save_onnx(fixture("kiln_export_subclass_weights")).unwrap();
    masked().save_onnx(fixture("kiln_export_masked")).unwrap();
    ExportedMasking::with_seed(34).save_onnx(fixture("kiln_export_masking")).unwrap();
    ExportedBidirectionalStates::with_seed(35).save_onnx(fixture("kiln_export_bidirectional_states")).unwrap();
    ExportedFrames::with_seed(36).save_onnx(fixture("kiln_export_frames")).unwrap();
    lookup().save_onnx(fixture("kiln_export_lookup")).unwrap();
    dot_attention().save_onnx(fixture("kiln_export_dot_attention")).unwrap();
    ExportedBackwardsLast::with_seed(39).save_onnx(fixture("kiln_export_backwards_last")).unwrap();
}

/// `save_onnx` writes the committed file, byte for byte.
fn writes_the_fixture(m: &impl Fn(&std::path::Path) -> kiln::Result<()>, name: &str) {
    let dir = std::env::temp_dir().join(format!("kiln-onnx-export-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exported.onnx");
    m(&path).unwrap();
    let (written, committed) = (std::fs::read(&path).unwrap(), std::fs::read(fixture(name)).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        written == committed,
        "{name}: save_onnx wrote {} bytes, the fixture has {}",
        written.len(),
        committed.len()
    );
}

#[test]
fn save_onnx_writes_the_committed_files() {
    writes_the_fixture(&|p| mlp().save_onnx(p), "kiln_export");
    writes_the_fixture(&|p| cnn().save_onnx(p), "kiln_export_cnn");
    writes_the_fixture(&|p| ExportedSeq::with_seed(9).save_onnx(p), "kiln_export_seq");
    writes_the_fixture(&|p| ExportedText::with_seed(10).save_onnx(p), "kiln_export_text");
    writes_the_fixture(&|p| ExportedRnn::with_seed(11).save_onnx(p), "kiln_export_rnn");
    writes_the_fixture(&|p| ExportedResample::with_seed(12).save_onnx(p), "kiln_export_resample");
    writes_the_fixture(&|p| ExportedResample1d::with_seed(13).save_onnx(p), "kiln_export_resample1d");
    writes_the_fixture(&|p| ExportedUpSampling::with_seed(14).save_onnx(p), "kiln_export_upsampling");
    writes_the_fixture(&|p| ExportedConvs::with_seed(15).save_onnx(p), "kiln_export_convs");
    writes_the_fixture(&|p| ExportedBidirectional::with_seed(16).save_onnx(p), "kiln_export_bidirectional");
    writes_the_fixture(&|p| ExportedBidirectionalLast::with_seed(17).save_onnx(p), "kiln_export_bidirectional_last");
    writes_the_fixture(&|p| ExportedMath::with_seed(18).save_onnx(p), "kiln_export_math");
    writes_the_fixture(&|p| features().save_onnx(p), "kiln_export_features");
    writes_the_fixture(&|p| ExportedSteps::with_seed(20).save_onnx(p), "kiln_export_steps");
    writes_the_fixture(&|p| ExportedDot::with_seed(21).save_onnx(p), "kiln_export_dot");
    writes_the_fixture(&|p| ExportedBackwards::with_seed(22).save_onnx(p), "kiln_export_backwards");
    writes_the_fixture(&|p| ExportedAttention::with_seed(23).save_onnx(p), "kiln_export_attention");
    writes_the_fixture(&|p| ExportedAttentionMask::with_seed(24).save_onnx(p), "kiln_export_attention_mask");
    writes_the_fixture(&|p| ExportedStates::with_seed(25).save_onnx(p), "kiln_export_states");
    writes_the_fixture(&|p| ExportedEncoderDecoder::with_seed(26).save_onnx(p), "kiln_export_encoder_decoder");
    writes_the_fixture(&|p| ExportedBuckets::with_seed(27).save_onnx(p), "kiln_export_buckets");
    writes_the_fixture(&|p| ExportedCategories::with_seed(28).save_onnx(p), "kiln_export_categories");
    writes_the_fixture(&|p| ExportedSubclass::with_seed(29).save_onnx(p), "kiln_export_subclass");
    writes_the_fixture(&|p| ExportedSubclassCnn::with_seed(30).save_onnx(p), "kiln_export_subclass_cnn");
    writes_the_fixture(&|p| ExportedSubclassBlock::with_seed(31).save_onnx(p), "kiln_export_subclass_block");
    writes_the_fixture(&|p| weights().save_onnx(p), "kiln_export_subclass_weights");
    writes_the_fixture(&|p| masked().save_onnx(p), "kiln_export_masked");
    writes_the_fixture(&|p| ExportedMasking::with_seed(34).save_onnx(p), "kiln_export_masking");
    writes_the_fixture(
        &|p| ExportedBidirectionalStates::with_seed(35).save_onnx(p),
        "kiln_export_bidirectional_states",
    );
    writes_the_fixture(&|p| ExportedFrames::with_seed(36).save_onnx(p), "kiln_export_frames");
    writes_the_fixture(&|p| lookup().save_onnx(p), "kiln_export_lookup");
    writes_the_fixture(&|p| dot_attention().save_onnx(p), "kiln_export_dot_attention");
    writes_the_fixture(&|p| ExportedBackwardsLast::with_seed(39).save_onnx(p), "kiln_export_backwards_last");
}

/// A subclassed model with a field `save_onnx` cannot write says which, and writes nothing.
#[test]
fn save_onnx_of_a_model_holding_a_nested_model_says_why_it_cannot() {
    let path = std::env::temp_dir().join(format!("kiln-onnx-not-exported-{}.onnx", std::process::id()));
    let e = NotExported::new().save_onnx(&path).unwrap_err().to_string();
    assert!(e.contains("field `inner` has no ONNX export yet") && e.contains("NotExported"), "{e}");
    assert!(!path.exists());
}

/// onnxruntime's outputs on the committed file `name` (`<name>.txt`) are `predict`'s of the
/// same input, within 1e-5.
fn runs_as_kiln_does<D: kiln::ndarray::Dimension>(
    name: &str,
    predict: impl FnOnce(&ArrayD<f32>) -> kiln::Result<kiln::ndarray::Array<f32, D>>,
) {
    let r = reference(name);
    let got = predict(&r.input).unwrap();
    let want = r.output.iter().copied().collect::<Vec<_>>();
    assert!(max_abs(&format!("{name} predict"), got.as_slice().unwrap(), &want) <= 1e-5);
}

/// onnxruntime runs each exported file as kiln runs the model, and each imports back.
#[test]
fn onnxruntime_runs_the_exports_as_kiln_does_and_they_import_back() {
    let check = |name: &str, got: &[f32], back: &[f32]| {
        let r = reference(name);
        let want = r.output.iter().copied().collect::<Vec<_>>();
        assert!(max_abs(&format!("{name} predict"), got, &want) <= 1e-5);
        assert!(max_abs(&format!("{name} imported back"), back, got) <= 1e-6);
    };
    let x = reference("kiln_export").input;
    let (a, b) = (mlp().predict(&x).unwrap(), Reimported::embedded().predict(&x).unwrap());
    check("kiln_export", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_cnn").input;
    let (a, b) = (cnn().predict(&x).unwrap(), ReimportedCnn::embedded().predict(&x).unwrap());
    check("kiln_export_cnn", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_seq").input;
    let (a, b) = (ExportedSeq::with_seed(9).predict(&x).unwrap(), ReimportedSeq::embedded().predict(&x).unwrap());
    check("kiln_export_seq", a.as_slice().unwrap(), b.as_slice().unwrap());
    let ids = reference("kiln_export_text").input.mapv(|v| v as i32);
    let (a, b) =
        (ExportedText::with_seed(10).predict(&ids).unwrap(), ReimportedText::embedded().predict(&ids).unwrap());
    check("kiln_export_text", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_rnn").input;
    let (a, b) = (ExportedRnn::with_seed(11).predict(&x).unwrap(), ReimportedRnn::embedded().predict(&x).unwrap());
    check("kiln_export_rnn", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_resample").input;
    let (a, b) =
        (ExportedResample::with_seed(12).predict(&x).unwrap(), ReimportedResample::embedded().predict(&x).unwrap());
    check("kiln_export_resample", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_resample1d").input;
    let (a, b) =
        (ExportedResample1d::with_seed(13).predict(&x).unwrap(), ReimportedResample1d::embedded().predict(&x).unwrap());
    check("kiln_export_resample1d", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_upsampling").input;
    let (a, b) =
        (ExportedUpSampling::with_seed(14).predict(&x).unwrap(), ReimportedUpSampling::embedded().predict(&x).unwrap());
    check("kiln_export_upsampling", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_convs").input;
    let (a, b) = (ExportedConvs::with_seed(15).predict(&x).unwrap(), ReimportedConvs::embedded().predict(&x).unwrap());
    check("kiln_export_convs", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_math").input;
    let (a, b) = (ExportedMath::with_seed(18).predict(&x).unwrap(), ReimportedMath::embedded().predict(&x).unwrap());
    check("kiln_export_math", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_features").input;
    let (a, b) = (features().predict(&x).unwrap(), ReimportedFeatures::embedded().predict(&x).unwrap());
    check("kiln_export_features", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_steps").input;
    let (a, b) = (ExportedSteps::with_seed(20).predict(&x).unwrap(), ReimportedSteps::embedded().predict(&x).unwrap());
    check("kiln_export_steps", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_backwards_last").input;
    let (a, b) = (
        ExportedBackwardsLast::with_seed(39).predict(&x).unwrap(),
        ReimportedBackwardsLast::embedded().predict(&x).unwrap(),
    );
    check("kiln_export_backwards_last", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_dot").input;
    let (a, b) = (ExportedDot::with_seed(21).predict(&x).unwrap(), ReimportedDot::embedded().predict(&x).unwrap());
    check("kiln_export_dot", a.as_slice().unwrap(), b.as_slice().unwrap());
    // Exported only: kiln imports forward and bidirectional recurrent operators, and not
    // ONNX's Where, which an attention mask is written with.
    runs_as_kiln_does("kiln_export_backwards", |x| ExportedBackwards::with_seed(22).predict(x));
    runs_as_kiln_does("kiln_export_attention_mask", |x| ExportedAttentionMask::with_seed(24).predict(x));
    // The preprocessing layers: exported only (the importer reads neither OneHot nor
    // GreaterOrEqual).
    runs_as_kiln_does("kiln_export_buckets", |x| ExportedBuckets::with_seed(27).predict(x));
    runs_as_kiln_does("kiln_export_categories", |x| ExportedCategories::with_seed(28).predict(&x.mapv(|v| v as i32)));
    // Subclassed models: exported only (the importer writes functional models).
    runs_as_kiln_does("kiln_export_subclass", |x| ExportedSubclass::with_seed(29).predict(x));
    runs_as_kiln_does("kiln_export_subclass_cnn", |x| ExportedSubclassCnn::with_seed(30).predict(x));
    runs_as_kiln_does("kiln_export_subclass_block", |x| ExportedSubclassBlock::with_seed(31).predict(x));
    runs_as_kiln_does("kiln_export_subclass_weights", |x| weights().predict(x));
    // Masks: exported only (the importer reads neither TopK nor CumSum).
    runs_as_kiln_does("kiln_export_masked", |x| masked().predict(&x.mapv(|v| v as i32)));
    runs_as_kiln_does("kiln_export_masking", |x| ExportedMasking::with_seed(34).predict(x));
    runs_as_kiln_does("kiln_export_bidirectional_states", |x| ExportedBidirectionalStates::with_seed(35).predict(x));
    runs_as_kiln_does("kiln_export_frames", |x| ExportedFrames::with_seed(36).predict(x));
    runs_as_kiln_does("kiln_export_lookup", |x| lookup().predict(x));
    runs_as_kiln_does("kiln_export_dot_attention", |x| dot_attention().predict(&x.mapv(|v| v as i32)));
    runs_as_kiln_does("kiln_export_states", |x| ExportedStates::with_seed(25).predict(x));
    let x = reference("kiln_export_encoder_decoder").input;
    let (a, b) = (
        ExportedEncoderDecoder::with_seed(26).predict(&x).unwrap(),
        ReimportedEncoderDecoder::embedded().predict(&x).unwrap(),
    );
    check("kiln_export_encoder_decoder", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_attention").input;
    let (a, b) =
        (ExportedAttention::with_seed(23).predict(&x).unwrap(), ReimportedAttention::embedded().predict(&x).unwrap());
    check("kiln_export_attention", a.as_slice().unwrap(), b.as_slice().unwrap());
    let x = reference("kiln_export_bidirectional_last").input;
    let (a, b) = (
        ExportedBidirectionalLast::with_seed(17).predict(&x).unwrap(),
        ReimportedBidirectionalLast::embedded().predict(&x).unwrap(),
    );
    check("kiln_export_bidirectional_last", a.as_slice().unwrap(), b.as_slice().unwrap());
    // Relative to the outputs, which the `mul` merge keeps small.
    let r = reference("kiln_export_bidirectional");
    let got = ExportedBidirectional::with_seed(16).predict(&r.input).unwrap();
    let back = ReimportedBidirectional::embedded().predict(&r.input).unwrap();
    let want = r.output.iter().copied().collect::<Vec<_>>();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max_abs("kiln_export_bidirectional predict", got.as_slice().unwrap(), &want) <= 1e-5 * scale);
    let (got, back) = (got.as_slice().unwrap(), back.as_slice().unwrap());
    assert!(max_abs("kiln_export_bidirectional imported back", back, got) <= 1e-6 * scale);
}

functional! {
    /// A masked Bidirectional layer started from an initial_state, which has no ONNX form in
    /// kiln yet.
    pub struct NotExportedLayer {
        tokens = Input([4], dtype = i32);
        e = Embedding(10, 3, mask_zero = true)(tokens);
        (_, fh, bh) = Bidirectional(GRU(2, return_state = true))(e);
        y = Bidirectional(GRU(2))(e, initial_state = [fh, bh]);
        Model(tokens, y)
    }
}

/// A layer with no ONNX form yet: `save_onnx` says which, and writes nothing.
#[test]
fn a_layer_without_an_onnx_form_is_named() {
    let path = std::env::temp_dir().join(format!("kiln-never-written-{}.onnx", std::process::id()));
    let err = NotExportedLayer::new().save_onnx(&path).unwrap_err().to_string();
    assert!(err.contains("layer `bidirectional_1` (Bidirectional) has no ONNX export yet"), "{err}");
    assert!(!path.exists());
}
