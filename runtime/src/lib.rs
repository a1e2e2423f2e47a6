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

    use crate::data::TextVectorization;

    fn no_text(name: &str) -> crate::Error {
        crate::Error::invalid("TextVectorization", format!("{name} reads numbers, not texts"))
    }

    /// A text model's TextVectorization.
    pub fn text_of<M: Model>(m: &M) -> crate::Result<&TextVectorization> {
        m.train_state().text().ok_or_else(|| no_text(M::NAME))
    }

    /// A text model's TextVectorization, to adapt.
    pub fn text_of_mut<M: Model>(m: &mut M) -> crate::Result<&mut TextVectorization> {
        m.train_state_mut().text_mut().ok_or_else(|| no_text(M::NAME))
    }

    /// A new text model's TextVectorization, before `adapt`.
    pub fn set_text<M: Model>(m: &mut M, opts: crate::data::TextOptions) {
        m.train_state_mut().set_text(TextVectorization::new(opts));
    }

    /// The vocabulary of a text model's embedded weights file (its metadata, checked when the
    /// model compiled).
    pub fn set_text_json<M: Model>(m: &mut M, json: &str) {
        match TextVectorization::from_json(json) {
            Ok(tv) => m.train_state_mut().set_text(tv),
            // The macro read this text from the file kiln wrote and checked its checksums.
            Err(e) => panic!("{}: the embedded TextVectorization does not parse: {e}", M::NAME),
        }
    }
}
