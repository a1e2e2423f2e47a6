//! Training gives bit-identical weights with 1, 2, 3 and 8 threads (8 oversubscribes a 2-core
//! machine, which is fine for this test): large products are split by rows, large updates by
//! elements, recurrent and attention layers by chunks of samples fixed by the batch size, so every
//! value is computed by the same operations.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

sequential! {
    struct Wide: [256] {
        Dense(512, activation = relu),
        Dense(140, activation = tanh),
        Dense(10, activation = softmax),
    }
}

#[test]
fn one_and_two_threads_train_identically() {
    let x = Array2::from_shape_fn((256, 256), |(i, j)| ((i * 13 + j * 7) % 31) as f32 / 31.0);
    let y = Array1::from_shape_fn(256, |i| (i % 10) as f32);
    // Batches of 128 split the first layer's products by rows; batches of 96 (fewer rows against
    // 512 columns) by columns.
    let run = |threads| {
        kiln::kernels::parallel::set_threads(threads);
        let mut m = Wide::with_seed(3);
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.fit(&x, &y, Fit { epochs: 2, batch_size: 128, verbose: 0, ..Fit::default() }).unwrap();
        m.fit(&x, &y, Fit { epochs: 1, batch_size: 96, verbose: 0, ..Fit::default() }).unwrap();
        m.weights().into_iter().flat_map(|(_, p)| p.value).map(f32::to_bits).collect::<Vec<_>>()
    };
    const { assert!(2 * 96 * 256 * 512 >= kiln::kernels::matmul::PARALLEL_FLOPS, "the products are split") };
    let before = kiln::kernels::parallel::threads();
    let one = run(1);
    let others: Vec<_> = [2, 3, 8].into_iter().map(|threads| (threads, run(threads))).collect();
    // The count is process-wide: the other tests of this binary go back to theirs.
    kiln::kernels::parallel::set_threads(before);
    for (threads, weights) in others {
        assert!(one == weights, "{threads} threads trained differently from one");
    }
}

sequential! {
    struct Text: Input([12], dtype = i32) {
        Embedding(50, 16, mask_zero = true),
        Bidirectional(LSTM(16, return_sequences = true)),
        LayerNormalization,
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

#[test]
fn sequence_models_train_identically_on_any_number_of_threads() {
    let x = Array2::from_shape_fn((96, 12), |(i, j)| ((i * 7 + j * 3) % 50) as i32 * ((j + i) % 5 != 0) as i32);
    let y = Array1::from_shape_fn(96, |i| (i % 2) as f32);
    let run = |threads| {
        kiln::kernels::parallel::set_threads(threads);
        let mut m = Text::with_seed(4);
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.fit(&x, &y, Fit { epochs: 2, batch_size: 48, verbose: 0, ..Fit::default() }).unwrap();
        m.weights().into_iter().flat_map(|(_, p)| p.value).map(f32::to_bits).collect::<Vec<_>>()
    };
    let before = kiln::kernels::parallel::threads();
    let one = run(1);
    let others: Vec<_> = [2, 3, 8].into_iter().map(|threads| (threads, run(threads))).collect();
    // The count is process-wide: the other tests of this binary go back to theirs.
    kiln::kernels::parallel::set_threads(before);
    for (threads, weights) in others {
        assert!(one == weights, "{threads} threads trained differently from one");
    }
}

/// The tests above again in processes whose kernels are capped at each narrower instruction set
/// the CPU has (`KILN_SIMD`): an AVX-512 machine checks the AVX2 products (the packed kernel)
/// and the baseline ones too.
#[test]
fn every_instruction_set_trains_identically_on_any_number_of_threads() {
    use kiln::kernels::simd::{Level, detected};
    if std::env::var_os("KILN_SIMD").is_some() {
        return;
    }
    let levels = [(Level::Avx2, "avx2"), (Level::Base, "base")];
    for (_, name) in levels.into_iter().filter(|(level, _)| *level < detected()) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["threads::", "--test-threads=1"])
            .env("KILN_SIMD", name)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("3 passed"), "{name}: {text}");
    }
}
