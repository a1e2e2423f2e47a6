//! What `fit` returns and callbacks read: the per-epoch [`History`] and one epoch's [`Logs`]. A
//! record of numbers, below the training loop, so errors (a NaN loss's epochs so far) can carry one.

use std::collections::BTreeMap;

/// Per-epoch training record returned by `fit`, as Keras' `History`: `history["loss"][e]` is the
/// mean loss of epoch `e`, and every metric and every `val_` twin has a row of its own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Epoch numbers (0-based, as Keras' `history.epoch`).
    pub epoch: Vec<usize>,
    /// Key (`loss`, `accuracy`, `val_loss`, ...) to one value per epoch. Keys are sorted, as
    /// Keras 3 prints them.
    pub history: BTreeMap<String, Vec<f64>>,
}

impl History {
    /// The values recorded under `key`, one per epoch.
    pub fn get(&self, key: &str) -> Option<&[f64]> {
        self.history.get(key).map(|v| &v[..])
    }

    /// The last epoch's value of `key`.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.last().copied())
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.history.keys().map(|k| &k[..])
    }

    pub(crate) fn push(&mut self, epoch: usize, logs: &Logs) {
        self.epoch.push(epoch);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
        }
    }
}

/// Named values of one epoch or one evaluation (`loss`, `accuracy`, ...), sorted by name.
pub type Logs = BTreeMap<String, f64>;
