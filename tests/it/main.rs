//! kiln's integration tests, in one binary so kiln and its dependencies are linked once: a
//! module per area. The allocation counter (`tests/alloc.rs`, which installs a global
//! allocator) is a binary of its own; the compile-fail snapshots are the package `tests/ui/`.
//!
//! Run one area with `cargo test --test it <module>::`, e.g. `cargo test --test it gradcheck::`.

mod attention;
mod augment;
mod callbacks;
mod clipping;
mod cnn;
mod custom_layer;
mod custom_losses;
mod custom_steps;
mod data_folder;
mod datasets;
mod digits;
mod distillation;
mod distributed;
mod embed_subclass;
mod functional;
mod functional_math;
mod fusion;
mod gan;
mod generic_models;
mod gradcheck;
mod hardening;
mod hardening2;
mod infer;
mod infer_math;
mod initializers;
mod io;
mod keras_cnn;
mod keras_drift;
mod keras_interop;
mod keras_reference;
mod layer_norm;
mod lookup;
mod loops;
mod losses_extra;
mod masking;
mod math;
mod matrix_weights;
mod metrics;
mod normalization;
mod onnx;
mod preprocessing_layers;
mod properties;
mod properties_models;
mod recurrent;
mod sample_weights;
mod schedules;
mod sequence;
mod sequences;
mod sequential;
mod shared_models;
mod siamese;
mod subclass;
mod subclass_cnn;
mod summary_plot;
mod tables;
mod text;
mod text_models;
mod threads;
mod training_context;
mod vae;
