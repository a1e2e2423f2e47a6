//! A steady-state training step of `fit`, and single-sample prediction, allocate nothing in
//! kiln's own code.
//!
//! matrixmultiply allocates one packing buffer per sgemm call above its small-matrix threshold
//! (64-byte aligned); those are counted apart, by alignment, and compared with kiln's sgemm count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

struct Counting;

// Counted on every thread (kiln's worker threads too); this file holds one test (the checks
// below run one after the other inside it), so no other test, nor the harness reporting one,
// allocates while counting is on.
static ON: AtomicBool = AtomicBool::new(false);
static OWN: AtomicUsize = AtomicUsize::new(0);
static PACKING: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            let c = if layout.align() >= 32 { &PACKING } else { &OWN };
            c.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// What the longer epoch made beyond the shorter one (allocations, packing buffers, sgemm calls).
fn extra(longer: (usize, usize, usize), shorter: (usize, usize, usize)) -> (usize, usize, usize) {
    let (Some(own), Some(packing), Some(sgemm)) =
        (longer.0.checked_sub(shorter.0), longer.1.checked_sub(shorter.1), longer.2.checked_sub(shorter.2))
    else {
        panic!("the longer epoch made fewer allocations or calls: {longer:?} against {shorter:?}");
    };
    (own, packing, sgemm)
}

/// The only test of this file, so that no other test runs (or is reported) while one counts.
#[test]
fn steady_state_steps_allocate_nothing() {
    training_step_and_predict_one_allocate_nothing();
    cnn_training_step_allocates_nothing();
    sequence_training_steps_allocate_nothing();
    math_training_steps_allocate_nothing();
}

/// (kiln's allocations, packing allocations, sgemm calls) made while `f` runs.
fn count(f: impl FnOnce()) -> (usize, usize, usize) {
    OWN.store(0, Ordering::Relaxed);
    PACKING.store(0, Ordering::Relaxed);
    let calls = kiln::kernels::sgemm_calls();
    ON.store(true, Ordering::Relaxed);
    f();
    ON.store(false, Ordering::Relaxed);
    (OWN.load(Ordering::Relaxed), PACKING.load(Ordering::Relaxed), kiln::kernels::sgemm_calls() - calls)
}

