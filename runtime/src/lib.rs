//! The runtime of kiln: kernels, layers, losses, optimizers, metrics and the compile/fit
//! machinery that the model macros' generated code links against.
//!
//! Users depend on the `kiln` crate, which re-exports this one with the macros.

#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

pub mod infer;

/// Items that need the standard library (all but [`infer`]), compiled with the `std` feature.
macro_rules! with_std {
    ($($item:item)*) => { $( #[cfg(feature = "std")] $item )* };
}

with_std! {
pub mod data;
pub mod distributed;
pub mod error;
pub mod fpenv;
pub mod history;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod model;
mod onnx;
pub mod optimizers;
#[cfg(feature = "plot")]
pub mod plot;
pub mod random;
pub mod summary;
pub mod testing;
pub mod train;

pub use error::{Error, Result, Shape};
pub use io::LoadOptions;
pub use layers::{
    Activation, ActivationFn, Add, AttentionConfig, Average, AveragePooling1D, AveragePooling2D, BackwardOpts, BatchNorm,
    BatchNormalization, BiGruSeq, BiLstmSeq, Conv1D, CrossAttention, Conv2D, MaxPooling1D, MaxPooling2D, Padding, Same, Valid,
    Bidirectional, Concatenate, Constraint, Conv, DotAttention, DotAttentionConfig, ConvTranspose, Ctx, Dense, Depthwise, Dot, Dropout, Elu, Embed,
    Embedding, GaussianNoise, Gelu, GeluApproximate, GlobalPool, GruSeq, Init, Initializer, Layer, LayerBuffers,
    LayerNorm, LayerNormalization, LeakyReLU, LeakyRelu, Linear, LstmSeq, MaskSource, Masking, Maximum, Minimum,
    MultiHeadAttention, Multiply, Normalization, PReLU, Param, Permute, Pool, PoolKind, Recurrent, RecurrentConfig, Regularizer, Relu, Resample,
    Rescaling, Role, SelfAttention, Selu, Separable, Shaped, Shareable, Sigmoid, Silu, SimpleRnnSeq, Softmax, Softplus,
    SpatialDropout, Subtract, Swish, Tanh, TimeDistributed, Reduce, ReduceOp, Unary, UnaryOp, BinaryOp, Broadcast, Distribution, Draw, MatMul, Gather, Slice, SoftmaxAxis, Weight, WeightInit, Ones, Zeros, Matrix, MatrixInit, GlorotUniform,
    FillMode, RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Resize,
    resize_bilinear,
};
pub use losses::{CustomLoss, Loss, LossKind};
pub use metrics::{ClassAverage, Curve, Metric, MetricSpec, RunningMetric};
pub use model::{DType, Element, InputArray, Inputs, MAX_PORTS, Model, Port, Prediction};
pub use optimizers::{
    Adafactor, Adagrad, Adam, AdamW, Adamax, Clip, Clipped, Clipping, CosineDecay, CosineDecayRestarts,
    ExponentialDecay, IntoOptimizer, InverseTimeDecay, LearningRateSchedule, Lion, Nadam, Optimizer, OptimizerState,
    PiecewiseConstantDecay, PolynomialDecay, RmsProp, Scheduled, Sgd,
};
#[cfg(feature = "plot")]
pub use plot::{PlotOptions, plot_model};
pub use rand::rngs::StdRng;
pub use random::Stream;
pub use layers::LayerInfo;
pub use train::{
    ApplyGradients, BackupAndRestore, Backward, Callback, CustomStep, Compile, CsvLogger, EarlyStopping, Evaluate, Fit, Gradients,
    HasCallState, History, IntoLoss, LambdaCallback, LearningRateScheduler, Logs, Losses, Mode, ModelCheckpoint, ModelState,
    Predict, ReduceLrOnPlateau, StepBatch, TerminateOnNaN, TrainState, Trainee, apply_gradients, batches,
    validation_data, validation_rows,
};

/// The seed models use when none is given (`Model::new()`); `with_seed` picks another.
pub const DEFAULT_SEED: u64 = 1337;
}

/// What the model macros' generated code uses. Not part of the public API: names here change
/// without notice.
#[doc(hidden)]
#[cfg(feature = "std")]
pub mod __private {
    pub use crate::DEFAULT_SEED;
    pub use crate::io::{install_embedded, install_embedded_named};
    pub use crate::kernels::ActKind;
    pub use crate::layers::*;
    pub use crate::model::{DType, Model, Port};
    pub use crate::onnx::save_onnx;
    pub use crate::summary::LayerInfo;
    pub use crate::train::{HasCallState, ModelState, TrainState};
    pub use ndarray::{Array2, Array3, Array4, Array5, Array6, ArrayD};
    pub use rand::rngs::StdRng;
    pub use rand::{RngCore, SeedableRng};

    use crate::data::StringInput;

    fn no_strings(name: &str) -> crate::Error {
        crate::Error::invalid("strings", format!("{name} reads numbers, not strings"))
    }

    /// A string-reading model's preprocessing.
    pub fn strings_of<M: Model>(m: &M) -> crate::Result<&StringInput> {
        m.train_state().strings().ok_or_else(|| no_strings(M::NAME))
    }

    /// A string-reading model's preprocessing, to adapt.
    pub fn strings_of_mut<M: Model>(m: &mut M) -> crate::Result<&mut StringInput> {
        m.train_state_mut().strings_mut().ok_or_else(|| no_strings(M::NAME))
    }

    /// `Hashing(num_bins, mask_value, salt, output_mode)` read by a model's string input (the
    /// macro checked `num_bins` against the mask).
    pub fn hashing_input(num_bins: usize, mask: Option<&str>, salt: Option<[u64; 2]>, one_hot: bool) -> StringInput {
        let h = crate::data::Hashing::from_parts(num_bins, mask);
        let h = match salt {
            Some(s) => h.with_salt(s),
            None => h,
        };
        let mode = if one_hot { crate::data::Encoding::OneHot } else { crate::data::Encoding::Int };
        StringInput::Hashing(h, mode)
    }

    /// A new string-reading model's preprocessing.
    pub fn set_strings<M: Model>(m: &mut M, s: StringInput) {
        m.train_state_mut().set_strings(s);
    }

    /// The state of a string-reading model from its embedded weights file's metadata entry
    /// `key` (checked against the file's `kiln.checksum` when the model compiled).
    pub fn set_strings_json<M: Model>(m: &mut M, key: &str, json: &str) {
        let Some(ours) = m.train_state().strings() else { return };
        match ours.from_metadata(|k| (k == key).then(|| json.to_string())) {
            Ok(s) => m.train_state_mut().set_strings(s),
            // The macro read this from the file kiln wrote and checked its checksums.
            Err(e) => panic!("{}: the embedded string preprocessing does not fit the model: {e}", M::NAME),
        }
    }
}
