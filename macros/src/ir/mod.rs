//! The graph IR every model style lowers to: layer definitions (weights), and nodes that apply
//! them to values. Nodes keep the user's tokens so later stages report errors there.
//!
//! Stages: parse (per style) → [`Model`] → `shape::infer` (fills in shapes, checks them and the
//! graph) → `codegen` (assumes a checked model).
//!
//! Beside the graph: what a layer computes at inference ([`Static`], in `infer`), which the layer
//! specs describe and `ship` generates code for; and what the subclassing style's struct and
//! call macros share with its code generator (`subclass`).

mod infer;
pub mod subclass;

use std::rc::Rc;

use proc_macro2::{Ident, TokenStream};
use syn::{Attribute, Visibility};

use crate::layers::{Dim, Spec};

pub use infer::{Resampling, Static};

/// A layer: one set of weights, applied by one or more nodes.
#[derive(Clone)]
pub struct LayerDef {
    /// Field and Keras layer name (`dense_1`).
    pub name: Ident,
    pub kind: Rc<dyn Spec>,
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
#[derive(Clone)]
pub struct Node {
    pub op: Op,
    /// Nodes it reads.
    pub inputs: Vec<usize>,
    /// The application as written.
    pub tokens: TokenStream,
    /// For inputs, set by the parser; for the rest, filled in by shape inference.
    pub output_shape: Vec<usize>,
    pub input_shapes: Vec<Vec<usize>>,
    /// In a `#[kiln::model]` struct, the output shape as constant expressions rustc evaluates
    /// (the fields' widths are known only to it); `None` where `output_shape` holds numbers.
    pub dims: Option<Vec<Dim>>,
}

/// A whole model.
#[derive(Clone)]
pub struct Model {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub layers: Vec<LayerDef>,
    /// In an order where every node comes after its inputs.
    pub nodes: Vec<Node>,
    /// Input names and their nodes, in declaration order.
    pub inputs: Vec<(String, usize)>,
    /// Per input, whether it holds integer token ids (`dtype = i32`).
    pub int_inputs: Vec<bool>,
    /// A model reading strings (`Input([], dtype = string)` then `TextVectorization(..)`,
    /// `StringLookup(..)` or `Hashing(..)`): which input, the runtime `StringInput` built for it,
    /// and its Keras class; that input is the numbers it gives.
    pub text: Option<(usize, proc_macro2::TokenStream, &'static str)>,
    /// Output nodes, in declaration order.
    pub outputs: Vec<usize>,
    /// Written with `functional!` (the summary shows input layers and connections).
    pub functional: bool,
    /// A number unique to this macro invocation (from where it is), naming the module the model
    /// is generated in; `None` outside a compilation (the macros' own unit tests).
    pub invocation: Option<u64>,
    /// The model's size parameters (`<const H: usize>`), which every generated item takes; empty
    /// for most models.
    pub generics: syn::Generics,
}

impl Model {
    /// The summary's name and class for a string-reading model's first layer.
    pub fn text_class(&self) -> (String, &'static str) {
        let class = self.text.as_ref().map_or("", |t| t.2);
        (crate::layers::snake_case(class), class)
    }

    /// The layer a node applies, if any.
    pub fn layer_of(&self, node: usize) -> Option<&LayerDef> {
        match self.nodes[node].op {
            Op::Apply(l) => Some(&self.layers[l]),
            Op::Input(_) => None,
        }
    }

    /// The layer a node applies, given the node itself.
    pub fn layer_of_node(&self, node: &Node) -> Option<&LayerDef> {
        match node.op {
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

    /// Whether the node's values are integer token ids: an input declared `dtype = i32`, seen
    /// through views (Flatten, Reshape).
    pub fn holds_ids(&self, node: usize) -> bool {
        match self.nodes[self.resolve(node)].op {
            Op::Input(k) => self.int_inputs.get(k).copied().unwrap_or(false),
            Op::Apply(_) => false,
        }
    }

    /// For an input of token ids, one more than the largest id every layer reading it accepts.
    pub fn id_bound(&self, input: usize) -> usize {
        let node = self.inputs[input].1;
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].inputs.iter().any(|&j| self.resolve(j) == node))
            .filter_map(|i| self.layer_of(i).and_then(|l| l.kind.id_bound_for(&self.nodes[i].input_shapes)))
            .min()
            .unwrap_or(usize::MAX)
    }

    /// The Embedding application whose mask (Keras' `mask_zero`) reaches this node's output, if
    /// any: made by the Embedding, carried on by layers that keep masks. Where masks of two
    /// Embeddings meet, the first input's (shape inference reports the meeting as an error).
    pub fn mask_source(&self, node: usize) -> Option<usize> {
        let l = self.layer_of(node)?;
        if l.kind.makes_mask() {
            return Some(node);
        }
        if !l.kind.keeps_mask() {
            return None;
        }
        self.nodes[node].inputs.iter().find_map(|&j| self.mask_source(j))
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
