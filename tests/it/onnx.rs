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

/// The MNIST-1D CNN with `infer`'s kernels in int8.
#[kiln::onnx("../fixtures/onnx/torch_mnist1d_cnn.onnx", dtype = int8)]
pub struct Mnist1dCnnInt8;

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

/// `predict` against onnxruntime; with `infer`, the generated `infer` too (models whose every
/// layer has a static kernel: user math such as a scalar Mul has none yet).
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
    ($test:ident, $model:ident, $file:literal, infer) => {
        matches_onnxruntime!($test, $model, $file);

        #[test]
        fn infer_matches_onnxruntime() {
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

matches_onnxruntime!(a_pytorch_mlp_matches_onnxruntime, TorchMlp, "torch_mlp");
matches_onnxruntime!(the_mnist1d_cnn_matches_onnxruntime, Mnist1dCnn, "torch_mnist1d_cnn", infer);
matches_onnxruntime!(a_2d_cnn_matches_onnxruntime, Cnn2d, "torch_cnn2d");

/// int8 kernels (one scale per output channel) change the MNIST-1D CNN's outputs by a little.
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
