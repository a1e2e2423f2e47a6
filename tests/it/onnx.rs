//! ONNX import (`#[kiln::onnx("..")]`): models exported from PyTorch (and Keras, through
//! tf2onnx), compiled into kiln models when the tests compile, against onnxruntime's outputs on
//! the same inputs (`tests/fixtures/onnx/<name>.txt`, written with the files by
//! `examples/onnx/make_fixtures.py`; these tests need no Python). Then what any kiln model does:
//! the summary, `infer`, and fine-tuning with `fit`.

use kiln::ndarray::{ArrayD, IxDyn};
use kiln::prelude::*;

/// An MLP of Gemm layers with Relu, Tanh, LeakyRelu, Sigmoid, Elu, scalar Mul and Sub, Softmax.
#[kiln::onnx("../fixtures/onnx/torch_mlp.onnx")]
pub struct TorchMlp;

/// The MNIST-1D CNN: three Conv1d (25 channels, kernels 5/3/3, stride 2, padding 1), flattened
/// with `view(batch, -1)` (Shape, Gather, Unsqueeze, Concat, Reshape: folded), a Gemm head.
#[kiln::onnx("../fixtures/onnx/torch_mnist1d_cnn.onnx")]
pub struct Mnist1dCnn;

/// Conv2d (padded, strided), MaxPool, AveragePool, a skip Add, Div by a number, Concat along the
/// channels, GlobalAveragePool, Flatten, BatchNormalization, Gemm.
#[kiln::onnx("../fixtures/onnx/torch_cnn2d.onnx")]
pub struct Cnn2d;

/// Pad (its pads computed by ConstantOfShape, Slice, Transpose and Reshape: folded), a grouped
/// Conv1d, a Transpose, LayerNormalization, a Linear on every step (MatMul, Add), Flatten.
#[kiln::onnx("../fixtures/onnx/torch_blocks.onnx")]
pub struct TorchBlocks;

/// An LSTM classifier: Transposes to ONNX's `[steps, batch, features]` and back (they move
/// nothing), LSTM (its gates reordered), Squeeze, the last step by Gather, a Gemm head.
#[kiln::onnx("../fixtures/onnx/torch_lstm.onnx")]
pub struct TorchLstm;

/// The LSTM classifier exported with its batch fixed at 1 (no symbolic axis): axis 0 is read as
/// the batch all the same, and the model takes any number of rows.
#[kiln::onnx("../fixtures/onnx/torch_lstm_batch1.onnx")]
pub struct TorchLstmBatch1;

/// A GRU (`linear_before_reset`) whose final state `h_n[-1]` feeds a Gemm head.
#[kiln::onnx("../fixtures/onnx/torch_gru.onnx")]
pub struct TorchGru;

/// A bidirectional LSTM whose directions are put side by side by a Reshape with the batch axis
/// second (ONNX's `[steps, batch, 2, units]` to `[steps, batch, 2 units]`).
#[kiln::onnx("../fixtures/onnx/torch_bilstm.onnx")]
pub struct TorchBiLstm;

/// Token ids (an int64 input): Gather from a table (an Embedding), ReduceMean over the steps,
/// a Gemm head.
#[kiln::onnx("../fixtures/onnx/torch_text.onnx")]
pub struct TorchText;

/// Transposed convolutions (padding and output_padding: a crop after kiln's), channels-first
/// images out.
#[kiln::onnx("../fixtures/onnx/torch_decoder.onnx")]
pub struct TorchDecoder;

/// A transformer encoder block written out (two heads): MatMul of computed values (a
/// transposed key read as such), Softmax over the last axis, heads split and merged by Reshape
/// and Transpose, residual Adds, LayerNormalization, ReduceMean.
#[kiln::onnx("../fixtures/onnx/torch_encoder.onnx")]
pub struct TorchEncoder;

/// Operators written with `onnx.helper` (opset 20): Gelu in both forms, Abs, Neg, Exp, Log,
/// Sqrt, Softplus, numbers on either side of Add, Sub, Div, a `[1, 6]` constant tensor
/// multiplied in, Concat, ReduceSum (kept axis), ReduceMax, LogSoftmax, Softmax along the middle
/// axis, a broadcast Mul of two computed values, Flatten.
#[kiln::onnx("../fixtures/onnx/ops_opset20.onnx")]
pub struct Ops20;

