//! The [`Model`] trait: what the model macros generate, and everything a model can do with it
//! (`compile`, `fit`, `evaluate`, `predict`, `summary`).

use ndarray::{Array2, ArrayBase, Data, Dimension};

use crate::error::Result;
use crate::kernels::ActKind;
use crate::layers::Layer;
use crate::optimizers::IntoOptimizer;
use crate::summary::{self, LayerInfo};
use crate::train::{self, Fit, History, IntoLoss, Logs, TrainState};

/// A complete model: a [`Layer`] with a fixed input and output shape, a name, a layer table, and
/// training state. `sequential!` implements it; you call its methods.
///
/// Keras equivalent: `keras.Model`. The batch dimension is not part of the shapes: `INPUT_SHAPE`
/// of a model declared `[8, 8, 1]` is `[8, 8, 1]`, and `x` passed to `fit` is `[n, 8, 8, 1]`.
pub trait Model: Layer + Sized + 'static {
    /// The model's type name, used in messages and the summary.
    const NAME: &'static str;
    /// Shape of one input sample.
    const INPUT_SHAPE: &'static [usize];
    /// Shape of one output sample.
    const OUTPUT_SHAPE: &'static [usize];
    /// The activation the last layer applies (softmax enables the fused cross-entropy gradient).
    const OUTPUT_ACTIVATION: ActKind;
    /// One row per layer, computed at compile time by the model macro.
    const LAYERS: &'static [LayerInfo];

    /// The training state (seed, compiled configuration, buffers).
    fn train_state(&self) -> &TrainState;
    /// The training state, mutably.
    fn train_state_mut(&mut self) -> &mut TrainState;

    /// Values in one input sample.
    fn input_size() -> usize {
        Self::INPUT_SHAPE.iter().product()
    }

    /// Values in one output sample.
    fn output_size() -> usize {
        Self::OUTPUT_SHAPE.iter().product()
    }

    /// Chooses the loss, optimizer and metrics, each by Keras name or as a value:
    ///
    /// ```ignore
    /// model.compile("mse", "sgd", &[])?;
    /// model.compile(Loss::MeanSquaredError, Sgd::new(0.01), &[Metric::Mae])?;
    /// ```
    ///
    /// An unknown name is an error listing the valid ones. Compiling again replaces the
    /// optimizer (and its state); the weights are kept.
    fn compile(&mut self, loss: impl IntoLoss, optimizer: impl IntoOptimizer, metrics: &[&str]) -> Result<()> {
        train::compile(self, loss, optimizer, metrics)
    }

    /// Trains for `opts.epochs` epochs on `x` (`[n, ..INPUT_SHAPE]`) and `y` (`[n, outputs]`, or
    /// `[n]` / `[n, 1]` integer labels for `sparse_categorical_crossentropy`), and returns the
    /// per-epoch [`History`]. See [`Fit`] for the options, including which rows
    /// `validation_split` takes (the last ones, before shuffling, as in Keras).
    ///
    /// Errors, before any weight changes: not compiled, shapes that do not fit the model or the
    /// loss, row counts that differ, NaN or inf in `x`, labels out of range, bad options. A loss
    /// that becomes NaN or infinite stops training with an error naming the epoch and batch.
    fn fit<S, D, S2, D2>(&mut self, x: &ArrayBase<S, D>, y: &ArrayBase<S2, D2>, opts: Fit<'_>) -> Result<History>
    where
        S: Data<Elem = f32>,
        D: Dimension,
        S2: Data<Elem = f32>,
        D2: Dimension,
    {
        train::fit(self, x, y, &opts)
    }

    /// Loss and metrics on `x`, `y` (batches of 32, inference mode), keyed as in `History`.
    fn evaluate<S, D, S2, D2>(&mut self, x: &ArrayBase<S, D>, y: &ArrayBase<S2, D2>) -> Result<Logs>
    where
        S: Data<Elem = f32>,
        D: Dimension,
        S2: Data<Elem = f32>,
        D2: Dimension,
    {
        train::evaluate(self, x, y)
    }

    /// The model's outputs for every row of `x`, as `[n, outputs]` (outputs of rank > 1 are
    /// flattened per row). A single sample is a 1-row array; see also [`predict_one`](Self::predict_one).
    fn predict<S: Data<Elem = f32>, D: Dimension>(&mut self, x: &ArrayBase<S, D>) -> Result<Array2<f32>> {
        train::predict(self, x)
    }

    /// The output for one sample given as a flat slice (`INPUT_SHAPE` values, row-major), without
    /// building an array; after the first call it allocates nothing.
    fn predict_one(&mut self, x: &[f32]) -> Result<&[f32]> {
        train::predict_one(self, x)
    }

    /// One gradient step on one batch; returns the batch's loss before the step.
    fn train_on_batch<S, D, S2, D2>(&mut self, x: &ArrayBase<S, D>, y: &ArrayBase<S2, D2>) -> Result<f32>
    where
        S: Data<Elem = f32>,
        D: Dimension,
        S2: Data<Elem = f32>,
        D2: Dimension,
    {
        train::train_on_batch(self, x, y)
    }

    /// Total number of parameter values.
    fn count_params(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, p| n += p.len());
        n
    }

    /// Keras' summary table as a string (see [`summary`](Self::summary)).
    fn summary_string(&self) -> String {
        summary::render(self)
    }

    /// Prints Keras' summary table: one row per layer with its output shape and parameter count,
    /// then the total, trainable and non-trainable parameter counts. Needs no forward pass.
    fn summary(&self) {
        println!("{}", self.summary_string());
    }
}
