//! Using every core where it pays: large products, convolutions, parameter updates and the
//! chunks of a recurrent or attention layer are split into tasks that kiln's pool of persistent
//! worker threads and the calling thread share. Small work stays on one thread, where the
//! hand-over would cost more than it saves.
//!
//! Results do not depend on the number of threads: the callers split work in ways that depend only
//! on the shapes (never on the thread count), and each output element is computed by exactly the
//! same operations whichever thread computes it, so training stays bit-reproducible.
//!
//! Handing out work allocates nothing: the job lives on the caller's stack, each worker has a
//! slot of its own, and tasks are claimed from an atomic counter. A worker spins for the next job
//! (up to a millisecond: the serial work between a training step's jobs is often longer than a
//! thread takes to wake), then sleeps.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// The most threads kiln uses, whatever the machine or `KILN_NUM_THREADS` says.
pub const MAX_THREADS: usize = 64;

/// 0 = not yet read from the environment.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads kiln's kernels use: `KILN_NUM_THREADS` if set (1 turns threading off),
/// otherwise the number of cores the process may use (at most [`MAX_THREADS`]).
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let t = std::env::var("KILN_NUM_THREADS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .clamp(1, MAX_THREADS);
            THREADS.store(t, Ordering::Relaxed);
            t
        }
        t => t,
    }
}

/// Sets the number of threads for this process (1 to [`MAX_THREADS`]), overriding
/// `KILN_NUM_THREADS`. Results are the same for every setting.
pub fn set_threads(n: usize) {
    THREADS.store(n.clamp(1, MAX_THREADS), Ordering::Relaxed);
}

/// Runs `f(i)` for every `i` in `0..tasks` and returns when all have run: on this thread and on
/// up to `threads() - 1` idle workers when `parallel`, else here in order. Workers busy with
/// another caller's job are not waited for, so nested calls never block each other.
pub fn for_each(tasks: usize, parallel: bool, f: &(dyn Fn(usize) + Sync)) {
    let helpers = if parallel { threads().min(tasks).saturating_sub(1) } else { 0 };
    if helpers == 0 {
        (0..tasks).for_each(f);
        return;
    }
    // SAFETY: every worker given this job has finished with it (DONE) before this function
    // returns or unwinds past it, so the borrows inside `job` outlive every use.
    let run: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
    let job = Job { next: AtomicUsize::new(0), tasks, run, mode: crate::fpenv::mode() };
    let mut claimed = [None::<&'static Worker>; MAX_THREADS];
    let mut n = 0;
    // Only the first `threads() - 1` workers: a nested call that finds them busy runs inline.
    // All of them are started at the first parallel call, so later calls never start a thread
    // (nor allocate) in the middle of training.
    for w in (0..threads() - 1).filter_map(worker) {
        if n == helpers {
            continue;
        }
        if w.state.compare_exchange(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            *w.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(&job));
            w.state.store(READY, Ordering::Release);
            w.wake.notify_one();
            claimed[n] = Some(w);
            n += 1;
        }
    }
    // Our share; if a task panics here, wait for the workers before unwinding past the job.
    let ours = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
    let mut theirs = false;
    for w in claimed.iter().take(n).flatten() {
        // A worker that has not started (asleep when the job came) is not waited for: the job is
        // taken back, its tasks having run here.
        if w.state.compare_exchange(READY, CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            w.job.lock().unwrap_or_else(|e| e.into_inner()).take();
            w.state.store(IDLE, Ordering::Release);
            continue;
        }
        let mut spins = 0u32;
        while w.state.load(Ordering::Acquire) != DONE {
            spins += 1;
            if spins < 1 << 16 { std::hint::spin_loop() } else { std::thread::yield_now() }
        }
        theirs |= w.panicked.swap(false, Ordering::Relaxed);
        w.state.store(IDLE, Ordering::Release);
    }
    if let Err(p) = ours {
        std::panic::resume_unwind(p);
    }
    assert!(!theirs, "a kiln kernel panicked on a worker thread");
}

