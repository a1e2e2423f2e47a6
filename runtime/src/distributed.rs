//! Data-parallel training across processes: every process holds a replica of the model and the
//! same data; each global batch is split into one shard per process; the gradients (each shard's
//! mean, weighted by its rows), the loss and the layers' state (moving statistics) are summed
//! over the processes, and every replica applies the same update, so the replicas stay identical.
//!
//! The processes talk through a [`Collective`]: `kiln::distributed::Mpi` (the facade's cargo
//! feature `mpi`) between processes
//! and machines, [`ThreadGroup`] between threads of one process (tests, and a replica per
//! socket). kiln only ever gathers everyone's values and sums them itself, in rank order, in f64,
//! so a run with a given number of processes is bit-reproducible and every replica gets the same
//! bits.
//!
//! ```ignore
//! use kiln::prelude::*;
//! use kiln::distributed::ThreadGroup;
//! # kiln::sequential! { pub struct Net: [4] { Dense(2) } }
//! let x = ndarray::Array2::from_shape_fn((64, 4), |(i, j)| ((i * 7 + j) % 5) as f32 / 5.0);
//! let y = x.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
//! let replicas: Vec<Net> = std::thread::scope(|s| {
//!     let handles: Vec<_> = ThreadGroup::members(2)
//!         .into_iter()
//!         .map(|member| {
//!             let (x, y) = (&x, &y);
//!             s.spawn(move || {
//!                 let mut m = Net::new();
//!                 m.compile("mse", "adam", &[]).unwrap();
//!                 m.distribute(member);
//!                 m.fit(x, y, Fit { epochs: 2, batch_size: 16, verbose: 0, ..Fit::default() }).unwrap();
//!                 m
//!             })
//!         })
//!         .collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).collect()
//! });
//! assert_eq!(replicas[0].weights(), replicas[1].weights());
//! ```

use std::ops::Range;
use std::sync::{Arc, Barrier, Mutex};

/// How the processes of a data-parallel run exchange values.
pub trait Collective: Send + Sync + std::fmt::Debug {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Every process's `local` (of one length everywhere) into `all`, in rank order:
    /// `all[r · local.len()..]` holds process `r`'s.
    fn all_gather(&self, local: &[f64], all: &mut [f64]);
    /// [`all_gather`](Self::all_gather) of f32 values (gradients: half the bytes).
    fn all_gather_f32(&self, local: &[f32], all: &mut [f32]);
}

/// A shared handle on a [`Collective`], as `Model::distribute` keeps it.
pub type Group = Arc<dyn Collective>;

/// Sums `values` over every process, in rank order (the same bits everywhere). `all` is scratch.
pub fn all_sum(c: &dyn Collective, values: &mut [f64], all: &mut Vec<f64>) {
    let (p, n) = (c.size(), values.len());
    if p == 1 {
        return;
    }
    all.resize(p * n, 0.0);
    c.all_gather(values, all);
    values.fill(0.0);
    for r in 0..p {
        for (v, a) in values.iter_mut().zip(&all[r * n..(r + 1) * n]) {
            *v += a;
        }
    }
}

/// The mean over every process of `values[1..]`, each process's weighted by its `values[0]`
/// (the rows it computed them on), summed in rank order (the same bits everywhere); `values[0]`
/// becomes the total weight. `all` is scratch.
pub fn weighted_mean(c: &dyn Collective, values: &mut [f32], all: &mut Vec<f32>) {
    let (p, n) = (c.size(), values.len());
    if p == 1 || n == 0 {
        return;
    }
    all.resize(p * n, 0.0);
    c.all_gather_f32(values, all);
    let total: f32 = (0..p).map(|r| all[r * n]).sum();
    values.fill(0.0);
    values[0] = total;
    for r in 0..p {
        let w = all[r * n];
        // A process with no rows this step contributes nothing (its values are stale).
        if w > 0.0 {
            let s = w / total;
            for (v, x) in values[1..].iter_mut().zip(&all[r * n + 1..(r + 1) * n]) {
                *v += s * x;
            }
        }
    }
}