/// Opset 11: Softmax over every axis from `axis` on, Unsqueeze and Squeeze with attribute axes,
/// ReduceMean, a broadcast Sub.
#[kiln::onnx("../fixtures/onnx/ops_opset11.onnx")]
pub struct Ops11;

/// nn.GELU as opset 17 writes it (Div, Erf, Add, Mul, Mul: kiln's gelu), ReLU6 and clamp
/// (Clip), pow (Pow), 1 / x (Reciprocal).
#[kiln::onnx("../fixtures/onnx/torch_gelu.onnx")]
pub struct TorchGelu;

/// nn.MultiheadAttention (two heads): PyTorch folds the batch into the heads and the steps into
/// the batch on the way; kiln keeps those axes as sample axes, and the folds move nothing.
#[kiln::onnx("../fixtures/onnx/torch_mha.onnx")]
pub struct TorchMha;

/// PyTorch's own nn.TransformerEncoderLayer (two heads, a GELU feed-forward written with Erf,
/// LayerNorms), averaged over the steps to a linear head.
#[kiln::onnx("../fixtures/onnx/torch_encoder_layer.onnx")]
pub struct TorchEncoderLayer;

/// A Keras MLP through tf2onnx: MatMul then Add (one Dense each), Relu, Tanh, Softmax.
#[kiln::onnx("../fixtures/onnx/keras_mlp.onnx")]
pub struct KerasMlp;

/// A Keras Conv1D network through tf2onnx: Unsqueeze, Transpose to channels-first, 2-D Conv
/// over a height of 1, Squeeze, a bias Add of a `[1, C, 1]` constant, MaxPool, Elu, Transpose
/// back and Reshape; the Transposes move nothing in kiln, the bias Adds become the
/// convolutions' biases.
#[kiln::onnx("../fixtures/onnx/keras_cnn1d.onnx")]
pub struct KerasCnn1d;

/// The MNIST-1D CNN with `infer`'s kernels in int8.
#[kiln::onnx("../fixtures/onnx/torch_mnist1d_cnn.onnx", dtype = int8)]
pub struct Mnist1dCnnInt8;

/// The MNIST-1D CNN trained (in PyTorch) on `chunk_task`.
#[kiln::onnx("../fixtures/onnx/torch_mnist1d_cnn_trained.onnx")]
pub struct Mnist1dTrained;

/// The trained CNN as firmware builds it: `infer` only (nothing that needs the standard
/// library), its kernels in int8.
#[kiln::onnx("../fixtures/onnx/torch_mnist1d_cnn_trained.onnx", dtype = int8)]
#[inference_only]
pub struct Mnist1dTrainedInt8;

/// Nearest up-sampling of an image and of a sequence, channels first (PyTorch's Resize).
#[kiln::onnx("../fixtures/onnx/torch_upsampling.onnx")]
pub struct TorchUpsampling;

/// 1-D transposed convolutions (strided, with pads and output padding; without a bias).
#[kiln::onnx("../fixtures/onnx/torch_conv_transpose1d.onnx")]
pub struct TorchConvTranspose1d;

/// The MLP saved with its weights in a file beside it (ONNX's external data).
#[kiln::onnx("../fixtures/onnx/torch_mlp_external.onnx")]
pub struct TorchMlpExternal;

/// External data reads the same weights as the file that holds them inline.
#[test]
fn external_data_imports_as_weights_inside_the_file_do() {
    let r = reference("torch_mlp");
    let inline = TorchMlp::embedded().predict(&r.input).unwrap();
    assert_eq!(TorchMlpExternal::embedded().predict(&r.input).unwrap(), inline);
    let values = |w: Vec<(String, kiln::Param)>| w.into_iter().map(|(n, p)| (n, p.value)).collect::<Vec<_>>();
    assert_eq!(values(TorchMlpExternal::embedded().weights()), values(TorchMlp::embedded().weights()));
}

/// A fixture's input rows and onnxruntime's outputs.
struct Reference {
    input: ArrayD<f32>,
    output: ArrayD<f32>,
}

