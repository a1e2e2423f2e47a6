//! The graph IR every model style lowers to: layer definitions (weights), and nodes that apply
//! them to values. Nodes keep the user's tokens so later stages report errors there.
//!
//! Stages: parse (per style) → [`Model`] → `shape::infer` (fills in shapes, checks them and the
//! graph) → `codegen` (assumes a checked model).

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

/// What a layer computes.
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
    /// Element-wise merges: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`.
    Elementwise { class: &'static str },
    /// `Concatenate(axis)`, Keras' axis convention (0 is the batch, -1 the last).
    Concatenate { axis: i64 },
    /// `Dot(axes)` of two vectors per row.
    Dot,
    /// A field of a `#[kiln::model]` struct: its type is known to rustc, not to the macro, so its
    /// widths are the constants `Model::__KILN_IN_<key>` / `__KILN_OUT_<key>`.
    Field { key: String },
}

/// Keras' element-wise merge layers.
pub const ELEMENTWISE: &[&str] = &["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"];

impl LayerKind {
    /// Keras' class name, also the base of automatic layer names.
    pub fn class(&self) -> &'static str {
        match self {
            LayerKind::Dense { .. } => "Dense",
            LayerKind::Flatten => "Flatten",
            LayerKind::Reshape { .. } => "Reshape",
            LayerKind::Activation { .. } => "Activation",
            LayerKind::Elementwise { class } => class,
            LayerKind::Concatenate { .. } => "Concatenate",
            LayerKind::Dot => "Dot",
            LayerKind::Field { .. } => "Field",
        }
    }

    /// Views change no value on row-major data: codegen renames the input buffer instead of
    /// calling anything.
    pub fn is_view(&self) -> bool {
        matches!(self, LayerKind::Flatten | LayerKind::Reshape { .. })
    }

    /// Merge layers take several inputs.
    pub fn is_merge(&self) -> bool {
        matches!(self, LayerKind::Elementwise { .. } | LayerKind::Concatenate { .. } | LayerKind::Dot)
    }

    /// Parameter count for the given input shape.
    pub fn params(&self, input: &[usize]) -> usize {
        match self {
            LayerKind::Dense { units, use_bias, .. } => {
                input.first().map_or(0, |i| i * units + if *use_bias { *units } else { 0 })
            }
            _ => 0,
        }
    }
}

/// A layer: one set of weights, applied by one or more nodes.
pub struct LayerDef {
    /// Field and Keras layer name (`dense_1`).
    pub name: Ident,
    pub kind: LayerKind,
    /// The definition as written, where errors about the layer point.
    pub tokens: TokenStream,
    /// Nodes applying this layer, in order (filled by lowering).
    pub apps: Vec<usize>,
    /// Where the layer lives when it is not a generated field (`self.blocks[2]`).
    pub place: Option<TokenStream>,
}

/// What a node does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Model input number `i`.
    Input(usize),
    /// Applies layer `l`.
    Apply(usize),
}

/// A value in the graph: a model input or a layer application.
pub struct Node {
    pub op: Op,
    /// Nodes it reads.
    pub inputs: Vec<usize>,
    /// The application as written.
    pub tokens: TokenStream,
    /// For inputs, set by the parser; for the rest, filled in by shape inference.
    pub output_shape: Vec<usize>,
    pub input_shapes: Vec<Vec<usize>>,
}

/// A whole model.
pub struct Model {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub layers: Vec<LayerDef>,
    /// In an order where every node comes after its inputs.
    pub nodes: Vec<Node>,
    /// Input names and their nodes, in declaration order.
    pub inputs: Vec<(String, usize)>,
    /// Output nodes, in declaration order.
    pub outputs: Vec<usize>,
    /// Written with `functional!` (the summary shows input layers and connections).
    pub functional: bool,
}

impl Model {
    /// The layer a node applies, if any.
    pub fn layer_of(&self, node: usize) -> Option<&LayerDef> {
        match self.nodes[node].op {
            Op::Apply(l) => Some(&self.layers[l]),
            Op::Input(_) => None,
        }
    }

    /// Follows views back to the node whose buffer holds this node's values.
    pub fn resolve(&self, mut node: usize) -> usize {
        while self.layer_of(node).is_some_and(|l| l.kind.is_view()) {
            node = self.nodes[node].inputs[0];
        }
        node
    }

    /// Which application of its layer this node is (0 for the first).
    pub fn app_index(&self, node: usize) -> usize {
        self.layer_of(node).and_then(|l| l.apps.iter().position(|&a| a == node)).unwrap_or(0)
    }

    /// The name an output is known by (its layer's name, as in Keras).
    pub fn output_name(&self, node: usize) -> String {
        match self.layer_of(node) {
            Some(l) => l.name.to_string(),
            None => self.inputs.iter().find(|(_, n)| *n == node).map_or_else(String::new, |(s, _)| s.clone()),
        }
    }
}
