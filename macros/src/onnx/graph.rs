//! The importer's graph: the kiln IR being built, the ONNX values it has computed (each a node
//! of the IR with its layout, or a folded constant), the weights taken from the initializers,
//! and the layout changes between ONNX's channels-first axes and kiln's channels-last layers.

use std::collections::HashMap;
use std::rc::Rc;

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

use super::read::Const;
use crate::errors::Errors;
use crate::ir::{LayerDef, Node, Op};
use crate::layers::{Spec, permute_spec, show};
use crate::parse::{LayerCall, Namer, understand};

/// A value of the graph computed by an IR node. `shape` is its ONNX shape without the batch
/// axis; `order` how the node stores it: stored axis `k` is ONNX sample axis `order[k]`
/// (`[0, 1]` as in the file, `[1, 0]` channels-last for a `[channels, steps]` value).
#[derive(Clone, Debug)]
pub struct Val {
    pub node: usize,
    pub shape: Vec<usize>,
    pub order: Vec<usize>,
    /// Where the batch axis is among the ONNX axes: 0, but for the sequences of a recurrent
    /// operator (`[steps, batch, features]`). kiln stores every value batch first, so moving the
    /// batch axis moves no value either.
    pub batch: usize,
    /// An axis of the sample folded into the ONNX batch axis (PyTorch's attention reshapes
    /// `[steps, batch, heads x size]` to `[steps, batch x heads, size]`): not among `shape`, it is
    /// numbered `shape.len()` in `order`. kiln stores it as a sample axis, so folding and
    /// unfolding it move nothing.
    pub hidden: Option<Hidden>,
}

/// An axis folded into the batch axis: its size, and whether it is the major factor (`steps x
/// batch`) or the minor one (`batch x heads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hidden {
    pub size: usize,
    pub major: bool,
}

impl Val {
    /// The shape the IR node holds.
    pub fn stored(&self) -> Vec<usize> {
        let at = |a: usize| self.shape.get(a).copied().or(self.hidden.map(|h| h.size)).unwrap_or(1);
        self.order.iter().map(|&a| at(a)).collect()
    }
}

/// An ONNX value: computed by the model, or known when it compiles (initializers, constants
/// and shape computations, folded).
#[derive(Clone, Debug)]
pub enum Value {
    Graph(Val),
    Const(Rc<Const>),
}

/// The identity order of `rank` axes (the file's own layout).
pub fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

/// The channels-last order of a `[channels, spatial..]` sample: `[1, .., rank - 1, 0]`.
pub fn channels_last(rank: usize) -> Vec<usize> {
    (1..rank).chain([0]).collect()
}

/// The IR under construction and what the lowering knows about each ONNX value.
pub struct Graph {
    pub layers: Vec<LayerDef>,
    pub nodes: Vec<Node>,
    namer: Namer,
    pub values: HashMap<String, Value>,
    /// Weights by kiln name (`dense.kernel`), in kiln's layout.
    pub params: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Where every error and every node points: the attribute's path.
    pub span: Span,
    /// Relayouts already made (node, order) → value, so a value is permuted once per layout.
    relayouts: HashMap<(usize, Vec<usize>), Val>,
    /// What is being lowered, for messages: `` node `/conv1/Conv` (Conv) ``.
    pub at: String,
}

impl Graph {
    pub fn new(span: Span) -> Graph {
        Graph {
            layers: vec![],
            nodes: vec![],
            namer: Namer::default(),
            values: HashMap::new(),
            params: vec![],
            span,
            relayouts: HashMap::new(),
            at: String::new(),
        }
    }

    fn tokens(&self) -> TokenStream {
        let span = self.span;
        quote_spanned!(span=> onnx)
    }

    /// A model input of `shape` (without the batch).
    pub fn input(&mut self, index: usize, shape: Vec<usize>) -> Val {
        self.nodes.push(Node {
            op: Op::Input(index),
            inputs: vec![],
            tokens: self.tokens(),
            output_shape: shape.clone(),
            input_shapes: vec![],
            dims: None,
        });
        Val { node: self.nodes.len() - 1, order: identity(shape.len()), shape, batch: 0, hidden: None }
    }

    /// A layer spec from a call as `functional!` writes it (`Dense(64, use_bias = false)`).
    pub fn spec(&self, call: &str) -> Result<Rc<dyn Spec>, String> {
        let call: LayerCall = syn::parse_str(call).map_err(|e| format!("kiln could not write `{call}`: {e}"))?;
        let mut errors = Errors::default();
        let understood = understand(&call, true, &mut errors);
        match (understood, errors.finish()) {
            (Some(u), Ok(())) => Ok(u.kind),
            (_, Err(e)) => Err(e.to_string()),
            (None, Ok(())) => Err(format!("kiln could not build `{}`", call.ident)),
        }
    }