fn reference(name: &str) -> Reference {
    let path = format!("{}/tests/fixtures/onnx/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let mut array = |tag: &str| {
        let head = lines.next().unwrap_or_default();
        let mut words = head.split_whitespace();
        assert_eq!(words.next(), Some(tag), "{path}: expected `{tag}`");
        let shape: Vec<usize> = words.map(|w| w.parse().unwrap()).collect();
        let vals: Vec<f32> = lines.next().unwrap_or_default().split_whitespace().map(|w| w.parse().unwrap()).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), vals).unwrap()
    };
    let input = array("input");
    let output = array("output");
    Reference { input, output }
}

/// The largest absolute difference, printed with `--nocapture`.
fn max_abs(name: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("{name}: max |kiln - onnxruntime| = {worst:e}");
    worst
}

/// `predict` against onnxruntime; with a second test's name, the generated `infer` too (models
/// whose every layer has a static kernel: all but the weights a constant tensor becomes).
macro_rules! matches_onnxruntime {
    ($test:ident, $model:ident, $file:literal) => {
        #[test]
        fn $test() {
            let r = reference($file);
            let mut m = $model::embedded();
            let got = m.predict(&r.input).unwrap();
            assert_eq!(got.shape(), r.output.shape());
            let got = got.iter().copied().collect::<Vec<_>>();
            let want = r.output.iter().copied().collect::<Vec<_>>();
            assert!(max_abs(concat!($file, " predict"), &got, &want) <= 1e-5);
        }
    };
    ($test:ident, $model:ident, $file:literal, $infer_test:ident) => {
        matches_onnxruntime!($test, $model, $file);

        #[test]
        fn $infer_test() {
            let r = reference($file);
            let want = r.output.iter().copied().collect::<Vec<_>>();
            // One sample at a time, on the same weights.
            let per = r.input.len() / r.input.shape()[0];
            let out = want.len() / r.input.shape()[0];
            for (i, row) in r.input.as_slice().unwrap().chunks(per).enumerate() {
                let y = $model::infer(row.try_into().unwrap());
                assert!(max_abs(concat!($file, " infer"), &y, &want[i * out..(i + 1) * out]) <= 1e-5);
            }
        }
    };
}

matches_onnxruntime!(
    a_pytorch_mlp_matches_onnxruntime,
    TorchMlp,
    "torch_mlp",
    a_pytorch_mlp_infers_as_onnxruntime_does
);
matches_onnxruntime!(
    the_mnist1d_cnn_matches_onnxruntime,
    Mnist1dCnn,
    "torch_mnist1d_cnn",
    the_mnist1d_cnn_infers_as_onnxruntime_does
);
matches_onnxruntime!(a_2d_cnn_matches_onnxruntime, Cnn2d, "torch_cnn2d", a_2d_cnn_infers_as_onnxruntime_does);
matches_onnxruntime!(
    transposed_1d_convolutions_match_onnxruntime,
    TorchConvTranspose1d,
    "torch_conv_transpose1d",
    transposed_1d_convolutions_infer_as_onnxruntime_does
);
matches_onnxruntime!(
    nearest_up_sampling_matches_onnxruntime,
    TorchUpsampling,
    "torch_upsampling",
    nearest_up_sampling_infers_as_onnxruntime_does
);
matches_onnxruntime!(
    padding_groups_and_layer_norm_match_onnxruntime,
    TorchBlocks,
    "torch_blocks",
    padding_groups_and_layer_norm_infer_as_onnxruntime_does
);
matches_onnxruntime!(
    an_lstm_classifier_matches_onnxruntime,
    TorchLstm,
    "torch_lstm",
    an_lstm_classifier_infers_as_onnxruntime_does
);
matches_onnxruntime!(
    a_bidirectional_lstm_matches_onnxruntime,
    TorchBiLstm,
    "torch_bilstm",
    a_bidirectional_lstm_infers_as_onnxruntime_does
);
matches_onnxruntime!(
    a_file_with_a_fixed_batch_of_one_matches_onnxruntime,
    TorchLstmBatch1,
    "torch_lstm_batch1",
    a_file_with_a_fixed_batch_of_one_infers_as_onnxruntime_does
);

