//! The [`Model`] trait: what the model macros generate, and everything a model can do with it
//! (`compile`, `fit`, `evaluate`, `predict`, `summary`).

use ndarray::ArrayD;

use crate::error::Result;
use crate::kernels::ActKind;
use crate::layers::{Ctx, Param};
use crate::optimizers::IntoOptimizer;
use crate::layers::LayerInfo;
use crate::summary;
use crate::train::{self, Compile, Fit, History, IntoLoss, Logs, TrainState};

pub mod dynamic;
mod inputs;

// `DynModel` is not brought into scope here: its methods share their names with `Model`'s.
pub use dynamic::Meta;
pub use inputs::{Element, InputArray, Inputs, Prediction};

/// One input or output of a model: its name and the shape of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// The input's variable name, or the output layer's name (Keras' output names).
    pub name: &'static str,
    /// Shape of one sample, without the batch dimension.
    pub shape: &'static [usize],
    /// What its values are: `F32`, or `I32` token ids below a bound.
    pub dtype: DType,
}

/// The type of a model input's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// Real numbers (Keras' `float32`).
    F32,
    /// Integer ids (Keras' `int32`) read by an `Embedding`: each must lie in `0..below`, the
    /// smallest `input_dim` of the Embeddings reading the input. The arrays may hold any integer
    /// type or `f32` with integral values.
    I32 {
        /// One more than the largest valid id.
        below: usize,
    },
}

impl Port {
    /// Width of the last axis: losses and metrics work along it (a sequence of class scores
    /// `[T, C]` is `T` rows of `C` classes per sample).
    pub const fn last(&self) -> usize {
        if self.shape.is_empty() { 1 } else { self.shape[self.shape.len() - 1] }
    }

    /// Values in one sample.
    pub const fn size(&self) -> usize {
        let mut n = 1;
        let mut i = 0;
        while i < self.shape.len() {
            n *= self.shape[i];
            i += 1;
        }
        n
    }
}

/// The most inputs, and the most outputs, a model may have.
pub const MAX_PORTS: usize = 8;

