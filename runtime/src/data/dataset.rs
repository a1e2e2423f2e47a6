//! Datasets: data that arrives a batch at a time (from files, a generator, a computation), as
//! Keras takes a `tf.data.Dataset`, a generator or a `PyDataset`, and PyTorch a `DataLoader`.
//!
//! A [`Dataset`] yields items pass after pass: [`Sample`]s (one example) or [`Batch`]es (rows of
//! examples), which [`Model::fit_dataset`](crate::Model::fit_dataset),
//! [`evaluate_dataset`](crate::Model::evaluate_dataset) and
//! [`predict_dataset`](crate::Model::predict_dataset) read. Only what is in flight is in memory
//! (a shuffle buffer, the batch being stacked, the batches prefetched), so a dataset may be far
//! larger than memory. The adapters chain as in `tf.data`:
//!
//! ```ignore
//! use kiln::data::{Dataset, Sample, from_generator};
//! let mut train = from_generator(|| (0..60_000).map(|i| read_sample(i)))   // Result<Sample>s, read lazily
//!     .map(|s| Ok(augment(s)))        // on the prefetching thread
//!     .shuffle(10_000, 42)            // a seeded buffer: the same order on every run
//!     .batch(32)
//!     .prefetch(4);                   // read and decode on a background thread, 4 batches ahead
//! model.fit_dataset(&mut train, Fit { epochs: 10, ..Fit::default() })?;
//! ```
//!
//! Each pass starts with [`Dataset::restart`]: `fit` calls it before each pass (each epoch, or
//! when a pass runs out under `steps_per_epoch`), so a generator is called again, a shuffle
//! buffer draws a new order from its seed and the pass number, and a prefetching thread starts
//! over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::{Array1, ArrayD, Axis, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// One example: one array per model input and one per output (a label, a target vector).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The inputs, each in the input's shape (no batch axis).
    pub x: Vec<ArrayD<f32>>,
    /// The targets, each in the output's target shape (`[]` for a class label).
    pub y: Vec<ArrayD<f32>>,
}

impl Sample {
    /// A sample of one input and one target.
    pub fn new(x: ArrayD<f32>, y: ArrayD<f32>) -> Self {
        Sample { x: vec![x], y: vec![y] }
    }
}

/// Rows of examples: one array per model input (`[rows, ..input shape]`) and one per output's
/// targets, and optionally one weight per row (Keras' `(x, y, sample_weight)` triples).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The inputs, rows first.
    pub x: Vec<ArrayD<f32>>,
    /// The targets, rows first (none for `predict_dataset`).
    pub y: Vec<ArrayD<f32>>,
    /// One weight per row, finite and >= 0, or `None` for all ones.
    pub sample_weight: Option<Array1<f32>>,
}

impl Batch {
    /// A batch of one input and one target array.
    pub fn new(x: ArrayD<f32>, y: ArrayD<f32>) -> Self {
        Batch { x: vec![x], y: vec![y], sample_weight: None }
    }

    /// A batch with one weight per row.
    pub fn with_sample_weight(mut self, w: Array1<f32>) -> Self {
        self.sample_weight = Some(w);
        self
    }

    /// The rows of the first input (0 for a batch without inputs).
    pub fn rows(&self) -> usize {
        self.x.first().and_then(|a| a.shape().first().copied()).unwrap_or(0)
    }
}

/// A source of items read pass after pass: [`Sample`]s or [`Batch`]es, from
/// [`from_generator`] and the adapters (`map`, `shuffle`, `batch`, `take`, `repeat`, `prefetch`).
pub trait Dataset: Send {
    /// What it yields: a [`Sample`], a [`Batch`], or anything a [`map`](Self::map) turns into one.
    type Item: Send + 'static;

    /// The next item of the current pass; `None` when the pass is over. An `Err` (an unreadable
    /// file, a bad record) stops whoever reads it: `fit` returns it with the epochs it finished.
    fn next_item(&mut self) -> Option<Result<Self::Item>>;

    /// Starts a new pass from the beginning. Cheap when nothing of the current pass was read.
    fn restart(&mut self) -> Result<()>;

    /// Items per pass when known (shown by the progress bar).
    fn cardinality(&self) -> Option<usize> {
        None
    }

    /// Each item through `f` (Keras' `Dataset.map`): decoding, augmenting, converting.
    fn map<T, F>(self, f: F) -> Map<Self, F>
    where
        Self: Sized,
        T: Send + 'static,
        F: FnMut(Self::Item) -> Result<T> + Send,
    {
        Map { inner: self, f }
    }