/// A file with a fixed batch of 1 still takes any number of rows: the same model as the one
/// with a symbolic batch axis.
#[test]
fn a_fixed_batch_of_one_takes_any_number_of_rows() {
    let r = reference("torch_lstm");
    let a = TorchLstmBatch1::embedded().predict(&r.input).unwrap();
    let b = TorchLstm::embedded().predict(&r.input).unwrap();
    assert_eq!(a, b);
}
matches_onnxruntime!(a_gru_matches_onnxruntime, TorchGru, "torch_gru", a_gru_infers_as_onnxruntime_does);
matches_onnxruntime!(
    transposed_convolutions_match_onnxruntime,
    TorchDecoder,
    "torch_decoder",
    transposed_convolutions_infer_as_onnxruntime_does
);
matches_onnxruntime!(
    an_encoder_block_matches_onnxruntime,
    TorchEncoder,
    "torch_encoder",
    an_encoder_block_infers_as_onnxruntime_does
);
matches_onnxruntime!(
    multi_head_attention_matches_onnxruntime,
    TorchMha,
    "torch_mha",
    multi_head_attention_infers_as_onnxruntime_does
);
matches_onnxruntime!(a_transformer_encoder_layer_matches_onnxruntime, TorchEncoderLayer, "torch_encoder_layer");
matches_onnxruntime!(
    gelu_clip_and_pow_match_onnxruntime,
    TorchGelu,
    "torch_gelu",
    gelu_clip_and_pow_infer_as_onnxruntime_does
);
matches_onnxruntime!(operators_of_opset_20_match_onnxruntime, Ops20, "ops_opset20");
matches_onnxruntime!(operators_of_opset_11_match_onnxruntime, Ops11, "ops_opset11");

/// Token ids through an imported Embedding, in `predict` and `infer`.
#[test]
fn an_embedding_of_token_ids_matches_onnxruntime() {
    let r = reference("torch_text");
    let ids = r.input.mapv(|v| v as i32);
    let got = TorchText::embedded().predict(&ids).unwrap();
    let want = r.output.iter().copied().collect::<Vec<_>>();
    assert!(max_abs("torch_text predict", &got.iter().copied().collect::<Vec<_>>(), &want) <= 1e-5);
    for (i, row) in ids.as_slice().unwrap().chunks(9).enumerate() {
        let y = TorchText::infer(row.try_into().unwrap()).unwrap();
        assert!(max_abs("torch_text infer", &y, &want[i * 2..(i + 1) * 2]) <= 1e-5);
    }
}

mod keras {
    use super::*;

    /// tf2onnx's Transposes around each convolution (to channels-first and back) move nothing:
    /// the imported model has no Permute.
    #[test]
    fn transposes_around_keras_convolutions_cost_nothing() {
        let s = KerasCnn1d::new().summary_string();
        assert!(!s.contains("Permute"), "{s}");
        assert!(s.contains("conv2d_1 (Conv2D)"), "{s}");
    }

    matches_onnxruntime!(
        a_keras_mlp_matches_onnxruntime,
        KerasMlp,
        "keras_mlp",
        a_keras_mlp_infers_as_onnxruntime_does
    );
    matches_onnxruntime!(
        a_keras_cnn_matches_onnxruntime,
        KerasCnn1d,
        "keras_cnn1d",
        a_keras_cnn_infers_as_onnxruntime_does
    );
}

/// int8 kernels (one scale per output channel) change the MNIST-1D CNN's outputs by a little,
/// and its held-out accuracy on the task it was trained on (`chunk_task`) by less than a point.
#[test]
fn int8_kernels_keep_the_accuracy() {
    let (x, y) = chunk_task(2000, 777);
    let (mut f32_right, mut int8_right) = (0, 0);
    for (row, &class) in x.as_slice().unwrap().chunks(40).zip(y.iter()) {
        let argmax = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
        f32_right += usize::from(argmax(&Mnist1dTrained::infer(row.try_into().unwrap())) == class as usize);
        int8_right += usize::from(argmax(&Mnist1dTrainedInt8::infer(row.try_into().unwrap())) == class as usize);
    }
    let (a32, a8) = (f32_right as f32 / 2000.0, int8_right as f32 / 2000.0);
    println!(
        "MNIST-1D CNN held-out accuracy: f32 {a32:.4}, int8 {a8:.4}; weights {} B f32, {} B int8",
        Mnist1dTrained::WEIGHT_BYTES,
        Mnist1dTrainedInt8::WEIGHT_BYTES
    );
    assert!(a32 > 0.9 && a8 >= a32 - 0.01, "f32 {a32}, int8 {a8}");
}