/// A complete model: fixed input and output shapes, a name, a layer table, generated forward and
/// backward code, and training state. The model macros implement it; you call its methods.
///
/// Keras equivalent: `keras.Model`. Shapes leave out the batch dimension: a model declared
/// `[8, 8, 1]` takes `x` of shape `[n, 8, 8, 1]`.
pub trait Model: Clone + std::fmt::Debug + Send + Sync + Sized + 'static {
    /// The model's type name, used in messages and the summary.
    const NAME: &'static str;
    /// The inputs, in declaration order.
    const INPUTS: &'static [Port];
    /// The outputs, in declaration order.
    const OUTPUTS: &'static [Port];
    /// Per output, the activation its last layer applies over each whole row; `Softmax` there
    /// lets a cross-entropy loss hand back the fused gradient `p - y`.
    const OUTPUT_ACTIVATIONS: &'static [ActKind];
    /// One row per layer, computed at compile time by the model macro.
    const LAYERS: &'static [LayerInfo];
    /// Bytes of the model's f32 weights and of the scratch space inference needs for one
    /// sample (the layer outputs alive at once), as planned when the model compiled; `None`
    /// where only rustc knows a layer's shapes.
    const MEMORY: Option<[usize; 2]> = None;
    /// The names of the terms `call` adds to the loss with `self.add_loss(..)` (Keras'
    /// `add_loss`), as `fit` and `evaluate` log them.
    const ADDED_LOSSES: &'static [&'static str] = &[];
    /// What `predict` returns: an array for one output, a tuple of arrays for several.
    type Prediction: Prediction;

    /// Forward pass over inputs `xs` (one slice per input, `ctx.n` samples each); a training
    /// pass (`ctx.training`) keeps what backward needs.
    fn run(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>);
    /// Output `k` of the last forward pass.
    fn output(&self, k: usize) -> &[f32];
    /// Backward pass from the loss gradients `dys` (one per output), writing every parameter's
    /// gradient. `fused[k]`: `dys[k]` is with respect to output `k`'s softmax input.
    fn run_backward(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>);
    /// Visits every parameter with its full name (`dense_1.kernel`).
    fn visit_weights(&self, f: &mut dyn FnMut(&str, &Param));
    /// Visits every parameter mutably, in the order of [`visit_weights`](Self::visit_weights).
    fn visit_weights_mut(&mut self, f: &mut dyn FnMut(&mut Param));
    /// Like [`run_backward`](Self::run_backward), also computing the gradients with respect to
    /// the model's inputs (read with [`input_grad_of`](Self::input_grad_of)). Models the macros
    /// generate implement it; the default computes none.
    #[doc(hidden)]
    fn backward_to_inputs(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>) {
        self.run_backward(xs, dys, fused, ctx)
    }
    /// The gradient with respect to input `i` after [`backward_to_inputs`](Self::backward_to_inputs)
    /// with the output gradients `dys` (an input that is also an output takes its gradient from
    /// there); empty when the model does not compute it.
    #[doc(hidden)]
    fn input_grad_of<'s>(&'s self, _i: usize, _dys: &[&'s [f32]]) -> &'s [f32] {
        &[]
    }
    /// Calls `f` with each layer's name and output of the last forward pass, in the order the
    /// layers ran (what `predict` reads to name the layer that first computed a non-finite
    /// value). Models the macros generate implement it; the default visits none.
    #[doc(hidden)]
    fn visit_layer_outputs(&self, _f: &mut dyn FnMut(&str, &[f32])) {}
    /// The activity penalties of the last forward pass (Keras' layer losses from
    /// `activity_regularizer`), added to the loss.
    fn activity_penalty(&self) -> f64 {
        0.0
    }
    /// The value of the `i`-th `add_loss` term in the last forward pass (its mean over the
    /// batch), already part of [`activity_penalty`](Self::activity_penalty).
    fn added_loss(&self, _i: usize) -> f64 {
        0.0
    }
    /// The training state (seed, compiled configuration, buffers).
    fn train_state(&self) -> &TrainState;
    /// The training state, mutably.
    fn train_state_mut(&mut self) -> &mut TrainState;

    /// Chooses the loss, optimizer and metrics, each by Keras name or as a value:
    ///
    /// ```ignore
    /// model.compile("mse", "sgd", &[])?;
    /// model.compile(Loss::MeanSquaredError, Sgd::new(0.01), &[Metric::Mae])?;
    /// ```
    ///
    /// With several outputs, the loss and the metrics apply to each of them; see
    /// [`compile_with`](Self::compile_with) for a loss, a weight and metrics per output.
    /// An unknown name is an error listing the valid ones. Compiling again replaces the
    /// optimizer (and its state); the weights are kept.
    fn compile(&mut self, loss: impl IntoLoss, optimizer: impl IntoOptimizer, metrics: &[&str]) -> Result<()> {
        self.compile_with(Compile::new(optimizer).loss(loss).metrics(metrics))
    }

    /// Compiles with per-output losses, loss weights and metrics (Keras' dict forms):
    ///
    /// ```ignore
    /// model.compile_with(
    ///     Compile::new("adam")
    ///         .output_loss("class", "sparse_categorical_crossentropy")
    ///         .output_loss("score", "mse")
    ///         .loss_weight("score", 0.5)
    ///         .output_metrics("class", &["accuracy"]),
    /// )?;
    /// ```
    fn compile_with(&mut self, config: Compile) -> Result<()> {
        train::compile(self, config)
    }

    /// Trains for `opts.epochs` epochs and returns the per-epoch [`History`].
    ///
    /// `x` is one array (`[n, ..input shape]`) or, for several inputs, a tuple of arrays in
    /// declaration order; `y` likewise per output (`[n, outputs]`, or `[n]` / `[n, 1]` integer
    /// labels for `sparse_categorical_crossentropy`). See [`Fit`] for the options, including which
    /// rows `validation_split` takes (the last ones, before shuffling, as in Keras).
    ///
    /// Errors, before any weight changes: not compiled, shapes that do not fit the model or the
    /// loss, row counts that differ, NaN or inf in `x`, labels out of range, bad options. A loss
    /// that becomes NaN or infinite stops training with an error naming the epoch and batch.
    fn fit<'a>(&mut self, x: impl Inputs<'a>, y: impl Inputs<'a>, opts: Fit<'_>) -> Result<History> {
        train::fit(self, x.arrays(), y.arrays(), &opts, None, None, &mut [])
    }

    /// `fit` on a [`Dataset`](crate::data::Dataset) of batches (Keras' `fit(dataset)`): data
    /// read a batch at a time — from files, a generator, a computation — so it need not fit in
    /// memory. Each epoch is a pass over the dataset (it is restarted before each), or
    /// `steps_per_epoch` batches of the pass under way; each batch is checked as `fit` checks
    /// arrays. `batch_size` and `shuffle` do not apply (the dataset batches and shuffles);
    /// `validation_split` and `sample_weight` are refused (give a validation dataset to
    /// [`fit_dataset_with`](Self::fit_dataset_with); weights come with each batch). A batch that
    /// cannot be read or does not fit stops training with an error holding the epochs finished.
    ///
    /// ```ignore
    /// let mut train = kiln::data::from_generator(|| (0..1000).map(read_batch)).prefetch(4);
    /// model.fit_dataset(&mut train, Fit { epochs: 5, ..Fit::default() })?;
    /// ```
    fn fit_dataset(&mut self, data: &mut dyn crate::data::Dataset<Item = crate::data::Batch>, opts: Fit<'_>) -> Result<History> {
        train::fit_dataset(self, data, None, &opts, (None, None), &mut [])
    }

    /// [`fit_dataset`](Self::fit_dataset) with a validation dataset (a whole pass after each
    /// epoch, `val_` keys as in `fit`) and callbacks.
    fn fit_dataset_with<'d>(
        &mut self,
        data: &'d mut dyn crate::data::Dataset<Item = crate::data::Batch>,
        validation: Option<&'d mut dyn crate::data::Dataset<Item = crate::data::Batch>>,
        opts: Fit<'_>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        train::fit_dataset(self, data, validation, &opts, (None, None), callbacks)
    }

    /// [`fit_with`](Self::fit_with) (your own training step, with the compiled optimizer, loss
    /// and metrics reported as in `fit`) on datasets, with callbacks.
    fn fit_dataset_with_step<'d>(
        &mut self,
        data: &'d mut dyn crate::data::Dataset<Item = crate::data::Batch>,
        validation: Option<&'d mut dyn crate::data::Dataset<Item = crate::data::Batch>>,
        opts: Fit<'_>,
        mut step: impl FnMut(&mut Self, &mut dyn crate::Optimizer, train::StepBatch<'_>) -> Result<()>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        let mut step = |m: &mut dyn dynamic::DynModel, opt: &mut dyn crate::Optimizer, batch: train::StepBatch<'_>| {
            let m = m.as_any_mut().downcast_mut::<Self>().ok_or(crate::Error::invalid("fit", "the step's model"))?;
            step(m, opt, batch)
        };
        train::fit_dataset(self, data, validation, &opts, (Some(&mut step), None), callbacks)
    }

    /// [`fit_steps`](Self::fit_steps) (a step of your own that owns its optimizers and returns its
    /// logs: a GAN, a distiller) on datasets: each batch's arrays, whatever their shapes, go to
    /// the step; a validation dataset goes to its `test_step`.
    fn fit_steps_dataset<'d>(
        &mut self,
        data: &'d mut dyn crate::data::Dataset<Item = crate::data::Batch>,
        validation: Option<&'d mut dyn crate::data::Dataset<Item = crate::data::Batch>>,
        opts: Fit<'_>,
        step: &mut impl crate::CustomStep<Self>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        let mut typed = train::TypedStep(step, std::marker::PhantomData);
        train::fit_dataset(self, data, validation, &opts, (None, Some(&mut typed)), callbacks)
    }

    /// Loss and metrics over one pass of a dataset of batches (inference mode), keyed as in
    /// `History`.
    fn evaluate_dataset(&mut self, data: &mut dyn crate::data::Dataset<Item = crate::data::Batch>) -> Result<Logs> {
        train::evaluate_dataset(self, data, train::Evaluate { verbose: 0, ..train::Evaluate::default() })
    }

    /// The model's outputs for one pass of a dataset of batches, rows in the order read (the
    /// batches' targets are not read).
    fn predict_dataset(
        &mut self,
        data: &mut dyn crate::data::Dataset<Item = crate::data::Batch>,
    ) -> Result<Self::Prediction> {
        train::predict_dataset(self, data).and_then(Prediction::from_outputs)
    }

    /// `fit` with Keras' callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, ... or your
    /// own [`Callback`](crate::Callback)), run in the order given:
    ///
    /// ```ignore
    /// let mut early = EarlyStopping::new("val_loss").patience(3).restore_best_weights(true);
    /// model.fit_with_callbacks(&x, &y, Fit { epochs: 100, validation_split: 0.2, ..Fit::default() }, &mut [&mut early])?;
    /// ```
    fn fit_with_callbacks<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        opts: Fit<'_>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        train::fit(self, x.arrays(), y.arrays(), &opts, None, None, callbacks)
    }

    /// `fit` with a training step of your own (Keras' `train_step` override): the loop, the
    /// shuffling, the progress bar, validation and History stay as in `fit`; `step` decides what
    /// happens to each batch. It receives the model, the compiled optimizer and the batch, and
    /// must run the model forward on the batch (as [`loss_and_grads`](Self::loss_and_grads)
    /// does), since `fit` reports the loss and metrics of those outputs.
    fn fit_with<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        opts: Fit<'_>,
        step: impl FnMut(&mut Self, &mut dyn crate::Optimizer, train::StepBatch<'_>) -> Result<()>,
    ) -> Result<History> {
        self.fit_with_step_and_callbacks(x, y, opts, step, &mut [])
    }

    /// [`fit_with`](Self::fit_with) (a training step of your own) with callbacks, as
    /// [`fit_with_callbacks`](Self::fit_with_callbacks) runs them.
    fn fit_with_step_and_callbacks<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        opts: Fit<'_>,
        mut step: impl FnMut(&mut Self, &mut dyn crate::Optimizer, train::StepBatch<'_>) -> Result<()>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        // `fit` hands the step back the model it was given, as a trait object.
        let mut step = |m: &mut dyn dynamic::DynModel, opt: &mut dyn crate::Optimizer, batch: train::StepBatch<'_>| {
            let m = m.as_any_mut().downcast_mut::<Self>().ok_or(crate::Error::invalid("fit", "the step's model"))?;
            step(m, opt, batch)
        };
        train::fit(self, x.arrays(), y.arrays(), &opts, Some(&mut step), None, callbacks)
    }

    /// `fit` with a training step of your own that owns its optimizers and returns its logs
    /// (Keras' `train_step` and `test_step` overrides: a GAN, a distiller). `x` and `y` are
    /// whatever the step reads — any shapes, one row per sample, `()` for no targets — handed
    /// to it batch by batch (shuffled, `validation_split` held out, as `fit` does). The logs it
    /// returns are averaged over each epoch, shown and kept in the [`History`]; a value that is
    /// not finite stops training as a NaN loss does. Callbacks run as in `fit`: checkpoints save
    /// every optimizer of [`CustomStep::optimizers`](crate::CustomStep::optimizers), and the
    /// learning-rate callbacks scale them. The model need not be compiled.
    fn fit_steps<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        opts: Fit<'_>,
        step: &mut impl crate::CustomStep<Self>,
        callbacks: &mut [&mut dyn crate::Callback],
    ) -> Result<History> {
        let mut typed = train::TypedStep(step, std::marker::PhantomData);
        train::fit(self, x.arrays(), y.arrays(), &opts, None, Some(&mut typed), callbacks)
    }

    /// The loss on one batch and its gradient with respect to every parameter, for custom
    /// training loops (Keras' `GradientTape`): `&loss` for every output, or [`Losses`](crate::Losses)
    /// with a loss and a weight per output (`Losses::compiled()`: those of `compile`). The loss
    /// counts what `fit` counts — each output's weighted loss, weight regularization, activity
    /// penalties and `add_loss` terms — with the same bits. A training pass: dropout draws from
    /// the model's random stream, moving statistics are updated.
    fn loss_and_grads<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        losses: &(impl train::ToLosses + ?Sized),
    ) -> Result<(f32, train::Gradients)> {
        train::loss_and_grads(self, x.arrays(), y.arrays(), &losses.to_losses())
    }

    /// A training-mode forward pass (Keras' `model(x, training=True)` under a `GradientTape`):
    /// the outputs, as `predict` gives them, with what [`backward_train`](Self::backward_train)
    /// needs kept. Dropout is on and moving statistics are updated, as in a step of `fit`.
    fn forward_train<'a>(&mut self, x: impl Inputs<'a>) -> Result<Self::Prediction> {
        train::forward_train(self, x.arrays()).and_then(Prediction::from_outputs)
    }

    /// The backward pass of the last [`forward_train`](Self::forward_train) from `dy`, the
    /// gradient of your loss with respect to each output (a tuple for several outputs): every
    /// parameter's gradient (to apply with an optimizer, or not) and every input's gradient (to
    /// go on into the model that produced the input). Nothing is applied; the model's own losses
    /// (regularization, `add_loss`) are included. A step through two models:
    ///
    /// ```ignore
    /// let logits = disc.forward_train(&gen.forward_train(&z)?)?;
    /// let (loss, dy) = bce.value_and_grad(&logits, &ones)?;
    /// let through = disc.backward_train(&dy)?;                     // disc not updated
    /// let g = gen.backward_train(&through.input_grads[0])?.grads;
    /// gen_opt.apply(&mut gen, &g)?;
    /// ```
    fn backward_train<'a>(&mut self, dy: impl Inputs<'a>) -> Result<train::Backward> {
        train::backward_train(self, dy.arrays())
    }

    /// `evaluate` with one weight per row (Keras' `sample_weight`): the loss is `Σ wᵢ lᵢ / n`;
    /// metrics are not weighted.
    fn evaluate_weighted<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        sample_weight: ndarray::ArrayView1<'_, f32>,
        opts: train::Evaluate,
    ) -> Result<Logs> {
        train::evaluate(self, x.arrays(), y.arrays(), opts, Some(sample_weight))
    }

    /// The gradient of `loss` with respect to each input, one array per input in its shape
    /// (`[n, ..]`): saliency maps, adversarial examples. Inference mode (no dropout, moving
    /// statistics); weights, their gradients and the optimizer are left as they were. `loss`
    /// applies to every output, and the gradients of all outputs' losses add up.
    fn input_gradients<'a>(
        &mut self,
        x: impl Inputs<'a>,
        y: impl Inputs<'a>,
        loss: &crate::Loss,
    ) -> Result<Vec<ArrayD<f32>>> {
        train::input_gradients(self, x.arrays(), y.arrays(), loss)
    }

    /// Loss and metrics on `x`, `y` (batches of [`EVALUATE_BATCH`](crate::train::EVALUATE_BATCH)
    /// rows, Keras' default; inference mode), keyed as in `History`.
    fn evaluate<'a>(&mut self, x: impl Inputs<'a>, y: impl Inputs<'a>) -> Result<Logs> {
        train::evaluate(self, x.arrays(), y.arrays(), train::Evaluate::default(), None)
    }

    /// `evaluate` with Keras' `batch_size` and `verbose`:
    /// `model.evaluate_with(&x, &y, Evaluate { batch_size: 128, verbose: 1 })`.
    fn evaluate_with<'a>(&mut self, x: impl Inputs<'a>, y: impl Inputs<'a>, opts: train::Evaluate) -> Result<Logs> {
        train::evaluate(self, x.arrays(), y.arrays(), opts, None)
    }

    /// The model's outputs for every row of `x`, each in its output's shape: `[n, ..output
    /// shape]` (an `Array2` for a vector output, an `Array3` for a sequence), or a tuple of those
    /// for several outputs. A single sample is a 1-row
    /// array; see also [`predict_one`](Self::predict_one).
    fn predict<'a>(&mut self, x: impl Inputs<'a>) -> Result<Self::Prediction> {
        train::predict(self, x.arrays(), train::Predict::default()).and_then(Prediction::from_outputs)
    }

    /// `predict` with Keras' `batch_size` and `verbose`.
    fn predict_with<'a>(&mut self, x: impl Inputs<'a>, opts: train::Predict) -> Result<Self::Prediction> {
        train::predict(self, x.arrays(), opts).and_then(Prediction::from_outputs)
    }

    /// The (first) output for one sample of a single-input model, given as a flat slice of the
    /// input's values (row-major); after the first call it allocates nothing.
    fn predict_one(&mut self, x: &[f32]) -> Result<&[f32]> {
        train::predict_one(self, x)
    }

    /// One gradient step on one batch; returns the batch's logs before the step (`loss`, each
    /// output's loss, the metrics), as Keras' `train_on_batch(.., return_dict=True)`.
    fn train_on_batch<'a>(&mut self, x: impl Inputs<'a>, y: impl Inputs<'a>) -> Result<Logs> {
        train::train_on_batch(self, x.arrays(), y.arrays())
    }

    /// Loss and metrics of one batch in inference mode, nothing updated (Keras' `test_on_batch`
    /// with `return_dict=True`).
    fn test_on_batch<'a>(&mut self, x: impl Inputs<'a>, y: impl Inputs<'a>) -> Result<Logs> {
        let views = x.arrays();
        let n = views.first().map_or(0, |v| v.shape().first().copied().unwrap_or(0));
        train::evaluate(self, views, y.arrays(), train::Evaluate { batch_size: n.max(1), verbose: 0 }, None)
    }

    /// The model's outputs for `x` in one forward pass (Keras' `predict_on_batch`).
    fn predict_on_batch<'a>(&mut self, x: impl Inputs<'a>) -> Result<Self::Prediction> {
        let views = x.arrays();
        let n = views.first().map_or(0, |v| v.shape().first().copied().unwrap_or(0));
        train::predict(self, views, train::Predict { batch_size: n.max(1), verbose: 0 })
            .and_then(Prediction::from_outputs)
    }

    /// Saves the weights to a safetensors file, atomically (see [`crate::io`]).
    fn save_weights(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::io::save_weights(self, path.as_ref())
    }

    /// Loads weights saved by `save_weights`. The whole file is checked first (checksums,
    /// architecture, names, shapes, dtype, finite values); on any error the model is unchanged.
    fn load_weights(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::io::load_weights(self, path.as_ref(), crate::io::LoadOptions::default())
    }

    /// `load_weights` with options: `LoadOptions { check_architecture: false }` loads a file
    /// saved by a model of another architecture whose tensors have the same names and shapes.
    fn load_weights_with(&mut self, path: impl AsRef<std::path::Path>, opts: crate::io::LoadOptions) -> Result<()> {
        crate::io::load_weights(self, path.as_ref(), opts)
    }

    /// Saves weights, optimizer state and the epoch count, so that training resumes exactly.
    fn save_checkpoint(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::io::save_checkpoint(self, path.as_ref())
    }

    /// Loads a checkpoint into a model compiled with the same optimizer; the next `fit` continues
    /// as if training had never stopped.
    fn load_checkpoint(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::io::load_checkpoint(self, path.as_ref())
    }

    /// Every parameter with its name, in traversal order (Keras' `model.weights`).
    fn weights(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        self.visit_weights(&mut |n, p| out.push((n.to_string(), p.clone())));
        out
    }

    /// One weight's values by name (`dense_1.kernel`), in its shape (Keras' `get_weights`, by name).
    fn get_weight(&self, name: &str) -> Option<ArrayD<f32>> {
        let mut out = None;
        self.visit_weights(&mut |n, p| {
            if n == name {
                out = ArrayD::from_shape_vec(p.shape().to_vec(), p.value.clone()).ok();
            }
        });
        out
    }

    /// Replaces one weight's values by name, without a file (Keras' `set_weights`, by name). The
    /// shape must be the weight's, every value finite, and a variance's values >= 0; an unknown
    /// name lists the model's.
    fn set_weight<'a>(&mut self, name: &str, value: impl Inputs<'a>) -> Result<()> {
        let views = value.arrays();
        let [view] = &views[..] else {
            return Err(crate::Error::invalid("value", "set_weight takes one array"));
        };
        let mut found = None;
        let mut names = Vec::new();
        self.visit_weights(&mut |n, p| {
            names.push(n.to_string());
            if n == name {
                found = Some(p.shape().to_vec());
            }
        });
        let Some(shape) = found else {
            let known: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            return Err(crate::Error::invalid(
                "name",
                format!(
                    "{} has no weight `{name}`{}; its weights are: {}",
                    Self::NAME,
                    crate::error::did_you_mean(name, &known),
                    known.join(", ")
                ),
            ));
        };
        if view.shape() != &shape[..] {
            return Err(crate::Error::Shape {
                what: format!("weight `{name}` of {}", Self::NAME),
                expected: crate::error::Shape(shape).to_string(),
                got: crate::error::Shape(view.shape().to_vec()),
            });
        }
        let values: Vec<f32> = view.iter().copied().collect();
        let mut refused = None;
        self.visit_weights(&mut |n, p| refused = refused.take().or_else(|| (n == name).then(|| p.refuse(&values)).flatten()));
        if let Some(reason) = refused {
            return Err(crate::Error::InvalidData { what: format!("weight `{name}`"), reason });
        }
        let mut i = 0;
        let target = names.iter().position(|n| n == name).unwrap_or(usize::MAX);
        self.visit_weights_mut(&mut |p| {
            if i == target {
                p.value.copy_from_slice(&values);
            }
            i += 1;
        });
        Ok(())
    }

    /// Keras' `Normalization.adapt`: sets the mean and variance of the Normalization layer named
    /// `layer` to those of `x` — what that layer reads, one row per sample — feature by feature
    /// over its last axis (every other axis pooled; the population variance, as Keras). Call it
    /// before `fit`; it changes no other weight (the layer's `count` stays 0, as Keras 3 leaves
    /// it).
    ///
    /// ```ignore
    /// let mut model = Regressor::new();          // Normalization(), Dense(64, ..), ...
    /// model.adapt("normalization", &x_train)?;   // Keras: normalizer.adapt(x_train)
    /// ```
    ///
    /// For a `Discretization` layer (declared with `num_bins`), it learns the bin boundaries from
    /// every value of `x` as Keras' `Discretization.adapt` does (its quantile summary, epsilon
    /// 0.01: Keras' boundaries to the bit).
    fn adapt<'a>(&mut self, layer: &str, x: impl Inputs<'a>) -> Result<()> {
        let views = x.arrays();
        let [view] = &views[..] else {
            return Err(crate::Error::invalid("x", "adapt takes one array: what the layer reads"));
        };
        if Self::LAYERS.iter().any(|l| l.name == layer && l.kind == "IntegerLookup") {
            // Keras' IntegerLookup.adapt: the most frequent values first (ties as Keras breaks
            // them), as many as the layer holds; -1 in the places left.
            let name = format!("{layer}.vocabulary");
            let slots = self.get_weight(&name).map_or(0, |w| w.len());
            let mut values = Vec::with_capacity(view.len());
            for (i, &v) in view.iter().enumerate() {
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(crate::Error::InvalidData { what: "x".into(), reason: format!("value {i} is {v}, not an integer") });
                }
                values.push(v as i64);
            }
            let mut lookup = crate::data::IntegerLookup::new(Some(slots + 1), crate::data::Encoding::MultiHot);
            lookup.adapt(&values)?;
            let mut learned: Vec<f32> = lookup.vocabulary().into_iter().skip(1).map(|v| v as f32).collect();
            learned.resize(slots, -1.0);
            return self.set_weight(&name, &ndarray::Array1::from(learned));
        }
        if Self::LAYERS.iter().any(|l| l.name == layer && l.kind == "Discretization") {
            let name = format!("{layer}.bin_boundaries");
            let bins = self.get_weight(&name).map_or(1, |w| w.len() + 1);
            let values: Vec<f32> = view.iter().copied().collect();
            let learned = crate::data::Discretization::adapt(&values, bins, 0.01)?;
            return self.set_weight(&name, &ndarray::Array1::from(learned.boundaries().to_vec()));
        }
        let layers: Vec<&str> =
            Self::LAYERS.iter().filter(|l| matches!(l.kind, "Normalization" | "Discretization" | "IntegerLookup")).map(|l| l.name).collect();
        let mean_name = format!("{layer}.mean");
        let features = self.get_weight(&mean_name).map(|w| w.len());
        let (true, Some(features)) = (layers.contains(&layer), features) else {
            let which = match layers.len() {
                0 => "it has none".to_string(),
                _ => format!("the layers it can adapt are: {}", layers.join(", ")),
            };
            return Err(crate::Error::invalid(
                "layer",
                format!(
                    "{} has no Normalization, Discretization or IntegerLookup layer `{layer}`{}; {which}",
                    Self::NAME,
                    crate::error::did_you_mean(layer, &layers)
                ),
            ));
        };
        let shape = view.shape();
        if shape.len() < 2 || shape[shape.len() - 1] != features {
            return Err(crate::Error::Shape {
                what: format!("x (what `{layer}` of {} reads)", Self::NAME),
                expected: format!("[n, .., {features}]"),
                got: crate::error::Shape(shape.to_vec()),
            });
        }
        if view.is_empty() {
            return Err(crate::Error::InvalidData { what: "x".into(), reason: "it has no rows".into() });
        }
        if let Some((i, v)) = view.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(crate::Error::InvalidData {
                what: "x".into(),
                reason: format!("value {i} (row {}) is {v}", i / (view.len() / shape[0])),
            });
        }
        // Two passes in f64: the mean, then the mean squared deviation.
        let rows = view.len() / features;
        let mut mean = vec![0f64; features];
        view.iter().enumerate().for_each(|(i, v)| mean[i % features] += *v as f64);
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0f64; features];
        view.iter().enumerate().for_each(|(i, v)| var[i % features] += (*v as f64 - mean[i % features]).powi(2));
        var.iter_mut().for_each(|v| *v /= rows as f64);
        let as_array = |v: Vec<f64>| ndarray::Array1::from_iter(v.into_iter().map(|v| v as f32));
        self.set_weight(&mean_name, &as_array(mean))?;
        self.set_weight(&format!("{layer}.variance"), &as_array(var))
    }

    /// A layer of the summary table by name (`dense_1`): its class, output shape, parameter count.
    fn get_layer(&self, name: &str) -> Option<&'static LayerInfo> {
        Self::LAYERS.iter().find(|l| l.name == name)
    }

    /// Total number of parameter values.
    fn count_params(&self) -> usize {
        let mut n = 0;
        self.visit_weights(&mut |_, p| n += p.len());
        n
    }

    /// Keras' summary table as a string (see [`summary`](Self::summary)).
    fn summary_string(&self) -> String {
        summary::render(self, false)
    }

    /// The summary with nested models' layers listed under them (Keras' `expand_nested=True`).
    fn summary_expanded(&self) -> String {
        summary::render(self, true)
    }

    /// Prints Keras' summary table: one row per layer with its output shape and parameter count,
    /// then the total, trainable and non-trainable parameter counts. Needs no forward pass.
    fn summary(&self) {
        println!("{}", self.summary_string());
    }

    /// Makes this model one replica of a data-parallel run (see [`crate::distributed`]): `fit`
    /// then trains on this process's shard of each global batch and every replica applies the
    /// same summed gradients; `evaluate` and the epochs' logs cover all the rows; checkpoints and
    /// log files are written by process 0 alone. Every process passes the same data (and builds
    /// the model from the same seed); `fit_dataset` likewise takes each process's shard of every
    /// batch of the same dataset.
    fn distribute(&mut self, group: crate::distributed::Group) {
        self.train_state_mut().set_group(Some(group));
    }

}