/// The rows of a batch of `k` that process `rank` of `size` takes: `k / size` or one more, the
/// earlier ranks taking the extra ones.
pub fn shard(k: usize, rank: usize, size: usize) -> Range<usize> {
    (k * rank / size)..(k * (rank + 1) / size)
}

/// The replicas of a data-parallel run as threads of one process: `ThreadGroup::members(n)` gives
/// the `n` members, one per thread, each passed to its replica's `distribute`.
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    slots32: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
}

impl ThreadGroup {
    /// The `n` members of a new group (at least one).
    pub fn members(n: usize) -> Vec<Group> {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            size: n,
            slots: Mutex::new(vec![Vec::new(); n]),
            slots32: Mutex::new(vec![Vec::new(); n]),
            barrier: Barrier::new(n),
        });
        (0..n).map(|rank| Arc::new(ThreadGroup { rank, shared: shared.clone() }) as Group).collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&self, local: &[f64], all: &mut [f64]) {
        gather(&self.shared.slots, &self.shared.barrier, self.rank, local, all);
    }

    fn all_gather_f32(&self, local: &[f32], all: &mut [f32]) {
        gather(&self.shared.slots32, &self.shared.barrier, self.rank, local, all);
    }
}

/// A gather through shared slots: each thread writes its own, all wait, all read, all wait
/// (so nobody writes the next round before everyone has read this one).
fn gather<T: Copy>(slots: &Mutex<Vec<Vec<T>>>, barrier: &Barrier, rank: usize, local: &[T], all: &mut [T]) {
    let n = local.len();
    {
        let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
        slots[rank].clear();
        slots[rank].extend_from_slice(local);
    }
    barrier.wait();
    {
        let slots = slots.lock().unwrap_or_else(|e| e.into_inner());
        for (r, s) in slots.iter().enumerate() {
            all[r * n..(r + 1) * n].copy_from_slice(&s[..n]);
        }
    }
    barrier.wait();
}

/// Averages the state weights (moving statistics) of every replica, each weighted by the rows
/// it trained on since the last call: for custom training steps, which `fit` does itself.
pub fn all_reduce_state(m: &mut dyn crate::model::dynamic::DynModel, group: &dyn Collective, local_rows: usize) {
    let mut v = vec![local_rows as f32];
    m.visit_weights_mut(&mut |p| {
        if p.role() == crate::layers::Role::State {
            v.extend_from_slice(&p.value);
        }
    });
    weighted_mean(group, &mut v, &mut Vec::new());
    let mut at = 1;
    m.visit_weights_mut(&mut |p| {
        if p.role() == crate::layers::Role::State {
            let len = p.value.len();
            p.value.copy_from_slice(&v[at..at + len]);
            at += len;
        }
    });
}

/// FNV-1a over every weight's bits: equal on every replica of a healthy run.
pub fn fingerprint(m: &dyn crate::model::dynamic::DynModel) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    m.visit_weights(&mut |_, p| {
        for v in &p.value {
            for b in v.to_bits().to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    });
    h
}

/// Checks that every replica holds the same weights (their fingerprints gathered): the error
/// names the processes that differ. `fit` runs it when it starts, and after each epoch in debug
/// builds.
pub fn check_replicas(c: &dyn Collective, m: &dyn crate::model::dynamic::DynModel, when: &str) -> crate::Result<()> {
    let h = fingerprint(m);
    // Two exact f64 halves of the 64-bit hash.
    let local = [(h >> 32) as f64, (h & 0xffff_ffff) as f64];
    let mut all = vec![0.0; 2 * c.size()];
    c.all_gather(&local, &mut all);
    let differ: Vec<usize> = (0..c.size()).filter(|&r| all[2 * r..2 * r + 2] != all[..2]).collect();
    match differ.is_empty() {
        true => Ok(()),
        false => Err(crate::Error::invalid(
            "distribute",
            format!("the replicas of processes {differ:?} differ from process 0's {when}"),
        )),
    }
}