sequential! {
    struct Mlp: [784] {
        Dense(128, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn training_step_and_predict_one_allocate_nothing() {
    for threads in [2, 4] {
        kiln::kernels::parallel::set_threads(threads);
        mlp_steps_allocate_nothing(threads);
    }
}

fn mlp_steps_allocate_nothing(threads: usize) {
    let rows = 640;
    let x = Array2::from_shape_fn((rows, 784), |(i, j)| ((i * 31 + j) % 97) as f32 / 97.0);
    let y = Array1::from_shape_fn(rows, |i| (i % 10) as f32);
    let mut m = Mlp::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let opts = || Fit { epochs: 1, batch_size: 32, verbose: 0, ..Fit::default() };
    // The first call sizes the buffers and the optimizer's moments.
    m.fit(&x, &y, opts()).unwrap();
    // An epoch of 10 steps and an epoch of 20: whatever fit allocates per call or per epoch
    // (the history, the metric names) cancels out; what is left is per step.
    let half = x.slice(kiln::ndarray::s![..rows / 2, ..]);
    let yh = y.slice(kiln::ndarray::s![..rows / 2]);
    let (own_10, packing_10, sgemm_10) = count(|| drop(m.fit(&half, &yh, opts()).unwrap()));
    let (own_20, packing_20, sgemm_20) = count(|| drop(m.fit(&x, &y, opts()).unwrap()));
    let (own, packing, sgemm) = extra((own_20, packing_20, sgemm_20), (own_10, packing_10, sgemm_10));
    println!(
        "fit on {threads} threads: {own_10} allocations for 10 steps, {own_20} for 20; per 10 extra steps: \
         {own} by kiln, {packing} packing buffers by matrixmultiply over {sgemm} sgemm calls"
    );
    assert_eq!(own, 0, "kiln allocated in a steady-state training step");
    assert!(packing <= sgemm, "more aligned allocations ({packing}) than sgemm calls ({sgemm})");
    if kiln::kernels::simd::level() >= kiln::kernels::simd::Level::Avx2 {
        // Every product takes a register kernel: the packed ones keep a buffer per thread.
        assert_eq!(sgemm, 0, "{sgemm} sgemm calls for 10 steps");
    } else {
        // Without AVX2, sgemm: per step, the kernel gradient of both layers and the second's
        // input gradient at least; the large ones are split into one call per core.
        assert!(sgemm >= 10 * 3, "{sgemm} sgemm calls for 10 steps");
    }

    let sample: Vec<f32> = x.row(0).to_vec();
    m.predict_one(&sample).unwrap();
    let (own, packing, sgemm) = count(|| {
        for _ in 0..10 {
            m.predict_one(&sample).unwrap();
        }
    });
    println!("10 predict_one calls: {own} allocations by kiln, {packing} packing buffers over {sgemm} sgemm calls");
    assert_eq!(own, 0, "kiln allocated in predict_one");
}

sequential! {
    struct Cnn: [12, 12, 1] {
        Conv2D(8, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(8, 3, activation = relu),
        AveragePooling2D(2),
        Dropout(0.25),
        Flatten,
        Dense(10, activation = softmax),
    }
}

fn cnn_training_step_allocates_nothing() {
    let rows = 256;
    let x = kiln::ndarray::Array4::from_shape_fn((rows, 12, 12, 1), |(i, a, b, _)| {
        ((i * 7 + a * 3 + b) % 17) as f32 / 17.0
    });
    let y = Array1::from_shape_fn(rows, |i| (i % 10) as f32);
    let mut m = Cnn::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let opts = || Fit { epochs: 1, batch_size: 32, verbose: 0, ..Fit::default() };
    m.fit(&x, &y, opts()).unwrap();
    let half = x.slice(kiln::ndarray::s![..rows / 2, .., .., ..]);
    let yh = y.slice(kiln::ndarray::s![..rows / 2]);
    let (own_4, packing_4, sgemm_4) = count(|| drop(m.fit(&half, &yh, opts()).unwrap()));
    let (own_8, packing_8, sgemm_8) = count(|| drop(m.fit(&x, &y, opts()).unwrap()));
    let (own, packing, sgemm) = extra((own_8, packing_8, sgemm_8), (own_4, packing_4, sgemm_4));
    println!(
        "CNN fit: per 4 extra steps {own} allocations by kiln, {packing} packing buffers over {sgemm} sgemm calls"
    );
    assert_eq!(own, 0, "kiln allocated in a steady-state CNN training step");
    assert!(packing <= sgemm);
}

sequential! {
    struct Text: Input([16], dtype = i32) {
        Embedding(40, 16, mask_zero = true),
        Bidirectional(LSTM(16, return_sequences = true)),
        TimeDistributed(Dense(16, activation = relu)),
        LayerNormalization,
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

kiln::functional! {
    struct Attend {
        ids = Input([16], dtype = i32);
        h = Embedding(40, 16)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 8, use_causal_mask = true)(h, h);
        n = LayerNormalization()(Add()([h, a]));
        r = GRU(8)(n);
        out = Dense(2, activation = softmax)(r);
        Model(ids, out)
    }
}

kiln::functional! {
    struct Seq2Seq {
        ids = Input([16], dtype = i32);
        e = Embedding(40, 8, mask_zero = true)(ids);
        (seq, fh, fc, bh, bc) = Bidirectional(LSTM(8, return_sequences = true, return_state = true))(e);
        h = Concatenate()([fh, bh]);
        c = Concatenate()([fc, bc]);
        d = LSTM(16)(seq, initial_state = [h, c]);
        out = Dense(2, activation = softmax)(d);
        Model(ids, out)
    }
}

/// Backward through time, attention, masks and states handed from layer to layer allocate
/// nothing once the buffers are sized.
fn sequence_training_steps_allocate_nothing() {
    let rows = 256;
    let x =
        Array2::from_shape_fn((rows, 16), |(i, t)| if t + i % 5 >= 16 { 0 } else { ((i * 7 + t * 3) % 39 + 1) as i32 });
    let y = Array1::from_shape_fn(rows, |i| (i % 2) as f32);
    fn steps<M: Model>(mut m: M, x: &Array2<i32>, y: &Array1<f32>) {
        m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
        let opts = || Fit { epochs: 1, batch_size: 32, verbose: 0, ..Fit::default() };
        m.fit(x, y, opts()).unwrap();
        let rows = x.nrows();
        let half = x.slice(kiln::ndarray::s![..rows / 2, ..]);
        let yh = y.slice(kiln::ndarray::s![..rows / 2]);
        let (own_4, packing_4, sgemm_4) = count(|| drop(m.fit(&half, &yh, opts()).unwrap()));
        let (own_8, packing_8, sgemm_8) = count(|| drop(m.fit(x, y, opts()).unwrap()));
        let (own, packing, sgemm) = extra((own_8, packing_8, sgemm_8), (own_4, packing_4, sgemm_4));
        println!(
            "{}: per 4 extra steps {own} allocations by kiln, {packing} packing buffers over {sgemm} sgemm calls",
            M::NAME
        );
        assert_eq!(own, 0, "kiln allocated in a steady-state step of {}", M::NAME);
        assert!(packing <= sgemm);
    }
    steps(Text::new(), &x, &y);
    steps(Attend::new(), &x, &y);
    steps(Seq2Seq::new(), &x, &y);
}

kiln::functional! {
    /// Math between layers: broadcasts, reductions, softmax along an axis, fused chains of
    /// scalar ops, a transpose and a matmul.
    struct Mathy {
        x = Input([4, 6]);
        h = Dense(6, activation = tanh)(x);
        s = softmax(h * 2.0 - 1.0, axis = 1);
        m = mean(s * h, axis = 1, keepdims = true);
        r = sqrt(square(h - m) + 1e-3) + exp(-0.5 * h);
        g = r + mean(matmul(s, transpose(h, [0, 2, 1])), axis = 2, keepdims = true);
        out = Dense(2, activation = softmax)(Flatten()(g));
        Model(x, out)
    }
}

/// A step of a model whose middle is user math allocates nothing once the buffers are sized.
fn math_training_steps_allocate_nothing() {
    let rows = 256;
    let x = kiln::ndarray::Array3::from_shape_fn((rows, 4, 6), |(i, a, b)| ((i * 5 + a * 3 + b) % 11) as f32 / 11.0);
    let y = Array1::from_shape_fn(rows, |i| (i % 2) as f32);
    let mut m = Mathy::new();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let opts = || Fit { epochs: 1, batch_size: 32, verbose: 0, ..Fit::default() };
    m.fit(&x, &y, opts()).unwrap();
    let half = x.slice(kiln::ndarray::s![..rows / 2, .., ..]);
    let yh = y.slice(kiln::ndarray::s![..rows / 2]);
    let short = count(|| drop(m.fit(&half, &yh, opts()).unwrap()));
    let long = count(|| drop(m.fit(&x, &y, opts()).unwrap()));
    let (own, packing, sgemm) = extra(long, short);
    println!(
        "math fit: per 4 extra steps {own} allocations by kiln, {packing} packing buffers over {sgemm} sgemm calls"
    );
    assert_eq!(own, 0, "kiln allocated in a steady-state step of a model with math");
    assert!(packing <= sgemm);
}
