//! The graph IR every model style lowers to: layers as nodes with their inputs, each keeping the
//! span of the user's tokens so that later stages report errors there.
//!
//! Stages: parse (per style) → [`Model`] → `shape::infer` (fills in shapes, checks them) →
//! `codegen` (assumes a checked model).

use proc_macro2::{Ident, TokenStream};
use syn::{Attribute, Visibility};

/// The activations kiln knows, by Keras name, with the runtime type each selects.
pub const ACTIVATIONS: &[(&str, &str)] = &[
    ("linear", "Linear"),
    ("relu", "Relu"),
    ("sigmoid", "Sigmoid"),
    ("tanh", "Tanh"),
    ("softmax", "Softmax"),
    ("gelu", "Gelu"),
    ("elu", "Elu"),
    ("selu", "Selu"),
    ("leaky_relu", "LeakyRelu"),
    ("softplus", "Softplus"),
    ("swish", "Swish"),
    ("silu", "Swish"),
];

/// An activation as the user named it.
#[derive(Clone)]
pub struct Act {
    /// Runtime type name (`Relu`).
    pub ty: &'static str,
}

impl Act {
    pub const LINEAR: Act = Act { ty: "Linear" };

    pub fn is_softmax(&self) -> bool {
        self.ty == "Softmax"
    }
}

/// What a node computes.
#[derive(Clone)]
pub enum LayerKind {
    /// `Dense(units, activation, use_bias)`.
    Dense { units: usize, act: Act, use_bias: bool },
    /// `Flatten`: a view, no computation.
    Flatten,
    /// `Reshape([..])`, `-1` resolved by shape inference: a view.
    Reshape { target: Vec<i64> },
    /// `Activation(name)`.
    Activation { act: Act },
}

impl LayerKind {
    /// Keras' class name, also the base of automatic layer names.
    pub fn class(&self) -> &'static str {
        match self {
            LayerKind::Dense { .. } => "Dense",
            LayerKind::Flatten => "Flatten",
            LayerKind::Reshape { .. } => "Reshape",
            LayerKind::Activation { .. } => "Activation",
        }
    }

    /// Views change no value on row-major data: codegen renames the input buffer instead of
    /// calling anything.
    pub fn is_view(&self) -> bool {
        matches!(self, LayerKind::Flatten | LayerKind::Reshape { .. })
    }
}

/// One layer application.
pub struct Node {
    /// Field and layer name (`dense_1`).
    pub name: Ident,
    pub kind: LayerKind,
    /// The user's tokens for this layer, where its errors point.
    pub tokens: TokenStream,
    /// Indices of the nodes it reads; empty means the model input.
    pub inputs: Vec<usize>,
    /// Filled in by shape inference.
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
}

/// A whole model.
pub struct Model {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub input_shape: Vec<usize>,
    /// In an order where every node comes after its inputs.
    pub nodes: Vec<Node>,
}

impl Model {
    /// The node whose output is the model's output.
    pub fn output(&self) -> Option<&Node> {
        self.nodes.last()
    }
}
