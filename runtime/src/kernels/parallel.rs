//! Using both cores where it pays: large products and large parameter updates are split in two,
//! the second half on kiln's worker thread. Small work stays on one thread, where the hand-over
//! would cost more than it saves.
//!
//! Results do not depend on the split: each output element is computed by exactly the same
//! operations whichever thread computes it, so training stays bit-reproducible.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 = not yet read from the environment.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads kiln's kernels use: `KILN_NUM_THREADS` if set (1 turns threading off),
/// otherwise 2 when the machine has at least 2 cores.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let t = std::env::var("KILN_NUM_THREADS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .clamp(1, 2);
            THREADS.store(t, Ordering::Relaxed);
            t
        }
        t => t,
    }
}

/// Sets the number of threads (1 or 2) for this process, overriding `KILN_NUM_THREADS`.
pub fn set_threads(n: usize) {
    THREADS.store(n.clamp(1, 2), Ordering::Relaxed);
}

/// Runs `first` here and `second` on kiln's worker thread when `parallel`, else both here in
/// order. Returns when both have finished, so the closures may borrow from the caller.
///
/// The worker is one long-lived thread, started at the first parallel call: handing it a job
/// allocates nothing and takes about a microsecond (it spins briefly before sleeping). When the
/// worker is busy (another thread of the program got it first), both halves run here.
pub fn join(parallel: bool, first: impl FnOnce() + Send, second: impl FnOnce() + Send) {
    if !parallel || threads() < 2 {
        first();
        second();
        return;
    }
    let worker = worker();
    if worker.state.compare_exchange(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_err() {
        first();
        second();
        return;
    }
    let job = std::sync::Mutex::new(Some(second));
    // The worker computes in this thread's floating-point mode (flush-to-zero), not its own.
    let mode = crate::fpenv::mode();
    let run = || {
        if let Some(f) = job.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _mode = crate::fpenv::WithMode::new(mode);
            f();
        }
    };
    let run: &(dyn Fn() + Sync) = &run;
    // SAFETY: the worker only calls `run` between READY and DONE, and this function does not
    // return (nor unwind past `run`) until it has seen DONE, so the borrow outlives every use.
    let run: &'static (dyn Fn() + Sync) = unsafe { std::mem::transmute(run) };
    {
        let mut slot = worker.job.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Job(run));
        worker.state.store(READY, Ordering::Release);
        worker.wake.notify_one();
    }
    // Our half; if it panics, wait for the worker before unwinding past the borrowed job.
    let ours = std::panic::catch_unwind(std::panic::AssertUnwindSafe(first));
    let mut spins = 0u32;
    while worker.state.load(Ordering::Acquire) != DONE {
        spins += 1;
        if spins < 1 << 16 { std::hint::spin_loop() } else { std::thread::yield_now() }
    }
    let theirs = worker.panicked.swap(false, Ordering::Relaxed);
    worker.state.store(IDLE, Ordering::Release);
    if let Err(p) = ours {
        std::panic::resume_unwind(p);
    }
    assert!(!theirs, "a kiln kernel panicked on the worker thread");
}

const IDLE: u8 = 0;
const CLAIMED: u8 = 1;
const READY: u8 = 2;
const DONE: u8 = 3;

struct Job(&'static (dyn Fn() + Sync));

struct Worker {
    state: std::sync::atomic::AtomicU8,
    panicked: std::sync::atomic::AtomicBool,
    job: std::sync::Mutex<Option<Job>>,
    wake: std::sync::Condvar,
}

fn worker() -> &'static Worker {
    static WORKER: std::sync::OnceLock<&'static Worker> = std::sync::OnceLock::new();
    WORKER.get_or_init(|| {
        let w: &'static Worker = Box::leak(Box::new(Worker {
            state: std::sync::atomic::AtomicU8::new(IDLE),
            panicked: std::sync::atomic::AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
            wake: std::sync::Condvar::new(),
        }));
        let spawned = std::thread::Builder::new().name("kiln-worker".into()).spawn(move || serve(w));
        if spawned.is_err() {
            // No thread to be had: the worker stays claimed, and every join runs both halves here.
            w.state.store(CLAIMED, Ordering::Relaxed);
        }
        w
    })
}

fn serve(w: &'static Worker) {
    loop {
        let mut spins = 0u32;
        let job = loop {
            if w.state.load(Ordering::Acquire) == READY
                && let Some(j) = w.job.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                break j;
            }
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // Sleep until the next job; the timeout guards against a missed notification.
                let slot = w.job.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    let _ = w.wake.wait_timeout(slot, std::time::Duration::from_millis(50));
                }
            }
        };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.0)).is_ok();
        w.panicked.store(!ok, Ordering::Relaxed);
        w.state.store(DONE, Ordering::Release);
    }
}