/// The trained CNN's logits (up to ~50 on signals of its task) against onnxruntime's, relative
/// to their size.
#[test]
fn the_trained_cnn_matches_onnxruntime() {
    let r = reference("torch_mnist1d_cnn_trained");
    let got = Mnist1dTrained::embedded().predict(&r.input).unwrap();
    let want = r.output.iter().copied().collect::<Vec<_>>();
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = max_abs("torch_mnist1d_cnn_trained predict", &got.iter().copied().collect::<Vec<_>>(), &want);
    println!("relative to the largest logit ({scale}): {:e}", worst / scale);
    assert!(worst / scale <= 1e-6);
}

/// int8 kernels change the MNIST-1D CNN's outputs by a little.
#[test]
fn int8_kernels_stay_close_to_onnxruntime() {
    let r = reference("torch_mnist1d_cnn");
    let want = r.output.iter().copied().collect::<Vec<_>>();
    let (per, out) = (r.input.len() / r.input.shape()[0], want.len() / r.input.shape()[0]);
    let mut worst = 0f32;
    for (i, row) in r.input.as_slice().unwrap().chunks(per).enumerate() {
        let y = Mnist1dCnnInt8::infer(row.try_into().unwrap());
        worst = worst.max(max_abs("torch_mnist1d_cnn int8 infer", &y, &want[i * out..(i + 1) * out]));
    }
    assert!(worst < 0.05, "int8 drift {worst}");
}

/// The summary of an imported model: its layers as kiln built them, with their weights counted.
#[test]
fn an_imported_model_has_a_summary() {
    let s = Mnist1dCnn::embedded().summary_string();
    println!("{s}");
    for layer in ["permute", "zero_padding1d", "conv1d", "conv1d_2", "reshape", "dense"] {
        assert!(s.contains(layer), "{layer} in\n{s}");
    }
    // 3 convolutions and the head, as PyTorch counts them.
    let torch_params = (25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10);
    assert!(s.contains(&format!("Total params: {}", group(torch_params))), "{torch_params} in\n{s}");
}

/// `1234` as the summary writes it (`1,234`).
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Signals of 40 steps, uniform in [-1, 1), whose class is the 4-step chunk with the largest
/// sum: the task the MNIST-1D CNN fixture was trained on (its generator draws its own signals).
fn chunk_task(n: usize, seed: u64) -> (ArrayD<f32>, kiln::ndarray::Array1<f32>) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 1, 40]), |_| next());
    let y = kiln::ndarray::Array1::from_shape_fn(n, |i| {
        let sums: Vec<f32> = (0..10).map(|c| (0..4).map(|t| x[[i, 0, c * 4 + t]]).sum()).collect();
        (0..10).fold(0, |best, c| if sums[c] > sums[best] { c } else { best }) as f32
    });
    (x, y)
}

/// Fine-tuning: the imported (untrained) CNN, trained a few epochs with `fit` on a new task,
/// lowers its loss there (the weights from the file are where training starts).
#[test]
fn an_imported_model_fine_tunes_with_fit() {
    let (x, y) = chunk_task(256, 12345);
    let mut m = Mnist1dCnn::embedded();
    m.compile(Loss::SparseCategoricalCrossentropy.with_from_logits(true), Adam::new(3e-3), &[]).unwrap();
    let before = m.evaluate(&x, &y).unwrap();
    let history = m.fit(&x, &y, Fit { epochs: 8, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let after = m.evaluate(&x, &y).unwrap();
    let losses = history.get("loss").unwrap();
    println!("fine-tuning loss {before:?} -> {after:?}, per epoch {losses:?}");
    assert!(losses[losses.len() - 1] < losses[0] * 0.8, "{losses:?}");
}

/// Export (`save_onnx`), each file run by onnxruntime and imported back.
#[path = "onnx_export.rs"]
mod export;