/// Runs `f` on every item, in parallel when `parallel` (see [`for_each`]): each item is handed
/// to exactly one thread, so items may hold the disjoint `&mut` parts of a split buffer.
pub fn for_each_mut<T: Send>(items: &mut [T], parallel: bool, f: impl Fn(&mut T) + Sync) {
    let base = SendPtr(items.as_mut_ptr());
    let len = items.len();
    for_each(len, parallel, &|i| {
        assert!(i < len);
        // SAFETY: `for_each` runs each index exactly once, so no two threads hold the same item,
        // and `items` is borrowed mutably for the whole call.
        f(unsafe { &mut *base.get().add(i) })
    });
}

/// Values at and above which an element-wise pass over a buffer is split across the threads: below,
/// the hand-off costs more than the pass (memory-bound, a few nanoseconds per value).
pub const ELEMENTWISE_SPLIT: usize = 1 << 16;

/// Runs `f(start, part)` over consecutive parts of `out` (`start` is the part's first index), on
/// the threads when `out` holds at least [`ELEMENTWISE_SPLIT`] values. The parts depend on the
/// length only, so an element-wise `f` gives the same values whatever the thread count.
pub fn parts_mut(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    const PART: usize = 1 << 14;
    let len = out.len();
    if len < ELEMENTWISE_SPLIT {
        f(0, out);
        return;
    }
    let base = SendPtr(out.as_mut_ptr());
    for_each(len.div_ceil(PART), true, &|t| {
        let (start, end) = (t * PART, ((t + 1) * PART).min(len));
        // SAFETY: each task index runs once, and the parts `start..end` of distinct tasks do
        // not overlap, so no two threads hold the same values; `out` is borrowed for the call.
        f(start, unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) })
    });
}

/// Runs `first` and `second`, in parallel when `parallel` (on this thread and an idle worker).
/// Returns when both have finished, so the closures may borrow from the caller.
pub fn join(parallel: bool, first: impl FnOnce() + Send, second: impl FnOnce() + Send) {
    enum Half<A, B> {
        First(A),
        Second(B),
        Ran,
    }
    let mut halves = [Half::First(first), Half::Second(second)];
    for_each_mut(&mut halves, parallel, |h| match std::mem::replace(h, Half::Ran) {
        Half::First(f) => f(),
        Half::Second(f) => f(),
        Half::Ran => {}
    });
}

/// Splits `data` into `parts` runs of whole rows (`row` values each; every run but the last a
/// multiple of `align` rows) and runs `f(first row, rows)` on each, in parallel when `parallel`.
pub fn for_rows(
    data: &mut [f32],
    row: usize,
    parts: usize,
    align: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = data.len().checked_div(row).unwrap_or(0);
    let parts = parts.clamp(1, MAX_THREADS);
    let per = rows.div_ceil(parts).next_multiple_of(align.max(1)).max(1);
    let mut items: [(usize, &mut [f32]); MAX_THREADS] = std::array::from_fn(|_| (0, Default::default()));
    let mut rest = data;
    let mut count = 0;
    while !rest.is_empty() && count < MAX_THREADS {
        let take = (per * row).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(take);
        items[count] = (count * per, head);
        rest = tail;
        count += 1;
    }
    for_each_mut(&mut items[..count], parallel, |(first, part)| f(*first, part));
}

/// Splits several buffers of `rows` rows each (buffer `k` with `width` values per row; a width of
/// 0 gives empty parts) into the same `parts` runs of whole rows, and runs `f(first row, rows,
/// parts)` on each, in parallel when there are several. For work whose every row is computed
/// alone (a convolution's samples, a normalisation's rows), so the split changes no bits.
pub fn for_runs<const B: usize>(
    rows: usize,
    parts: usize,
    bufs: [(&mut [f32], usize); B],
    f: impl Fn(usize, usize, [&mut [f32]; B]) + Sync,
) {
    let parts = parts.clamp(1, MAX_THREADS).min(rows.max(1));
    let per = rows.div_ceil(parts).max(1);
    let (mut rest, widths): ([&mut [f32]; B], [usize; B]) = {
        let mut widths = [0; B];
        let mut i = 0;
        let rest = bufs.map(|(b, w)| {
            widths[i] = w;
            i += 1;
            b
        });
        (rest, widths)
    };
    type Run<'a, const B: usize> = (usize, usize, [&'a mut [f32]; B]);
    let mut items: [Option<Run<'_, B>>; MAX_THREADS] = std::array::from_fn(|_| None);
    let (mut r0, mut count) = (0, 0);
    while r0 < rows && count < MAX_THREADS {
        let take = per.min(rows - r0);
        let heads = std::array::from_fn(|k| {
            let len = (take * widths[k]).min(rest[k].len());
            let (head, tail) = std::mem::take(&mut rest[k]).split_at_mut(len);
            rest[k] = tail;
            head
        });
        items[count] = Some((r0, take, heads));
        r0 += take;
        count += 1;
    }
    for_each_mut(&mut items[..count], count > 1, |item| {
        if let Some((r0, n, parts)) = item.take() {
            f(r0, n, parts)
        }
    });
}

struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only dereferenced by `for_each_mut`, one item per thread.
unsafe impl<T: Send> Sync for SendPtr<T> {}

const IDLE: u8 = 0;
const CLAIMED: u8 = 1;
const READY: u8 = 2;
const RUNNING: u8 = 3;
const DONE: u8 = 4;

/// One call's work: tasks claimed in order from `next`.
struct Job {
    next: AtomicUsize,
    tasks: usize,
    run: &'static (dyn Fn(usize) + Sync),
    /// The caller's floating-point mode (flush-to-zero), which every worker computes in.
    mode: u64,
}

impl Job {
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.tasks {
                return;
            }
            (self.run)(i);
        }
    }
}

struct JobPtr(*const Job);

// SAFETY: the job outlives the worker's use of it (see `for_each`), and `Job` is `Sync`.
unsafe impl Send for JobPtr {}

struct Worker {
    state: AtomicU8,
    /// Set by the thread once it runs: the start-up allocations of a thread (its name for the
    /// stack-overflow handler) are then behind us.
    started: AtomicBool,
    panicked: AtomicBool,
    job: Mutex<Option<JobPtr>>,
    wake: Condvar,
}

/// Worker `i`, started at its first use; `None` when no thread could be started.
fn worker(i: usize) -> Option<&'static Worker> {
    static WORKERS: [OnceLock<Option<&'static Worker>>; MAX_THREADS - 1] = [const { OnceLock::new() }; MAX_THREADS - 1];
    *WORKERS[i].get_or_init(|| {
        let w: &'static Worker = Box::leak(Box::new(Worker {
            state: AtomicU8::new(IDLE),
            started: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            job: Mutex::new(None),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new().name(format!("kiln-worker-{i}")).spawn(move || serve(w)).ok()?;
        // Wait until the thread runs: with more threads than cores and the others spinning, a new
        // thread could otherwise start (and allocate) in the middle of a later training step.
        while !w.started.load(Ordering::Acquire) && !spawned.is_finished() {
            std::thread::yield_now();
        }
        Some(w)
    })
}

fn serve(w: &'static Worker) {
    w.started.store(true, Ordering::Release);
    loop {
        // Spin up to a millisecond for the next job, then sleep. A training step hands out jobs
        // more often than that, with serial work between them (the loss, a small layer, the
        // optimizer) that often takes longer than a tenth of a millisecond: a worker that slept
        // there took long enough to wake (tens of microseconds on a virtual machine) that W5 ran
        // about a fifth faster with 1 ms here than with 0.1 ms (W6 about a tenth).
        let since = std::time::Instant::now();
        let mut spins = 0u32;
        let job = loop {
            if w.state.compare_exchange(READY, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                // A READY worker always has a job; were it missing, report the (empty) job done.
                match w.job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(j) => break j,
                    None => w.state.store(DONE, Ordering::Release),
                }
            }
            spins += 1;
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
            } else if since.elapsed() < std::time::Duration::from_millis(1) {
                // Let a thread waiting for this core run (another process, or other tests): on
                // an idle core this returns at once, so waking to a job is as quick as spinning.
                std::thread::yield_now();
            } else {
                // Sleep until the next job; the timeout guards against a missed notification.
                let slot = w.job.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    let _ = w.wake.wait_timeout(slot, std::time::Duration::from_millis(50));
                }
            }
        };
        // SAFETY: the caller keeps the job alive until this worker reports DONE.
        let job = unsafe { &*job.0 };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _mode = crate::fpenv::WithMode::new(job.mode);
            job.work()
        }))
        .is_ok();
        w.panicked.store(!ok, Ordering::Relaxed);
        w.state.store(DONE, Ordering::Release);
    }
}
