//! Why kiln's kernels split work over a pool of its own (`kernels::parallel`) rather than rayon:
//! a training step hands out hundreds of small jobs (a product's halves, an optimizer pass), so
//! what a dispatch costs decides whether splitting pays. This measures, on every core, the same
//! jobs dispatched by kiln's pool and by `rayon` (the crate users would expect): an empty job,
//! jobs of about 2 µs and 15 µs of work, and the W1 step's largest product split by rows.
//!
//! Run with `cargo run --release --example pool_vs_rayon`. Medians of 7 runs of many dispatches.

use std::hint::black_box;
use std::time::Instant;

use kiln::kernels::matmul::Mat;
use kiln::kernels::{gemm, parallel};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// µs per dispatch of `tasks` tasks running `work`, by `run`.
fn time(reps: usize, run: &dyn Fn()) -> f64 {
    run();
    median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    run();
                }
                t.elapsed().as_secs_f64() * 1e6 / reps as f64
            })
            .collect(),
    )
}

fn main() {
    let threads = parallel::threads();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
    let data: Vec<f32> = (0..1 << 20).map(|i| (i % 97) as f32 * 0.01).collect();
    // A job of `n` values summed in order: about 1 µs per 1,000 values on one core.
    let work = |t: usize, n: usize| -> f32 { data[t * n..(t + 1) * n].iter().sum() };
    println!("{threads} threads; µs per dispatch of {threads} tasks (median of 7 runs)");
    println!("| job | kiln pool | rayon (`scope`) | rayon ÷ kiln |");
    println!("| --- | --- | --- | --- |");
    for (name, n, reps) in [("empty", 0usize, 20_000), ("~2 µs each", 2_048, 10_000), ("~15 µs each", 16_384, 5_000)]
    {
        let kiln = time(reps, &|| {
            parallel::for_each(threads, true, &|t| {
                black_box(work(t, n));
            })
        });
        let rayon = time(reps, &|| {
            pool.scope(|s| {
                for t in 0..threads {
                    s.spawn(move |_| {
                        black_box(work(t, n));
                    });
                }
            })
        });
        println!("| {name} | {kiln:.2} | {rayon:.2} | {:.2} |", rayon / kiln);
    }
    // The W1 step's largest product, [32, 784] · [784, 128], split in row halves as kiln does.
    let (m, k, n) = (32, 784, 128);
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let half = |rows: std::ops::Range<usize>, c: &mut [f32]| {
        // Below kiln's threshold for splitting: each half runs on the thread that calls it.
        gemm(rows.len(), k, n, Mat::n(&a[rows.start * k..rows.end * k]), Mat::n(&b), c, 0.0);
    };
    let (top, bottom) = c.split_at_mut(m / 2 * n);
    let cells = std::sync::Mutex::new((top, bottom));
    let one = time(2_000, &|| {
        let mut g = cells.lock().unwrap();
        let (top, bottom) = &mut *g;
        half(0..m / 2, top);
        half(m / 2..m, bottom);
    });
    let kiln = time(2_000, &|| {
        let mut g = cells.lock().unwrap();
        let (top, bottom) = &mut *g;
        parallel::join(true, || half(0..m / 2, top), || half(m / 2..m, bottom));
    });
    let rayon = time(2_000, &|| {
        let mut g = cells.lock().unwrap();
        let (top, bottom) = &mut *g;
        pool.join(|| half(0..m / 2, top), || half(m / 2..m, bottom));
    });
    println!(
        "| W1 product 32×784×128 in two halves (one thread: {one:.2}) | {kiln:.2} | {rayon:.2} | {:.2} |",
        rayon / kiln
    );
}
