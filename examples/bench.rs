//! kiln's benchmark: the workloads of `BENCHMARKS.md` (and of the peer scripts), printed as one
//! table. `--quick` runs a smaller version in well under a minute.
//!
//! Run with `cargo run --release --example bench [-- --quick] [-- W1 W3 ...]`.

use std::hint::black_box;
use std::time::Instant;

use kiln::ndarray::{Array1, Array2, s};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

sequential! {
    /// W1: 784 → 128 relu → 10 softmax. The embedded weights (for W3's start-up) are those of
    /// `Small::with_seed(1)`.
    #[weights("models/w1.safetensors")]
    pub struct Small: [784] {
        Dense(128, activation = relu),
        Dense(10, activation = softmax),
    }
}

/// W3 through the generated `infer` (no heap, weights read in place): the W1 model with the
/// weights of `Small::with_seed(1)` (`examples/models/w1.safetensors`), in three precisions.
macro_rules! small_infer {
    ($($name:ident = $dtype:ident;)*) => {$(
        sequential! {
            #[weights("models/w1.safetensors", dtype = $dtype)]
            #[inference_only]
            pub struct $name: [784] {
                Dense(128, activation = relu),
                Dense(10, activation = softmax),
            }
        }
    )*};
}

small_infer! {
    SmallF32 = f32;
    SmallBf16 = bf16;
    SmallF16 = f16;
    SmallInt8 = int8;
}