    /// Applies `kind` to the stored values of `inputs`: the node, with its output shape from the
    /// spec's own rule (its sentence, naming the ONNX node, when the shapes do not fit).
    pub fn apply(&mut self, kind: Rc<dyn Spec>, inputs: &[usize]) -> Result<(usize, Vec<usize>), String> {
        let ins: Vec<Vec<usize>> = inputs.iter().map(|&i| self.nodes[i].output_shape.clone()).collect();
        let out = kind.output_shape(&ins).map_err(|msg| format!("{}: {msg}", self.at))?;
        let mut errors = Errors::default();
        let name = self.namer.name(&kind.auto_name(), None, self.span, &mut errors);
        let name = name.ok_or_else(|| format!("{}: kiln could not name its layer", self.at))?;
        self.layers.push(LayerDef { name, kind, tokens: self.tokens(), apps: vec![], place: None });
        let layer = self.layers.len() - 1;
        self.nodes.push(Node {
            op: Op::Apply(layer),
            inputs: inputs.to_vec(),
            tokens: self.tokens(),
            output_shape: out.clone(),
            input_shapes: ins,
            dims: None,
        });
        let node = self.nodes.len() - 1;
        self.layers[layer].apps.push(node);
        Ok((node, out))
    }

    /// The name of the layer node `node` applies (`dense_1`), for its weights.
    pub fn layer_name(&self, node: usize) -> String {
        match self.nodes[node].op {
            Op::Apply(l) => self.layers[l].name.to_string(),
            Op::Input(_) => String::new(),
        }
    }

    /// Records weight `param` of the layer applied by `node`, in kiln's layout.
    pub fn weight(&mut self, node: usize, param: &str, shape: Vec<usize>, vals: Vec<f32>) {
        let name = format!("{}.{param}", self.layer_name(node));
        self.params.push((name, shape, vals));
    }

    /// `v` stored in `order`: itself, a reshape where only axes of size one move (the values keep
    /// their order in memory), or a Permute.
    pub fn relayout(&mut self, v: &Val, order: &[usize]) -> Result<Val, String> {
        if v.order == order {
            return Ok(v.clone());
        }
        let key = (v.node, order.to_vec());
        if let Some(done) = self.relayouts.get(&key) {
            return Ok(done.clone());
        }
        let target = Val { node: 0, shape: v.shape.clone(), order: order.to_vec(), batch: v.batch, hidden: v.hidden };
        let moved: Vec<usize> = v.order.iter().copied().filter(|&a| v.shape[a] != 1).collect();
        let kept: Vec<usize> = order.iter().copied().filter(|&a| v.shape[a] != 1).collect();
        let node = if moved == kept {
            self.reshape(v.node, &target.stored())?
        } else {
            if order.len() > 3 {
                return Err(format!(
                    "{}: a value of shape {} would need its axes reordered, which kiln does for samples of up to 3 \
                     axes",
                    self.at,
                    show(&v.shape)
                ));
            }
            let perm: Vec<usize> = order.iter().map(|a| v.order.iter().position(|b| b == a).unwrap_or(0)).collect();
            self.apply(permute_spec(perm), &[v.node])?.0
        };
        let out = Val { node, ..target };
        self.relayouts.insert(key, out.clone());
        Ok(out)
    }

    /// `v` in the file's own layout.
    pub fn onnx_layout(&mut self, v: &Val) -> Result<Val, String> {
        self.relayout(v, &identity(v.shape.len()))
    }

    /// `v` channels-last (`[channels, spatial..]` stored as `[spatial.., channels]`).
    pub fn channels_last(&mut self, v: &Val) -> Result<Val, String> {
        self.relayout(v, &channels_last(v.shape.len()))
    }

    /// Node `node`'s values under `shape` (a view: nothing is computed).
    pub fn reshape(&mut self, node: usize, shape: &[usize]) -> Result<usize, String> {
        if self.nodes[node].output_shape == shape {
            return Ok(node);
        }
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let spec = self.spec(&format!("Reshape([{}])", dims.join(", ")))?;
        Ok(self.apply(spec, &[node])?.0)
    }

    /// Keeps only the nodes some output depends on (a relayout or a branch the file computes but
    /// does not return would otherwise be "a value that reaches no output"), renumbered.
    pub fn prune(&mut self, outputs: &mut [usize]) {
        let mut keep = vec![false; self.nodes.len()];
        let mut todo: Vec<usize> = outputs.to_vec();
        while let Some(n) = todo.pop() {
            if !std::mem::replace(&mut keep[n], true) {
                todo.extend(self.nodes[n].inputs.iter().copied());
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            keep[i] |= matches!(n.op, Op::Input(_));
        }
        let mut new_index = vec![usize::MAX; self.nodes.len()];
        let mut nodes = Vec::new();
        for (i, node) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            if keep[i] {
                new_index[i] = nodes.len();
                nodes.push(node);
            }
        }
        for node in &mut nodes {
            node.inputs.iter_mut().for_each(|j| *j = new_index[*j]);
        }
        let mut layers = Vec::new();
        let mut dropped = Vec::new();
        for layer in std::mem::take(&mut self.layers) {
            let apps: Vec<usize> = layer.apps.iter().map(|&a| new_index[a]).filter(|&a| a != usize::MAX).collect();
            if apps.is_empty() {
                dropped.push(layer.name.to_string());
                continue;
            }
            for &a in &apps {
                nodes[a].op = Op::Apply(layers.len());
            }
            layers.push(LayerDef { apps, ..layer });
        }
        self.params.retain(|(name, _, _)| !dropped.iter().any(|d| name.split('.').next() == Some(d.as_str())));
        outputs.iter_mut().for_each(|o| *o = new_index[*o]);
        self.nodes = nodes;
        self.layers = layers;
    }
}