    /// Items drawn at random from a buffer of `buffer` items (Keras' `Dataset.shuffle`): each
    /// pass a new order, fixed by `seed` and the pass number. A buffer as large as the dataset
    /// shuffles it uniformly; a smaller one mixes nearby items and holds only `buffer` of them.
    fn shuffle(self, buffer: usize, seed: u64) -> Shuffle<Self>
    where
        Self: Sized,
    {
        Shuffle { inner: self, buffer: Vec::with_capacity(buffer.min(1 << 16)), size: buffer.max(1), seed, pass: 0, rng: None }
    }

    /// Samples stacked `size` at a time into batches (the last batch of a pass holds the
    /// remainder). Samples of one batch must have equal shapes.
    fn batch(self, size: usize) -> Batched<Self>
    where
        Self: Sized + Dataset<Item = Sample>,
    {
        Batched { inner: self, size: size.max(1), pending: Vec::new() }
    }

    /// The first `n` items of each pass.
    fn take(self, n: usize) -> Take<Self>
    where
        Self: Sized,
    {
        Take { inner: self, n, taken: 0 }
    }

    /// Passes without end: when the inner dataset runs out it starts again (Keras'
    /// `Dataset.repeat()`); give `fit` a `steps_per_epoch`.
    fn repeat(self) -> Repeat<Self>
    where
        Self: Sized,
    {
        Repeat { inner: self }
    }

    /// Reads ahead on a background thread, holding at most `depth` items (Keras'
    /// `Dataset.prefetch`): reading, decoding and the adapters before this one overlap the
    /// training step. Memory stays bounded by `depth` items.
    fn prefetch(self, depth: usize) -> Prefetch<Self::Item>
    where
        Self: Sized + 'static,
    {
        Prefetch::new(self, depth.max(1))
    }
}

impl<D: Dataset + ?Sized> Dataset for Box<D> {
    type Item = D::Item;
    fn next_item(&mut self) -> Option<Result<Self::Item>> {
        (**self).next_item()
    }
    fn restart(&mut self) -> Result<()> {
        (**self).restart()
    }
    fn cardinality(&self) -> Option<usize> {
        (**self).cardinality()
    }
}

/// A dataset whose passes are iterators made by a function (Keras' generator), called again for
/// each pass: `from_generator(|| files.iter().map(read))`.
pub fn from_generator<T, I, F>(make: F) -> Generator<F, I>
where
    F: FnMut() -> I + Send,
    I: Iterator<Item = Result<T>> + Send,
    T: Send + 'static,
{
    Generator { make, pass: None, fresh: true }
}

/// See [`from_generator`].
pub struct Generator<F, I> {
    make: F,
    pass: Option<I>,
    /// Nothing of the current pass has been read.
    fresh: bool,
}

impl<T, I, F> Dataset for Generator<F, I>
where
    F: FnMut() -> I + Send,
    I: Iterator<Item = Result<T>> + Send,
    T: Send + 'static,
{
    type Item = T;

    fn next_item(&mut self) -> Option<Result<T>> {
        self.fresh = false;
        let make = &mut self.make;
        self.pass.get_or_insert_with(make).next()
    }

    fn restart(&mut self) -> Result<()> {
        if !self.fresh {
            self.pass = Some((self.make)());
            self.fresh = true;
        }
        Ok(())
    }
}

/// See [`Dataset::map`].
pub struct Map<D, F> {
    inner: D,
    f: F,
}

impl<D: Dataset, T: Send + 'static, F: FnMut(D::Item) -> Result<T> + Send> Dataset for Map<D, F> {
    type Item = T;
    fn next_item(&mut self) -> Option<Result<T>> {
        self.inner.next_item().map(|r| r.and_then(&mut self.f))
    }
    fn restart(&mut self) -> Result<()> {
        self.inner.restart()
    }
    fn cardinality(&self) -> Option<usize> {
        self.inner.cardinality()
    }
}

/// See [`Dataset::shuffle`].
pub struct Shuffle<D: Dataset> {
    inner: D,
    buffer: Vec<D::Item>,
    size: usize,
    seed: u64,
    /// Passes started: with the seed, what fixes this pass's order.
    pass: u64,
    rng: Option<StdRng>,
}

impl<D: Dataset> Dataset for Shuffle<D> {
    type Item = D::Item;