sequential! {
    /// W2 and W4: 784 → 512 relu → 512 relu → 10 softmax.
    pub struct Wide: [784] {
        Dense(512, activation = relu),
        Dense(512, activation = relu),
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// W5: 28×28×1 → Conv2D(32, 3, relu) → MaxPooling2D(2) → Flatten → Dense(10, softmax).
    pub struct SmallCnn: [28, 28, 1] {
        Conv2D(32, 3, activation = relu),
        MaxPooling2D(2),
        Flatten,
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// W5b, a deeper CNN: three Conv2D + BatchNormalization blocks on 32×32×3.
    pub struct DeepCnn: [32, 32, 3] {
        Conv2D(32, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(64, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(64, 3, padding = same, activation = relu),
        BatchNormalization,
        GlobalAveragePooling2D,
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// W6: Embedding(10000, 64) → LSTM(64) → Dense(1, sigmoid) on 100 token ids.
    pub struct TextLstm: Input([100], dtype = i32) {
        Embedding(10000, 64),
        LSTM(64),
        Dense(1, activation = sigmoid),
    }
}

functional! {
    /// W7: a transformer block on 64 token ids.
    pub struct TextAttention {
        tokens = Input([64], dtype = i32);
        h = Embedding(8000, 128)(tokens);
        a = MultiHeadAttention(num_heads = 4, key_dim = 32)(h, h);
        n1 = LayerNormalization()(Add()([h, a]));
        f = Dense(128)(Dense(256, activation = relu)(n1));
        n2 = LayerNormalization()(Add()([n1, f]));
        out = Dense(2, activation = softmax)(GlobalAveragePooling1D()(n2));
        Model(tokens, out)
    }
}

sequential! {
    /// LN: the built-in LayerNormalization between two Dense layers.
    pub struct NormBuiltin: [784] {
        Dense(256, activation = relu),
        LayerNormalization,
        Dense(10, activation = softmax),
    }
}

/// LN: the same model with LayerNormalization written as user math in `call`.
#[kiln::model]
pub struct NormMath {
    hidden: Dense<784, 256, Relu>,
    gamma: kiln::Weight<256, kiln::Ones>,
    beta: kiln::Weight<256>,
    out: Dense<256, 10, Softmax>,
}

#[kiln::call]
impl NormMath {
    fn call(&self, x: Input<784>) -> Output<10> {
        let h = self.hidden(x);
        let c = h - mean(h, axis = -1, keepdims = true);
        let var = mean(square(c), axis = -1, keepdims = true);
        self.out(c / sqrt(var + 0.001) * self.gamma + self.beta)
    }
}

/// Seconds per call of `step` on one thread and on `all`, alternated five times (medians).
fn one_and_all(all: usize, mut step: impl FnMut()) -> (f64, f64) {
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (threads, times) in [(1, &mut one), (all, &mut many)] {
            kiln::kernels::parallel::set_threads(threads);
            let start = Instant::now();
            for _ in 0..20 {
                step();
            }
            times.push(start.elapsed().as_secs_f64() / 20.0);
        }
    }
    (median(one), median(many))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Data {
    x: kiln::ndarray::ArrayD<f32>,
    y: Array2<f32>,
}

/// `n` samples of the given shape, uniform in [0, 1), with one-hot labels of 10 classes.
fn data(n: usize, sample: &[usize]) -> Data {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let shape: Vec<usize> = std::iter::once(n).chain(sample.iter().copied()).collect();
    let x = kiln::ndarray::ArrayD::from_shape_fn(shape, |_| rng.random::<f32>());
    let labels = Array1::from_shape_fn(n, |_| rng.random_range(0..10) as f32);
    Data { x, y: kiln::data::one_hot(&labels, 10).expect("labels in 0..10") }
}

/// Samples per second of `fit` over one epoch: one warm-up epoch, then the median of `epochs`.
/// The processes of a data-parallel run, when the benchmark runs under `mpirun` (built with
/// `--features mpi`): the training workloads then train one replica per process.
static GROUP: std::sync::OnceLock<kiln::distributed::Group> = std::sync::OnceLock::new();

fn train<M: Model>(m: M, d: &Data, batch: usize, epochs: usize) -> f64 {
    train_on(m, &d.x, &d.y, "categorical_crossentropy", batch, epochs)
}

/// `train` on any inputs and targets, with the loss given.
fn train_on<M: Model, T: kiln::Element, U: kiln::Element, D: kiln::ndarray::Dimension, E: kiln::ndarray::Dimension>(
    mut m: M,
    x: &kiln::ndarray::Array<T, D>,
    y: &kiln::ndarray::Array<U, E>,
    loss: &str,
    batch: usize,
    epochs: usize,
) -> f64 {
    m.compile(loss, Adam::new(1e-3), &[]).expect("valid names");
    if let Some(g) = GROUP.get() {
        m.distribute(g.clone());
    }
    let opts = || Fit { epochs: 1, batch_size: batch, verbose: 0, shuffle: false, ..Fit::default() };
    m.fit(x, y, opts()).expect("fits");
    let times = (0..epochs)
        .map(|_| {
            let t = Instant::now();
            m.fit(x, y, opts()).expect("fits");
            x.shape()[0] as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    median(times)
}

/// `n` sequences of `len` token ids uniform in `0..vocab`, and binary labels (as ../shared/bench).
fn tokens(n: usize, len: usize, vocab: usize, seed: u64) -> (Array2<i32>, Array1<i32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, len), |_| rng.random_range(0..vocab as i32));
    (x, Array1::from_shape_fn(n, |_| rng.random_range(0..2)))
}

/// GFLOP/s of `kiln::kernels::gemm` and of matrixmultiply's sgemm (the baseline kiln's products
/// replace) on `m×k×n` with the operands read transposed as `t` says: medians of 7 samples each,
/// the two alternating.
fn gflops_vs(m: usize, k: usize, n: usize, t: (bool, bool), reps: usize) -> (f64, f64) {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let mat = |data, t| kiln::kernels::matmul::Mat { data, t };
    let kiln_run = |c: &mut [f32]| kiln::kernels::gemm(m, k, n, mat(&a, t.0), mat(&b, t.1), c, 0.0);
    let (rsa, csa) = if t.0 { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if t.1 { (1, k as isize) } else { (n as isize, 1) };
    let sgemm = |c: &mut [f32]| {
        // SAFETY: `a`, `b` and `c` hold the m×k, k×n and m×n values the strides reach.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    };
    kiln_run(&mut c);
    sgemm(&mut c);
    let rate = |f: &dyn Fn(&mut [f32]), c: &mut [f32]| {
        let t = Instant::now();
        for _ in 0..reps {
            f(black_box(&mut *c));
        }
        2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        ours.push(rate(&kiln_run, &mut c));
        base.push(rate(&sgemm, &mut c));
    }
    (median(ours), median(base))
}

/// GFLOP/s of the recurrent layers' per-step kernel on `m×k×n`.
fn gflops_small(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let samples = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                kiln::kernels::matmul::gemm_small(m, k, n, &a, (k, 1), &b, n, black_box(&mut c), n, 1.0);
            }
            2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    median(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let want = |w: &str| args.iter().all(|a| a.starts_with("--")) || args.iter().any(|a| a == w);
    let (rows, epochs) = if quick { (10_000, 1) } else { (60_000, 3) };
    #[cfg(feature = "mpi")]
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() || std::env::var_os("PMI_SIZE").is_some() {
        let mpi = kiln::distributed::Mpi::init().expect("MPI starts");
        let _ = GROUP.set(mpi);
    }
    if let Some(g) = GROUP.get() {
        println!("process {} of {}: the training workloads train one replica each", g.rank(), g.size());
    }
    if let Some(g) = GROUP.get().filter(|_| want("C")) {
        // The exchange a data-parallel step makes: every process's f32 values (gradients)
        // gathered and their row-weighted mean taken.
        for n in [1_000usize, 10_000, 100_000, 1_000_000] {
            let mut v = vec![1.0f32; n];
            let mut all = Vec::new();
            kiln::distributed::weighted_mean(&**g, &mut v, &mut all);
            let reps = (20_000_000 / n).clamp(5, 2_000);
            let each: Vec<f64> = (0..5)
                .map(|_| {
                    v[0] = 1.0;
                    let t = Instant::now();
                    for _ in 0..reps {
                        kiln::distributed::weighted_mean(&**g, black_box(&mut v), &mut all);
                        v[0] = 1.0;
                    }
                    t.elapsed().as_secs_f64() / reps as f64
                })
                .collect();
            let t = median(each);
            println!(
                "| C all-reduce of {n} f32 over {} processes (µs; GB/s of one process's values) | {:.1} | {:.2} |",
                g.size(),
                t * 1e6,
                (n * 4) as f64 / t / 1e9
            );
        }
    }
    let d = data(rows, &[784]);
    let x2 = d.x.view().into_dimensionality::<kiln::ndarray::Ix2>().expect("rank 2");
    println!("kiln benchmark ({}), {rows} samples of 784 features, 10 classes", if quick { "quick" } else { "full" });
    println!("| workload | kiln |");
    println!("| --- | --- |");
    if want("W1") {
        println!("| W1 small MLP train, bs32 (samples/s) | {:.0} |", train(Small::with_seed(1), &d, 32, epochs));
    }
    if want("W2") {
        println!("| W2 wide MLP train, bs128 (samples/s) | {:.0} |", train(Wide::with_seed(1), &d, 128, epochs));
    }
    if want("W3") {
        let mut m = Small::with_seed(1);
        let sample: Vec<f32> = x2.row(0).to_vec();
        let calls = if quick { 2000 } else { 5000 };
        m.predict_one(&sample).expect("784 values");
        let one: Vec<f64> = (0..calls)
            .map(|_| {
                let t = Instant::now();
                black_box(m.predict_one(black_box(&sample)).expect("784 values"));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let row = x2.slice(s![0..1, ..]);
        let batch: Vec<f64> = (0..calls)
            .map(|_| {
                let t = Instant::now();
                black_box(m.predict(&row).expect("one row"));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        println!("| W3 latency, `predict_one` (µs) | {:.2} |", median(one));
        println!("| W3 latency, `predict` on a 1-row array (µs) | {:.2} |", median(batch));
        let x: &[f32; 784] = sample.as_slice().try_into().expect("784 values");
        // Start-up: `embedded()` copies the weights into a trainable model; `infer` has nothing
        // to set up, so its first call in the process is the whole cost.
        let t = Instant::now();
        black_box(SmallF32::infer(black_box(x)));
        let first = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        black_box(Small::embedded());
        let copy = t.elapsed().as_secs_f64() * 1e6;
        println!("| W3 start-up: `embedded()`, copying {} bytes (µs) | {copy:.2} |", Small::WEIGHT_BYTES);
        println!("| W3 start-up: first `infer` call in the process (µs) | {first:.2} |");
        // `infer` and `predict_one` agree on the same weights before either is timed.
        let (a, b) = (SmallF32::infer(x), m.predict_one(&sample).expect("784 values").to_vec());
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5), "infer {a:?} against predict_one {b:?}");
        let time = |f: &dyn Fn(&[f32; 784]) -> [f32; 10]| -> f64 {
            f(x);
            let each: Vec<f64> = (0..calls)
                .map(|_| {
                    let t = Instant::now();
                    black_box(f(black_box(x)));
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            median(each)
        };
        for (name, f, bytes) in [
            ("f32", &SmallF32::infer as &dyn Fn(&[f32; 784]) -> [f32; 10], SmallF32::WEIGHT_BYTES),
            ("bf16", &SmallBf16::infer, SmallBf16::WEIGHT_BYTES),
            ("f16", &SmallF16::infer, SmallF16::WEIGHT_BYTES),
            ("int8", &SmallInt8::infer, SmallInt8::WEIGHT_BYTES),
        ] {
            println!("| W3 latency, `infer` with {name} weights, {bytes} bytes (µs) | {:.2} |", time(f));
        }
    }
    if want("W4") {
        let mut m = Wide::with_seed(1);
        let x = x2.slice(s![0..10_000.min(rows), ..]);
        let run = |m: &mut Wide| {
            let t = Instant::now();
            for c in 0..x.nrows() / 1000 {
                black_box(m.predict(&x.slice(s![c * 1000..(c + 1) * 1000, ..])).expect("1000 rows"));
            }
            x.nrows() as f64 / t.elapsed().as_secs_f64()
        };
        run(&mut m);
        let v = (0..5).map(|_| run(&mut m)).collect();
        println!("| W4 predict throughput, bs1000 (samples/s) | {:.0} |", median(v));
    }
    if want("W5") {
        // As ../shared/bench: 10,000 samples of 28×28×1, batch 64, Adam.
        let d5 = data(if quick { 2_000 } else { 10_000 }, &[28, 28, 1]);
        println!("| W5 small CNN train, bs64 (samples/s) | {:.0} |", train(SmallCnn::with_seed(1), &d5, 64, epochs));
    }
    if args.iter().any(|a| a == "W5r") {
        // W5 trained by two replicas on threads of this process (data parallelism without MPI:
        // `ThreadGroup`), each replica's kernels on one thread. Asked for by name only.
        let d5 = data(if quick { 2_000 } else { 10_000 }, &[28, 28, 1]);
        let before = kiln::kernels::parallel::threads();
        kiln::kernels::parallel::set_threads(1);
        let rates: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = kiln::distributed::ThreadGroup::members(2)
                .into_iter()
                .map(|g| {
                    let d5 = &d5;
                    s.spawn(move || {
                        let mut m = SmallCnn::with_seed(1);
                        m.distribute(g);
                        train(m, d5, 64, epochs)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a replica")).collect()
        });
        kiln::kernels::parallel::set_threads(before);
        println!("| W5 small CNN train, bs64, 2 replicas on threads (samples/s) | {:.0} |", rates[0]);
    }
    if want("W5b") {
        let d5 = data(if quick { 1_000 } else { 5_000 }, &[32, 32, 3]);
        println!(
            "| W5b three Conv2D+BatchNormalization blocks on 32×32×3, bs64 (samples/s) | {:.0} |",
            train(DeepCnn::with_seed(1), &d5, 64, epochs)
        );
    }
    if want("W6") {
        let (x, y) = tokens(if quick { 1_000 } else { 5_000 }, 100, 10_000, 1);
        let y = y.mapv(|v| v as f32).insert_axis(kiln::ndarray::Axis(1));
        let rate = train_on(TextLstm::with_seed(1), &x, &y, "binary_crossentropy", 64, epochs);
        println!("| W6 LSTM text train, bs64 (samples/s) | {rate:.0} |");
        let mut m = TextLstm::with_seed(1);
        let sample: Vec<f32> = x.row(0).iter().map(|&v| v as f32).collect();
        m.predict_one(&sample).expect("100 ids");
        let one: Vec<f64> = (0..if quick { 200 } else { 2000 })
            .map(|_| {
                let t = Instant::now();
                black_box(m.predict_one(black_box(&sample)).expect("100 ids"));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        println!("| W6 latency, 1 sequence, `predict_one` (µs) | {:.1} |", median(one));
    }
    if want("W7") {
        let (x, y) = tokens(if quick { 800 } else { 4_000 }, 64, 8_000, 2);
        let rate = train_on(TextAttention::with_seed(1), &x, &y, "sparse_categorical_crossentropy", 32, epochs);
        println!("| W7 attention block train, bs32 (samples/s) | {rate:.0} |");
    }
    if want("LN") {
        // Alternated, so both see the same machine state.
        let (mut built, mut math) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            built.push(train(NormBuiltin::with_seed(1), &d, 64, epochs));
            math.push(train(NormMath::with_seed(1), &d, 64, epochs));
        }
        let (b, m) = (median(built), median(math));
        println!("| LN 784-256-LayerNorm-10 train, bs64, built-in layer (samples/s) | {b:.0} |");
        println!("| LN the same, LayerNorm written as math in `call` (samples/s) | {m:.0} |");
        println!("| LN math step time ÷ built-in step time | {:.2} |", b / m);
    }
    if want("E") {
        // An element-wise pass over a large tensor (exp forward and backward, 2^20 values), on
        // one thread and on all of them, alternated.
        let n = 1 << 20;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 1e-5).sin()).collect();
        let dy = vec![1.0f32; n];
        let mut exp = kiln::Unary::new(kiln::UnaryOp::Exp);
        let mut stream = kiln::Stream::new(0);
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        let opts = kiln::BackwardOpts { input_grad: true, ..Default::default() };
        let (a, b) = one_and_all(all, || {
            let mut ctx = kiln::Ctx::new(1, true, &mut stream);
            kiln::Layer::forward(&mut exp, &[&x], &mut ctx);
            kiln::Layer::backward(&mut exp, &[&x], &dy, &mut ctx, opts);
        });
        println!("| E exp forward + backward on 2^20 values, 1 thread (ms) | {:.2} |", a * 1e3);
        println!("| E the same, {all} threads (ms) | {:.2} ({:.2}x) |", b * 1e3, a / b);
        // A reduction: logsumexp over the last axis of 1,024 samples of [1024].
        let mut lse = kiln::Reduce::new(kiln::ReduceOp::LogSumExp, &[1024], 0);
        let dy1 = vec![1.0f32; 1024];
        let (a, b) = one_and_all(all, || {
            let mut ctx = kiln::Ctx::new(1024, true, &mut stream);
            kiln::Layer::forward(&mut lse, &[&x], &mut ctx);
            kiln::Layer::backward(&mut lse, &[&x], &dy1, &mut ctx, opts);
        });
        println!("| E logsumexp over 1,024 rows of 1,024, forward + backward, 1 thread (ms) | {:.2} |", a * 1e3);
        println!("| E the same, {all} threads (ms) | {:.2} ({:.2}x) |", b * 1e3, a / b);
    }
    if want("F") {
        // A chain of element-wise functions (`exp(0.5 * x) + 1.0`, 2^20 values, forward and
        // backward, one thread): one fused layer against one layer per function, alternated.
        for (n, reps, label) in [(1usize << 20, 20, "2^20"), (1 << 14, 2000, "2^14 (a batch of 32 × 512)")] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 1e-5).sin()).collect();
            let dy = vec![1.0f32; n];
            let ops = [kiln::UnaryOp::Scale(0.5), kiln::UnaryOp::Exp, kiln::UnaryOp::Shift(1.0)];
            let mut chain = kiln::Unary::chain(&ops);
            let mut apart: Vec<kiln::Unary> = ops.iter().map(|&op| kiln::Unary::new(op)).collect();
            let mut stream = kiln::Stream::new(0);
            kiln::kernels::parallel::set_threads(1);
            let opts = kiln::BackwardOpts { input_grad: true, ..Default::default() };
            let (mut fused, mut each) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                let start = Instant::now();
                for _ in 0..reps {
                    let mut ctx = kiln::Ctx::new(1, true, &mut stream);
                    kiln::Layer::forward(&mut chain, &[&x], &mut ctx);
                    kiln::Layer::backward(&mut chain, &[&x], &dy, &mut ctx, opts);
                }
                fused.push(start.elapsed().as_secs_f64() / reps as f64);
                let start = Instant::now();
                for _ in 0..reps {
                    let mut ctx = kiln::Ctx::new(1, true, &mut stream);
                    for i in 0..3 {
                        let (done, rest) = apart.split_at_mut(i);
                        let input = if i == 0 { &x[..] } else { kiln::Layer::output(&done[i - 1]) };
                        kiln::Layer::forward(&mut rest[0], &[input], &mut ctx);
                    }
                    for i in (0..3).rev() {
                        let (done, rest) = apart.split_at_mut(i);
                        let Some((cur, after)) = rest.split_first_mut() else { continue };
                        let input = done.last().map_or(&x[..], |d| kiln::Layer::output(d));
                        let grad = after.first().map_or(&dy[..], |a| kiln::Layer::input_grad(a, 0));
                        kiln::Layer::backward(cur, &[input], grad, &mut ctx, opts);
                    }
                }
                each.push(start.elapsed().as_secs_f64() / reps as f64);
            }
            let (a, b) = (median(each), median(fused));
            println!(
                "| F exp(0.5 * x) + 1.0, forward + backward on {label} values, a layer per function (µs) | {:.1} |",
                a * 1e6
            );
            println!("| F the same, fused into one layer (µs) | {:.1} ({:.2}x) |", b * 1e6, a / b);
        }
    }
    if want("G") {
        // The limit the products are measured against: a register-only FMA loop per thread.
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        let peak = [kiln::kernels::peak::fma_peak(1, 300), kiln::kernels::peak::fma_peak(all, 300)];
        println!("| G FMA peak, 1 thread (GFLOP/s) | {:.1} |", peak[0]);
        println!("| G FMA peak, {all} threads (GFLOP/s) | {:.1} |", peak[1]);
        let of = |g: f64, p: f64| format!("{g:.1} ({:.0}% of peak)", 100.0 * g / p);
        println!(
            "| G recurrent step kernel 32×64×256, 1 thread (GFLOP/s) | {} |",
            of(gflops_small(32, 64, 256, 2000), peak[0])
        );
        println!(
            "| G recurrent step kernel 64×32×256, 1 thread (GFLOP/s) | {} |",
            of(gflops_small(64, 32, 256, 2000), peak[0])
        );
        println!("| G instruction set of the kernels | {:?} (`KILN_SIMD` caps it) |", kiln::kernels::simd::level());
        // One thread: the products of a Dense layer of 512 units on a batch of 32 (forward
        // `x·W`, weight gradient `xᵀ·dy`, input gradient `dy·Wᵀ`), against matrixmultiply.
        kiln::kernels::parallel::set_threads(1);
        for (label, (m, k, n), t) in [
            ("x·W 32×512×512", (32, 512, 512), (false, false)),
            ("xᵀ·dy 512×32×512", (512, 32, 512), (true, false)),
            ("dy·Wᵀ 32×512×512", (32, 512, 512), (false, true)),
            ("x·W 32×784×4096", (32, 784, 4096), (false, false)),
        ] {
            let (ours, base) = gflops_vs(m, k, n, t, if quick { 20 } else { 100 });
            println!(
                "| G {label}, 1 thread (GFLOP/s) | {} | matrixmultiply {} ({:.2}x) |",
                of(ours, peak[0]),
                of(base, peak[0]),
                ours / base
            );
        }
        for threads in [1, all] {
            kiln::kernels::parallel::set_threads(threads);
            let (t, p) =
                if threads == 1 { ("1 thread".to_string(), peak[0]) } else { (format!("{all} threads"), peak[1]) };
            for (m, k, n, label, reps) in [
                (128, 784, 128, "128×784×128".to_string(), 200),
                (1024, 1024, 1024, "1024³".into(), if quick { 3 } else { 10 }),
            ] {
                // matrixmultiply runs on one thread: beside kiln's one-thread figure only.
                let (ours, base) = gflops_vs(m, k, n, (false, false), reps);
                let vs = format!("matrixmultiply {} ({:.2}x)", of(base, peak[0]), ours / base);
                println!(
                    "| G sgemm {label}, {t} (GFLOP/s) | {} | {} |",
                    of(ours, p),
                    if threads == 1 { &vs } else { "" }
                );
            }
        }
    }
}
