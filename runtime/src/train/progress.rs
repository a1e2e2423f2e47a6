//! Keras' progress display for `fit`.
//!
//! `verbose = 1` on a terminal redraws a bar as Keras does:
//! `45/45 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - accuracy: 0.9120 - loss: 0.3105`. When standard output
//! is not a terminal (a log file, CI), it prints that line once per epoch instead of redrawing, so
//! logs stay readable. `verbose = 2` prints one line per epoch in Keras' short form.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::history::Logs;

pub(crate) struct Progress {
    verbose: u8,
    /// Steps in the epoch; 0 when not known (a dataset's first pass).
    steps: usize,
    /// Steps done so far.
    done: std::cell::Cell<usize>,
    bar: Option<ProgressBar>,
    start: Instant,
}

fn format_logs(logs: &Logs) -> String {
    logs.iter().map(|(k, v)| format!(" - {k}: {v:.4}")).collect()
}

fn format_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 { format!("{}s", s.round() as u64) } else { format!("{}s", s.floor() as u64) }
}

fn per_step(d: Duration, steps: usize) -> String {
    let us = d.as_secs_f64() * 1e6 / steps.max(1) as f64;
    if us >= 1000.0 {
        format!("{}ms/step", (us / 1000.0).round() as u64)
    } else {
        format!("{}us/step", us.round() as u64)
    }
}

impl Progress {
    /// The display of one epoch of `fit`, after its `Epoch e/E` line.
    pub fn new(verbose: u8, epoch: usize, epochs: usize, steps: usize) -> Self {
        Self::start(verbose, Some((epoch, epochs)), steps)
    }

    /// A display of `steps` steps: one epoch of `fit` (with its header), or `evaluate` and
    /// `predict` (none).
    pub fn start(verbose: u8, epoch: Option<(usize, usize)>, steps: usize) -> Self {
        if let (true, Some((epoch, epochs))) = (verbose > 0, epoch) {
            println!("Epoch {}/{epochs}", epoch + 1);
        }
        let bar = (verbose == 1 && std::io::stdout().is_terminal()).then(|| {
            let (len, template) = match steps {
                0 => (None, "{pos}/Unknown {elapsed} {msg}"),
                n => (Some(n as u64), "{pos}/{len} {bar:20} {elapsed} {msg}"),
            };
            let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("━━ ");
            bar.set_style(style);
            bar
        });
        Progress { verbose, steps, done: std::cell::Cell::new(0), bar, start: Instant::now() }
    }

    pub fn step(&self, done: usize, logs: impl FnOnce() -> Logs) {
        self.done.set(done);
        if let Some(bar) = &self.bar {
            // Redrawing the metrics costs a few formats: do it on a fraction of the steps.
            if done == self.steps || done.is_multiple_of(16) {
                bar.set_message(format_logs(&logs()));
            }
            bar.set_position(done as u64);
        }
    }

    pub fn finish(mut self, logs: &Logs) {
        let took = self.start.elapsed();
        if self.steps == 0 {
            // A pass of unknown length: as many steps as were done.
            self.steps = self.done.get();
        }
        let line = match self.verbose {
            0 => return,
            1 => format!(
                "{0}/{0} ━━━━━━━━━━━━━━━━━━━━ {1} {2}{3}",
                self.steps,
                format_time(took),
                per_step(took, self.steps),
                format_logs(logs)
            ),
            _ => format!(
                "{0}/{0} - {1} - {2}{3}",
                self.steps,
                format_time(took),
                per_step(took, self.steps),
                format_logs(logs)
            ),
        };
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        println!("{line}");
    }
}
