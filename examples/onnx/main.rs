//! A PyTorch model compiled into a kiln model: the MNIST-1D CNN (three Conv1d of 25 channels,
//! kernels 5/3/3, stride 2, padding 1, then a linear head), trained in PyTorch on a synthetic
//! task (a signal's class is its 4-step chunk with the largest sum) and exported to ONNX by
//! `examples/onnx/make_fixtures.py`. The file is read when this example compiles; here it is
//! summarised, run with `predict` and with the heap-free `infer` (f32 and int8 kernels), and
//! fine-tuned with `fit` on a task of its own.
//!
//! ```sh
//! cargo run --release --example onnx
//! ```

use kiln::ndarray::{Array1, Array3};
use kiln::prelude::*;

/// The imported model: it takes `[n, 1, 40]` (PyTorch's channels-first) and returns `[n, 10]`
/// logits, as the ONNX file does.
#[kiln::onnx("../../tests/fixtures/onnx/torch_mnist1d_cnn_trained.onnx")]
pub struct Mnist1d;

/// The same file with `infer`'s kernels in int8.
#[kiln::onnx("../../tests/fixtures/onnx/torch_mnist1d_cnn_trained.onnx", dtype = int8)]
#[inference_only]
pub struct Mnist1dInt8;

/// `n` signals uniform in [-1, 1) and their classes: the chunk of 4 steps with the largest sum,
/// or with `reverse` the chunk with the smallest.
fn task(n: usize, seed: u64, reverse: bool) -> (Array3<f32>, Array1<f32>) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let x = Array3::from_shape_fn((n, 1, 40), |_| next());
    let y = Array1::from_shape_fn(n, |i| {
        let sums: Vec<f32> = (0..10).map(|c| (0..4).map(|t| x[[i, 0, c * 4 + t]]).sum()).collect();
        let better = |a: f32, b: f32| if reverse { a < b } else { a > b };
        (0..10).fold(0, |best, c| if better(sums[c], sums[best]) { c } else { best }) as f32
    });
    (x, y)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn main() -> kiln::Result<()> {
    let mut model = Mnist1d::embedded();
    model.summary();

    let (x, y) = task(2000, 777, false);
    let logits = model.predict(&x)?;
    let right = |pred: &dyn Fn(usize) -> usize| (0..y.len()).filter(|&i| pred(i) == y[i] as usize).count();
    let rows: Vec<&[f32]> = x.as_slice().expect("contiguous").chunks(40).collect();
    let predict = right(&|i| argmax(logits.row(i).as_slice().expect("contiguous")));
    let infer = right(&|i| argmax(&Mnist1d::infer(rows[i].try_into().expect("40 values"))));
    let int8 = right(&|i| argmax(&Mnist1dInt8::infer(rows[i].try_into().expect("40 values"))));
    println!(
        "held-out accuracy: predict {:.4}, infer {:.4}, infer int8 {:.4} ({} B of weights for f32, {} B for int8)",
        predict as f32 / 2000.0,
        infer as f32 / 2000.0,
        int8 as f32 / 2000.0,
        Mnist1d::WEIGHT_BYTES,
        Mnist1dInt8::WEIGHT_BYTES
    );

    // Fine-tuning on a task of its own: the chunk with the smallest sum.
    let (xt, yt) = task(1000, 1, true);
    model.compile(Loss::SparseCategoricalCrossentropy.with_from_logits(true), Adam::new(3e-3), &["accuracy"])?;
    let history = model.fit(&xt, &yt, Fit { epochs: 30, batch_size: 50, verbose: 0, ..Fit::default() })?;
    let (xv, yv) = task(1000, 2, true);
    let logs = model.evaluate(&xv, &yv)?;
    println!(
        "fine-tuned on the reversed task: loss {:.3} -> {:.3}, held-out accuracy {:.4}",
        history.get("loss").map_or(f64::NAN, |l| l[0]),
        history.last("loss").unwrap_or(f64::NAN),
        logs.get("accuracy").copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
