//! The property test of `tests/it/properties_models.rs` (a CNN with BatchNormalization, an
//! Embedding + LSTM on integer ids, attention with a padding mask; `set_weight`, `apply` and
//! custom steps; poisoned and huge inputs, bad ids, Adam at 1e6, gradients scaled to overflow)
//! run for as many cases as asked, printing the counts. The test runs 48.
//!
//! ```text
//! cargo run --release --example properties -- 1000000
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, TestRunner};

#[path = "../tests/it/properties_models.rs"]
mod properties_models;

fn main() {
    let cases: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let (calls, oks) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let start = std::time::Instant::now();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&properties_models::case(), |c| {
        let counts = properties_models::run(&c);
        calls.fetch_add(counts.calls, Ordering::Relaxed);
        oks.fetch_add(counts.oks, Ordering::Relaxed);
        Ok(())
    });
    let (calls, oks) = (calls.load(Ordering::Relaxed), oks.load(Ordering::Relaxed));
    println!(
        "{cases} cases, {calls} calls ({oks} Ok, {} Err) in {:.0} s: {}",
        calls - oks,
        start.elapsed().as_secs_f64(),
        match &result {
            Ok(()) => "every promise held".to_string(),
            Err(e) => format!("FAILED: {e}"),
        }
    );
    if result.is_err() {
        std::process::exit(1);
    }
}
