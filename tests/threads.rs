//! Training gives bit-identical weights with one thread and with two: large products are split
//! by rows and large updates by elements, so every value is computed by the same operations.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

sequential! {
    struct Wide: [256] {
        Dense(256, activation = relu),
        Dense(140, activation = tanh),
        Dense(10, activation = softmax),
    }
}

#[test]
fn one_and_two_threads_train_identically() {
    let x = Array2::from_shape_fn((256, 256), |(i, j)| ((i * 13 + j * 7) % 31) as f32 / 31.0);
    let y = Array1::from_shape_fn(256, |i| (i % 10) as f32);
    let run = |threads| {
        kiln::kernels::parallel::set_threads(threads);
        let mut m = Wide::with_seed(3);
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.fit(&x, &y, Fit { epochs: 2, batch_size: 128, verbose: 0, ..Fit::default() }).unwrap();
        m.weights().into_iter().flat_map(|(_, p)| p.value).map(f32::to_bits).collect::<Vec<_>>()
    };
    const { assert!(2 * 128 * 256 * 256 >= kiln::kernels::matmul::PARALLEL_FLOPS, "the products are split") };
    assert_eq!(run(1), run(2));
}