    fn next_item(&mut self) -> Option<Result<D::Item>> {
        while self.buffer.len() < self.size {
            match self.inner.next_item() {
                Some(Ok(item)) => self.buffer.push(item),
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let (seed, pass) = (self.seed, self.pass);
        // One stream per (seed, pass).
        let rng = self.rng.get_or_insert_with(|| StdRng::seed_from_u64(seed ^ pass.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let i = rng.random_range(0..self.buffer.len());
        Some(Ok(self.buffer.swap_remove(i)))
    }

    fn restart(&mut self) -> Result<()> {
        self.buffer.clear();
        if self.rng.take().is_some() {
            self.pass += 1;
        }
        self.inner.restart()
    }

    fn cardinality(&self) -> Option<usize> {
        self.inner.cardinality()
    }
}

/// See [`Dataset::batch`].
pub struct Batched<D> {
    inner: D,
    size: usize,
    pending: Vec<Sample>,
}

impl<D: Dataset<Item = Sample>> Dataset for Batched<D> {
    type Item = Batch;

    fn next_item(&mut self) -> Option<Result<Batch>> {
        self.pending.clear();
        while self.pending.len() < self.size {
            match self.inner.next_item() {
                Some(Ok(s)) => self.pending.push(s),
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        if self.pending.is_empty() {
            return None;
        }
        Some(stack(&self.pending))
    }

    fn restart(&mut self) -> Result<()> {
        self.inner.restart()
    }

    fn cardinality(&self) -> Option<usize> {
        self.inner.cardinality().map(|n| n.div_ceil(self.size))
    }
}

/// Samples stacked into one batch; samples of unequal shapes are an error naming the first
/// that differs.
fn stack(samples: &[Sample]) -> Result<Batch> {
    let first = &samples[0];
    let arrays = |pick: fn(&Sample) -> &Vec<ArrayD<f32>>, what: &str| -> Result<Vec<ArrayD<f32>>> {
        (0..pick(first).len())
            .map(|a| {
                let shape = pick(first)[a].shape().to_vec();
                let mut out = Vec::with_capacity(samples.len() * pick(first)[a].len());
                for (i, s) in samples.iter().enumerate() {
                    let arr = pick(s).get(a).ok_or_else(|| bad_sample(i, what, format!("it has no array {a}")))?;
                    if arr.shape() != shape.as_slice() {
                        return Err(bad_sample(
                            i,
                            what,
                            format!("array {a} has shape {:?}, the batch's first sample {shape:?}", arr.shape()),
                        ));
                    }
                    match arr.as_slice() {
                        Some(v) => out.extend_from_slice(v),
                        None => out.extend(arr.iter().copied()),
                    }
                }
                let dims: Vec<usize> = std::iter::once(samples.len()).chain(shape.iter().copied()).collect();
                ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| bad_sample(0, what, e.to_string()))
            })
            .collect()
    };
    if let Some((i, s)) = samples.iter().enumerate().find(|(_, s)| s.x.len() != first.x.len() || s.y.len() != first.y.len()) {
        return Err(bad_sample(
            i,
            "sample",
            format!("it has {} inputs and {} targets, the batch's first sample {} and {}", s.x.len(), s.y.len(), first.x.len(), first.y.len()),
        ));
    }
    Ok(Batch { x: arrays(|s| &s.x, "x")?, y: arrays(|s| &s.y, "y")?, sample_weight: None })
}

fn bad_sample(i: usize, what: &str, reason: String) -> Error {
    Error::InvalidData { what: format!("{what} of sample {i} of a batch"), reason }
}

/// See [`Dataset::take`].
pub struct Take<D> {
    inner: D,
    n: usize,
    taken: usize,
}

impl<D: Dataset> Dataset for Take<D> {
    type Item = D::Item;
    fn next_item(&mut self) -> Option<Result<D::Item>> {
        if self.taken >= self.n {
            return None;
        }
        self.taken += 1;
        self.inner.next_item()
    }
    fn restart(&mut self) -> Result<()> {
        self.taken = 0;
        self.inner.restart()
    }
    fn cardinality(&self) -> Option<usize> {
        Some(self.inner.cardinality().map_or(self.n, |c| c.min(self.n)))
    }
}

/// See [`Dataset::repeat`].
pub struct Repeat<D> {
    inner: D,
}

impl<D: Dataset> Dataset for Repeat<D> {
    type Item = D::Item;
    fn next_item(&mut self) -> Option<Result<D::Item>> {
        match self.inner.next_item() {
            None => {
                if let Err(e) = self.inner.restart() {
                    return Some(Err(e));
                }
                // An empty dataset repeated is empty, not a loop without end.
                self.inner.next_item()
            }
            some => some,
        }
    }
    fn restart(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What the prefetching thread sends.
enum Sent<T> {
    Item(Result<T>),
    /// The pass is over (or was cancelled).
    End,
}

/// See [`Dataset::prefetch`].
pub struct Prefetch<T> {
    items: Option<Receiver<Sent<T>>>,
    /// One message per pass to start: the thread waits on it after each pass.
    start: Option<SyncSender<()>>,
    /// Set to end the current pass early (a restart in the middle of a pass).
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ended: bool,
    /// Nothing of the current pass has been read.
    fresh: bool,
    cardinality: Option<usize>,
}

impl<T: Send + 'static> Prefetch<T> {
    fn new<D: Dataset<Item = T> + 'static>(mut inner: D, depth: usize) -> Self {
        let (tx, items) = sync_channel::<Sent<T>>(depth);
        let (start, starts) = sync_channel::<()>(1);
        let cancel = Arc::new(AtomicBool::new(false));
        let cardinality = inner.cardinality();
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-prefetch".into())
            .spawn(move || {
                // The first pass starts at once, so that the first batches are ready early.
                loop {
                    while !flag.load(Ordering::Relaxed) {
                        let Some(item) = inner.next_item() else { break };
                        if tx.send(Sent::Item(item)).is_err() {
                            return;
                        }
                    }
                    if tx.send(Sent::End).is_err() || starts.recv().is_err() {
                        return;
                    }
                    flag.store(false, Ordering::Relaxed);
                    if let Err(e) = inner.restart() {
                        if tx.send(Sent::Item(Err(e))).is_err() {
                            return;
                        }
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            })
            .ok();
        Prefetch {
            items: Some(items),
            start: Some(start),
            cancel,
            thread,
            ended: false,
            fresh: true,
            cardinality,
        }
    }
}

impl<T: Send + 'static> Dataset for Prefetch<T> {
    type Item = T;

    fn next_item(&mut self) -> Option<Result<T>> {
        if self.ended {
            return None;
        }
        self.fresh = false;
        match self.items.as_ref().map(|rx| rx.recv()) {
            Some(Ok(Sent::Item(item))) => Some(item),
            Some(Ok(Sent::End)) => {
                self.ended = true;
                None
            }
            _ => {
                self.ended = true;
                Some(Err(Error::InvalidData {
                    what: "dataset".into(),
                    reason: "its prefetching thread stopped (the dataset panicked, or the thread could not start)".into(),
                }))
            }
        }
    }

    fn restart(&mut self) -> Result<()> {
        if self.fresh {
            return Ok(());
        }
        if !self.ended {
            // Ends the pass early: the thread stops after the item it is reading.
            self.cancel.store(true, Ordering::Relaxed);
            while let Some(Ok(Sent::Item(_))) = self.items.as_ref().map(|rx| rx.recv()) {}
        }
        if let Some(start) = &self.start {
            // The thread waits for this after each pass; if it is gone, `next_item` says so.
            let _ = start.send(());
        }
        self.ended = false;
        self.fresh = true;
        Ok(())
    }

    fn cardinality(&self) -> Option<usize> {
        self.cardinality
    }
}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        // Closing both channels ends the thread at its next send or wait.
        drop(self.items.take());
        drop(self.start.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Batches of in-memory arrays as a dataset (`x` and `y` rows first, `batch` rows at a time, in
/// order): for tests, and to mix arrays with datasets.
pub fn from_arrays(x: Vec<ArrayD<f32>>, y: Vec<ArrayD<f32>>, batch: usize) -> Result<impl Dataset<Item = Batch>> {
    let n = x.first().map_or(0, |a| a.shape().first().copied().unwrap_or(0));
    if let Some(a) = x.iter().chain(&y).find(|a| a.ndim() == 0 || a.shape()[0] != n) {
        return Err(Error::InvalidData {
            what: "from_arrays".into(),
            reason: format!("every array needs {n} rows (those of the first), one has shape {:?}", a.shape()),
        });
    }
    let batch = batch.max(1);
    let count = n.div_ceil(batch);
    let (x, y) = (Arc::new(x), Arc::new(y));
    let pick = move |arrays: &[ArrayD<f32>], at: usize| -> Vec<ArrayD<f32>> {
        arrays.iter().map(|a| a.slice_axis(Axis(0), ndarray::Slice::from(at..(at + batch).min(n))).to_owned()).collect()
    };
    Ok(Counted {
        inner: from_generator(move || {
            let (x, y) = (x.clone(), y.clone());
            (0..count).map(move |b| Ok(Batch { x: pick(&x, b * batch), y: pick(&y, b * batch), sample_weight: None }))
        }),
        count,
    })
}

/// A dataset of known cardinality.
struct Counted<D> {
    inner: D,
    count: usize,
}

impl<D: Dataset> Dataset for Counted<D> {
    type Item = D::Item;
    fn next_item(&mut self) -> Option<Result<D::Item>> {
        self.inner.next_item()
    }
    fn restart(&mut self) -> Result<()> {
        self.inner.restart()
    }
    fn cardinality(&self) -> Option<usize> {
        Some(self.count)
    }
}
