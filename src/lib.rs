//! # kiln
//!
//! Deep learning for Rust with models defined by procedural macros. A model's every shape is
//! checked when it compiles, and the macros expand into statically shaped forward and backward
//! code that links against kiln's runtime (kernels, layers, losses, optimizers, metrics, and
//! Keras' `compile` / `fit` / `evaluate` / `predict`).
//!
//! ```
//! use kiln::prelude::*;
//!
//! sequential! {
//!     /// y = f(x) regression, as in the Keras tutorial.
//!     pub struct Regressor: [1] {
//!         Dense(64),
//!         Dense(1),
//!     }
//! }
//!
//! # fn main() -> kiln::Result<()> {
//! let x = ndarray::Array2::from_shape_fn((64, 1), |(i, _)| i as f32 / 64.0);
//! let y = x.mapv(|v| 2.0 * v + 1.0);
//! let mut model = Regressor::new();
//! model.compile("mse", "sgd", &[])?;
//! let history = model.fit(&x, &y, Fit { epochs: 5, verbose: 0, ..Fit::default() })?;
//! assert!(history.last("loss").unwrap() < history.get("loss").unwrap()[0]);
//! let pred = model.predict(&x)?;
//! assert_eq!(pred.shape(), &[64, 1]);
//! # Ok(())
//! # }
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

#[doc(hidden)]
pub use kiln_macros::__call;
pub use kiln_macros::{Model, call, functional, loss, model, onnx, sequential};
pub use kiln_runtime::*;

/// Data-parallel training across processes: the runtime's [`kiln_runtime::distributed`], and
/// `Mpi` with the cargo feature `mpi`.
#[cfg(feature = "std")]
pub mod distributed {
    #[cfg(feature = "mpi")]
    pub use crate::mpi::Mpi;
    pub use kiln_runtime::distributed::*;
}
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "std")]
pub use ndarray;

/// Everything a model definition and its training code need: `use kiln::prelude::*;`.
#[cfg(feature = "std")]
pub mod prelude {
    pub use kiln_macros::{Model, functional, sequential};
    pub use kiln_runtime::{
        Activation, Adagrad, Adam, AdamW, Adamax, ApplyGradients, Clip, Compile, CustomLoss, Dense, Elu, Fit, Gelu,
        Gradients, History, LeakyRelu, Linear, Lion, Loss, Metric, Model, ModelState, Nadam, Optimizer, Relu, RmsProp,
        Selu, Sgd, Sigmoid, Silu, Softmax, Softplus, Swish, Tanh, Weight, batches, validation_data,
    };
}

/// The README's code blocks, compiled and run as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
