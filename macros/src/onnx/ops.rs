//! The operators: each ONNX node lowered to kiln layers through their specs, or folded when its
//! inputs are known when the model compiles. Products and arithmetic are in `arith`;
//! convolutions, pooling and normalisation in `window`; constant folding in `fold`.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::graph::{Graph, Val, Value, identity};
use super::proto::NodeProto;
use super::read::{self, Const, describe};
use crate::layers::{concatenate, flatten, softmax_axis, unary};

/// The operators kiln imports, for the message about one it does not.
pub const SUPPORTED: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Clip",
    "Max",
    "Min",
    "Pow",
    "Reciprocal",
    "Erf (in GELU's pattern)",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Gelu",
    "Softplus",
    "Exp",
    "Log",
    "Sqrt",
    "Abs",
    "Neg",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Squeeze",
    "Unsqueeze",
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
    "LayerNormalization",
    "Pad",
    "Resize",
    "Upsample",
    "Identity",
    "Dropout",
    "Constant",
    "Shape",
    "Gather",
    "Cast",
    "ConstantOfShape",
    "Expand",
    "Split (of constants)",
    "Slice",
    "LSTM",
    "GRU",
    "RNN",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
];

/// Lowers an ONNX graph's nodes, in the file's (topological) order.
pub struct Lowering<'a> {
    pub g: Graph,
    pub opset: i64,
    pub nodes: &'a [NodeProto],
    /// For each value name, the nodes reading it (MatMul then Add fuse into one Dense).
    pub consumers: HashMap<String, Vec<usize>>,
    /// Nodes already lowered as part of an earlier one.
    pub skip: HashSet<usize>,
    /// The batch size the file fixes, if it fixes one (else it is symbolic).
    pub batch: Option<usize>,
    /// Layers made without a bias (a Conv whose bias the exporter wrote as a later Add), by
    /// node, with the call that built them: the Add becomes their bias.
    pub biasable: HashMap<usize, String>,
    /// Recurrent layers returning their sequence, by node, with the call that built them: a
    /// Gather of the last step alone reading it makes them return the last step instead.
    pub sequences: HashMap<usize, String>,
    /// For each value name, the node computing it.
    pub producers: HashMap<String, usize>,
}

impl<'a> Lowering<'a> {
    pub fn new(g: Graph, opset: i64, nodes: &'a [NodeProto], batch: Option<usize>) -> Lowering<'a> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        let mut producers = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            producers.extend(n.output.iter().map(|o| (o.clone(), i)));
            for input in &n.input {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        Lowering {
            g,
            opset,
            nodes,
            consumers,
            skip: HashSet::new(),
            batch,
            biasable: HashMap::new(),
            sequences: HashMap::new(),
            producers,
        }
    }

    /// The error for an operator kiln does not import.
    pub fn unsupported(&self, node: &NodeProto) -> String {
        let domain = if node.domain.is_empty() { String::new() } else { format!(" of domain `{}`", node.domain) };
        let at = if node.name.is_empty() {
            format!("the node computing `{}`", node.output.first().map_or("?", String::as_str))
        } else {
            format!("node `{}`", node.name)
        };
        format!(
            "{at} uses operator {}{domain}, which kiln does not import; kiln imports {}",
            node.op_type,
            SUPPORTED.join(", ")
        )
    }

    /// An error about the node being lowered.
    pub fn fail<T>(&self, msg: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("{}: {msg}", self.g.at))
    }

    /// Input `k` of `node`, if the node has it.
    pub fn input(&self, node: &NodeProto, k: usize) -> Result<Option<Value>, String> {
        match node.input.get(k).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) => match self.g.values.get(name) {
                Some(v) => Ok(Some(v.clone())),
                None => self.fail(format!("reads `{name}`, which no input, initializer or earlier node gives")),
            },
        }
    }

    /// Input `k`, which must be given.
    pub fn need(&self, node: &NodeProto, k: usize) -> Result<Value, String> {
        self.input(node, k)?.map_or_else(|| self.fail(format!("needs its input {}", k + 1)), Ok)
    }

    /// Input `k`, which must be computed by the model, its batch axis first.
    pub fn graph(&self, node: &NodeProto, k: usize) -> Result<Val, String> {
        let v = self.graph_any(node, k)?;
        if v.batch != 0 {
            return self.fail(format!(
                "reads `{}`, whose batch axis is ONNX axis {}; kiln imports this operator on values with the batch \
                 axis first",
                node.input[k], v.batch
            ));
        }
        Ok(v)
    }

    /// Input `k`, computed by the model, its batch axis anywhere.
    pub fn graph_any(&self, node: &NodeProto, k: usize) -> Result<Val, String> {
        let v = self.graph_folded(node, k)?;
        if v.hidden.is_some() {
            return self.fail(format!(
                "reads `{}`, whose batch axis has another axis folded into it; kiln imports Transpose, Reshape, \
                 Shape and MatMul by a constant there",
                node.input[k]
            ));
        }
        Ok(v)
    }

    /// Input `k`, computed by the model, its batch axis anywhere and maybe holding another axis.
    pub fn graph_folded(&self, node: &NodeProto, k: usize) -> Result<Val, String> {
        match self.need(node, k)? {
            Value::Graph(v) => Ok(v),
            Value::Const(_) => self.fail(format!("input {} is a constant where kiln needs a computed value", k + 1)),
        }
    }

    /// Input `k`, which must be known when the model compiles.
    pub fn constant(&self, node: &NodeProto, k: usize) -> Result<Rc<Const>, String> {
        match self.need(node, k)? {
            Value::Const(c) => Ok(c),
            Value::Graph(_) => self.fail(format!(
                "input {} (`{}`) is computed by the model, but kiln needs it known when the model compiles (an \
                 initializer or a constant)",
                k + 1,
                node.input[k]
            )),
        }
    }

    /// Lowers node `i`, binding its (first) output.
    pub fn node(&mut self, i: usize) -> Result<(), String> {
        if self.skip.contains(&i) {
            return Ok(());
        }
        let node = &self.nodes[i];
        self.g.at = describe(node);
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(self.unsupported(node));
        }
        if node.output.first().is_none_or(String::is_empty) {
            return self.fail("has no output");
        }
        let ins: Vec<Value> =
            (0..node.input.len()).filter_map(|k| self.input(node, k).transpose()).collect::<Result<_, _>>()?;
        if node.op_type == "Split" && ins.iter().all(|v| matches!(v, Value::Const(_))) {
            for (name, part) in node.output.iter().zip(super::fold::split(self, node)?) {
                self.g.values.insert(name.clone(), Value::Const(Rc::new(part)));
            }
            return Ok(());
        }
        if !ins.is_empty() && ins.iter().all(|v| matches!(v, Value::Const(_))) || node.op_type == "Constant" {
            let c = super::fold::fold(self, node)?;
            return self.bind(node, Value::Const(Rc::new(c)));
        }
        let out = match node.op_type.as_str() {
            "Identity" | "Dropout" => self.need(node, 0)?,
            "Shape" => Value::Const(Rc::new(super::fold::shape_of(self, node)?)),
            "Relu" => self.activation(node, "Activation(relu)")?,
            "Sigmoid" => self.activation(node, "Activation(sigmoid)")?,
            "Tanh" => self.activation(node, "Activation(tanh)")?,
            "Softplus" => self.activation(node, "Activation(softplus)")?,
            "Elu" => {
                let alpha = read::float(node, "alpha", 1.0) as f64;
                self.activation(node, &format!("ELU(alpha = {alpha:?})"))?
            }
            "LeakyRelu" => {
                let alpha = read::float(node, "alpha", 0.01) as f64;
                self.activation(node, &format!("LeakyReLU(negative_slope = {alpha:?})"))?
            }
            "Gelu" => match read::string(node, "approximate", "none").as_str() {
                "tanh" => self.activation(node, "Activation(gelu_approximate)")?,
                _ => self.activation(node, "Activation(gelu)")?,
            },
            "Exp" | "Log" | "Sqrt" | "Abs" | "Neg" => {
                let name = match node.op_type.as_str() {
                    "Neg" => "negative",
                    other => &other.to_lowercase(),
                };
                let spec = unary(name).map_or_else(|| self.fail("has no kiln op"), Ok)?;
                let x = self.graph(node, 0)?;
                let (n, _) = self.g.apply(spec, &[x.node])?;
                Value::Graph(Val { node: n, ..x })
            }
            "Softmax" | "LogSoftmax" => self.softmax(node)?,
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(node)?,
            "Clip" | "Pow" | "Reciprocal" | "Max" | "Min" => self.scalar_op(node)?,
            "Erf" => return self.erf_gelu(i),
            "Gemm" => self.gemm(node)?,
            "MatMul" => self.matmul(i)?,
            "Flatten" => self.flatten(node)?,
            "Reshape" => self.reshape(node)?,
            "Squeeze" | "Unsqueeze" => super::fold::squeeze(self, node)?,
            "Transpose" => self.transpose(node)?,
            "Concat" => self.concat(node)?,
            "Conv" => self.conv(node)?,
            "ConvTranspose" => self.conv_transpose(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" | "GlobalMaxPool" => self.global_pool(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "LayerNormalization" => self.layer_norm(node)?,
            "PRelu" => self.prelu(node)?,
            "Expand" => self.repeat(node)?,
            "Pad" => self.pad(node)?,
            "Resize" | "Upsample" => self.resize(node)?,
            "Slice" => self.slice(node)?,
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => self.reduce(node)?,
            "Gather" => self.gather(node)?,
            "LSTM" | "GRU" | "RNN" => return self.recurrent(i),
            _ => return Err(self.unsupported(node)),
        };
        self.bind(node, out)
    }

    fn bind(&mut self, node: &NodeProto, v: Value) -> Result<(), String> {
        match node.output.first() {
            Some(name) => {
                self.g.values.insert(name.clone(), v);
                Ok(())
            }
            None => self.fail("has no output"),
        }
    }

    /// An element-wise layer: the value keeps its layout.
    fn activation(&mut self, node: &NodeProto, call: &str) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spec = self.g.spec(call)?;
        let (n, _) = self.g.apply(spec, &[x.node])?;
        Ok(Value::Graph(Val { node: n, ..x }))
    }

    /// A 0-based sample axis from an ONNX axis of a tensor with a batch axis (`rank` sample
    /// axes); the batch axis itself is an error.
    pub fn sample_axis(&self, axis: i64, rank: usize) -> Result<usize, String> {
        let full = rank as i64 + 1;
        let a = if axis < 0 { axis + full } else { axis };
        if a < 1 || a >= full {
            return self.fail(format!(
                "works along axis {axis} of a tensor of rank {full}; kiln's layers work within a sample, not along \
                 the batch axis 0"
            ));
        }
        Ok(a as usize - 1)
    }

    fn softmax(&mut self, node: &NodeProto) -> Result<Value, String> {
        let log = node.op_type == "LogSoftmax";
        let x = self.graph(node, 0)?;
        let rank = x.shape.len();
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = self.sample_axis(read::int(node, "axis", default), rank)?;
        if self.opset < 13 && axis + 1 != rank {
            // Before opset 13 the axes from `axis` on are one: flatten them, softmax, reshape back.
            let x = self.g.onnx_layout(&x)?;
            let lead: usize = x.shape[..axis].iter().product();
            let rest: usize = x.shape[axis..].iter().product();
            let flat = self.g.reshape(x.node, &[lead, rest][usize::from(axis == 0)..])?;
            let (n, _) = self.g.apply(softmax_axis(log, -1), &[flat])?;
            let n = self.g.reshape(n, &x.shape)?;
            return Ok(Value::Graph(Val { node: n, ..x }));
        }
        let stored = x.order.iter().position(|&a| a == axis).unwrap_or(axis);
        let spec =
            if stored + 1 == rank && !log { self.g.spec("Softmax")? } else { softmax_axis(log, stored as i64 + 1) };
        let (n, _) = self.g.apply(spec, &[x.node])?;
        Ok(Value::Graph(Val { node: n, ..x }))
    }

    /// `LayerNormalization` over the last axis: kiln's LayerNormalization, gamma the scale and
    /// beta the bias.
    /// `Expand` of a computed `[1, features]` sample to `[n, features]` (the form RepeatVector
    /// exports to, an Unsqueeze before it): kiln's RepeatVector on the vector.
    fn repeat(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let to: Vec<usize> = self.constant(node, 1)?.vals.iter().map(|&d| d.max(1.0) as usize).collect();
        let steps = match (&x.shape[..], &to[..]) {
            (&[1, f], &[_, n, g]) if g == 1 || g == f => n,
            (&[1, f], &[n, g]) if g == 1 || g == f => n,
            _ => {
                return self.fail(format!(
                    "expands a sample of shape {:?} to {to:?}; kiln expands [1, features] to [n, features] \
                     (RepeatVector)",
                    x.shape
                ));
            }
        };
        let f = x.shape[1];
        let vector = self.g.reshape(x.node, &[f])?;
        let spec = self.g.spec(&format!("RepeatVector({steps})"))?;
        let (n, _) = self.g.apply(spec, &[vector])?;
        let shape = vec![steps, f];
        Ok(Value::Graph(Val { node: n, order: super::graph::identity(2), shape, batch: 0, hidden: None }))
    }

    /// `PRelu(X, slope)` with a constant slope that broadcasts against each sample: kiln's
    /// PReLU, sharing its slopes along the axes where the slope has one value, its weights laid
    /// out as the value is stored.
    fn prelu(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let slope = self.constant(node, 1)?;
        let r = x.shape.len();
        if x.hidden.is_some() || slope.dims.len() > r {
            return self.fail(format!("has slopes of dimensions {:?} for samples of shape {:?}", slope.dims, x.shape));
        }
        // The slope's dimensions against the sample's axes, aligned from the last.
        let d: Vec<usize> = std::iter::repeat_n(1, r - slope.dims.len()).chain(slope.dims.iter().copied()).collect();
        if (0..r).any(|a| d[a] != 1 && d[a] != x.shape[a]) {
            return self.fail(format!("has slopes of dimensions {:?} for samples of shape {:?}", slope.dims, x.shape));
        }
        let stored = x.stored();
        let alpha_shape: Vec<usize> = x.order.iter().map(|&a| d[a]).collect();
        let shared: Vec<String> =
            (0..r).filter(|&j| alpha_shape[j] == 1 && stored[j] != 1).map(|j| (j + 1).to_string()).collect();
        // Each stored position's slope: its logical index into the row-major `d`.
        let mut strides = vec![1; r];
        for a in (0..r.saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * d[a + 1];
        }
        let n: usize = alpha_shape.iter().product();
        let alpha: Vec<f32> = (0..n)
            .map(|mut q| {
                let mut at = 0;
                for j in (0..r).rev() {
                    let i = q % alpha_shape[j];
                    q /= alpha_shape[j];
                    at += i * strides[x.order[j]];
                }
                slope.vals[at] as f32
            })
            .collect();
        let call = if shared.is_empty() {
            "PReLU()".to_string()
        } else {
            format!("PReLU(shared_axes = [{}])", shared.join(", "))
        };
        let spec = self.g.spec(&call)?;
        let (node_id, _) = self.g.apply(spec, &[x.node])?;
        self.g.weight(node_id, "alpha", alpha_shape, alpha);
        Ok(Value::Graph(Val { node: node_id, ..x }))
    }

    fn layer_norm(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let rank = x.shape.len();
        if self.sample_axis(read::int(node, "axis", -1), rank)? + 1 != rank {
            return self.fail("normalises from an axis before the last; kiln's LayerNormalization normalises the last");
        }
        let x = self
            .g
            .relayout(&x, &x.order.iter().copied().filter(|&a| a + 1 != rank).chain([rank - 1]).collect::<Vec<_>>())?;
        let f = x.shape[rank - 1];
        let scale = self.constant(node, 1)?;
        let bias = match self.input(node, 2)? {
            None => None,
            Some(Value::Const(b)) => Some(b),
            Some(Value::Graph(_)) => return self.fail("has a computed bias"),
        };
        if scale.vals.len() != f || bias.as_ref().is_some_and(|b| b.vals.len() != f) {
            return self.fail(format!("has a scale or bias that is not one value per feature ({f})"));
        }
        let eps = read::float(node, "epsilon", 1e-5) as f64;
        let spec = self.g.spec(&format!("LayerNormalization(epsilon = {eps:?}, center = {})", bias.is_some()))?;
        let (n, _) = self.g.apply(spec, &[x.node])?;
        self.g.weight(n, "gamma", vec![f], scale.f32s());
        if let Some(b) = bias {
            self.g.weight(n, "beta", vec![f], b.f32s());
        }
        Ok(Value::Graph(Val { node: n, ..x }))
    }

    /// `ReduceMean`, `ReduceSum`, `ReduceMax`, `ReduceMin` over sample axes: kiln's reductions
    /// (one per axis), or GlobalAveragePooling1D / GlobalMaxPooling1D over the steps of a
    /// `[steps, features]` value, which `infer` has kernels for.
    fn reduce(&mut self, node: &NodeProto) -> Result<Value, String> {
        let mut x = self.graph(node, 0)?;
        let axes: Vec<i64> = match self.input(node, 1)? {
            Some(Value::Const(c)) => c.vals.iter().map(|&v| v as i64).collect(),
            Some(Value::Graph(_)) => return self.fail("takes its axes from a computed value"),
            None => read::ints(node, "axes").unwrap_or_default(),
        };
        if axes.is_empty() {
            return self.fail("reduces every axis, the batch's too; kiln reduces within a sample");
        }
        let keep = read::int(node, "keepdims", 1) != 0;
        if !keep && axes.len() >= x.shape.len() {
            return self.fail("leaves one number per sample; kiln keeps at least one axis besides the batch");
        }
        let name = match node.op_type.as_str() {
            "ReduceMean" => "mean",
            "ReduceSum" => "sum",
            "ReduceMax" => "max",
            _ => "min",
        };
        let mut axes = axes.iter().map(|&a| self.sample_axis(a, x.shape.len())).collect::<Result<Vec<_>, _>>()?;
        let stored_first = x.order.first() == axes.first();
        if let ([a], 2, false, true, "mean" | "max") = (&axes[..], x.shape.len(), keep, stored_first, name) {
            let (n, _) = self.g.apply(crate::layers::global_pool(name == "max", 2), &[x.node])?;
            let other = 1 - a;
            return Ok(Value::Graph(Val {
                node: n,
                shape: vec![x.shape[other]],
                order: vec![0],
                batch: 0,
                hidden: None,
            }));
        }
        // The last stored axis first, so the others keep their places.
        axes.sort_by_key(|a| std::cmp::Reverse(x.order.iter().position(|b| b == a)));
        axes.dedup();
        for a in axes {
            let stored = x.order.iter().position(|&b| b == a).unwrap_or(a);
            let spec =
                crate::layers::reduce(name, stored as i64 + 1, keep).map_or_else(|| self.fail("has no kiln op"), Ok)?;
            let (n, _) = self.g.apply(spec, &[x.node])?;
            x.node = n;
            if keep {
                x.shape[a] = 1;
            } else {
                x.shape.remove(a);
                x.order = x.order.iter().filter(|&&b| b != a).map(|&b| b - usize::from(b > a)).collect();
            }
        }
        Ok(Value::Graph(x))
    }

    /// `Slice` of a computed value along sample axes, step 1: kiln's Slice, one per axis.
    fn slice(&mut self, node: &NodeProto) -> Result<Value, String> {
        let mut x = self.graph(node, 0)?;
        let ints = |k: usize| -> Result<Option<Vec<i64>>, String> {
            match self.input(node, k)? {
                Some(Value::Const(c)) => Ok(Some(c.vals.iter().map(|&v| v.clamp(-9e18, 9e18) as i64).collect())),
                Some(Value::Graph(_)) => self.fail("slices with computed bounds"),
                None => Ok(None),
            }
        };
        let (Some(starts), Some(ends)) = (ints(1)?, ints(2)?) else {
            return self.fail("needs its starts and ends as inputs (opset 10 and later)");
        };
        let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        for (((&a, &s), &e), &st) in axes.iter().zip(&starts).zip(&ends).zip(&steps) {
            let axis = self.sample_axis(a, x.shape.len())?;
            let d = x.shape[axis] as i64;
            let at = |v: i64| (if v < 0 { v + d } else { v }).clamp(0, d) as usize;
            let (start, end) = (at(s), at(e));
            if st != 1 || start >= end {
                return self.fail(format!(
                    "slices axis {a} from {s} to {e} by {st}; kiln slices by step 1, keeping at least one"
                ));
            }
            if (start, end) == (0, d as usize) {
                continue;
            }
            let stored = x.order.iter().position(|&b| b == axis).unwrap_or(axis);
            let (n, _) = self.g.apply(crate::layers::slice(stored as i64 + 1, start, end), &[x.node])?;
            x.shape[axis] = end - start;
            x.node = n;
        }
        Ok(Value::Graph(x))
    }

    fn flatten(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let axis = read::int(node, "axis", 1);
        let rank = x.shape.len() as i64 + 1;
        if axis != 1 && axis != 1 - rank {
            return self
                .fail(format!("flattens from axis {axis}; kiln keeps the batch axis apart, so Flatten's axis is 1"));
        }
        let x = self.g.onnx_layout(&x)?;
        if x.shape.len() == 1 {
            return Ok(Value::Graph(x));
        }
        let (n, out) = self.g.apply(flatten(), &[x.node])?;
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out, batch: 0, hidden: None }))
    }

    /// `Reshape(x, shape)`, the shape known: the batch axis keeps its place (its dimension the
    /// batch size, `0` or `-1`) and the axes before it theirs; the others are a view of the
    /// sample.
    fn reshape(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph_folded(node, 0)?;
        let target = self.constant(node, 1)?;
        let t = &target.vals;
        if let Some(v) = self.fold_reshape(node, &x, t)? {
            return Ok(v);
        }
        if x.hidden.is_some() {
            return self.fail(format!(
                "reshapes a value whose batch axis has another axis folded into it to {}, which kiln does not follow",
                show_target(t)
            ));
        }
        let b = x.batch;
        let batch_ok = |d: f64| {
            d.is_nan()
                || d == 0.0
                || (d == -1.0 && t.iter().filter(|&&v| v == -1.0).count() == 1)
                || self.batch.is_some_and(|n| d == n as f64)
        };
        let lead_kept = (0..b).all(|i| t.get(i).is_some_and(|&d| d == 0.0 || d == x.shape[i] as f64));
        if t.len() <= b || !batch_ok(t[b]) || !lead_kept {
            return self.fail(format!(
                "reshapes to {}, which changes the batch axis (ONNX axis {b}); kiln keeps it: its dimension there \
                 is the batch size, 0 or -1",
                show_target(t)
            ));
        }
        let copy = read::int(node, "allowzero", 0) == 0;
        let mut sample = Vec::new();
        for (i, &d) in t.iter().enumerate().filter(|&(i, _)| i != b) {
            let s = i - usize::from(i > b);
            sample.push(match d {
                0.0 if copy => match x.shape.get(s) {
                    Some(&v) => v as i64,
                    None => return self.fail(format!("copies axis {i} of a value of rank {}", x.shape.len() + 1)),
                },
                d if d.is_nan() || d < -1.0 || d == 0.0 => {
                    return self.fail(format!("reshapes to {}, a shape kiln cannot keep static", show_target(t)));
                }
                d => d as i64,
            });
        }
        let x = self.g.onnx_layout(&x)?;
        let dims: Vec<String> = sample.iter().map(|d| d.to_string()).collect();
        let spec = self.g.spec(&format!("Reshape([{}])", dims.join(", ")))?;
        let ins = [x.shape.clone()];
        let out = spec.output_shape(&ins).map_err(|msg| format!("{}: {msg}", self.g.at))?;
        let n = self.g.reshape(x.node, &out)?;
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out, batch: b, hidden: None }))
    }

    /// `Transpose`: no values move; the value's layout records the new order of its axes (and
    /// where its batch axis went).
    fn transpose(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph_folded(node, 0)?;
        let rank = x.shape.len();
        let perm = read::ints(node, "perm").unwrap_or_else(|| (0..=rank as i64).rev().collect());
        let mut sorted = perm.clone();
        sorted.sort();
        if sorted != (0..=rank as i64).collect::<Vec<_>>() {
            return self.fail(format!("has perm {perm:?}, which is not a permutation of {} axes", rank + 1));
        }
        let perm: Vec<usize> = perm.iter().map(|&a| a as usize).collect();
        let batch = perm.iter().position(|&a| a == x.batch).unwrap_or(0);
        // Full axes to sample axes, without the batch.
        let sample = |full: usize, b: usize| full - usize::from(full > b);
        let mut p = vec![0; rank];
        for (j, &a) in perm.iter().enumerate().filter(|&(j, _)| j != batch) {
            p[sample(j, batch)] = sample(a, x.batch);
        }
        // Output axis j is input axis p[j]: the stored axis holding input axis a holds output
        // axis p⁻¹(a).
        let inverse: Vec<usize> = (0..rank).map(|a| p.iter().position(|&b| b == a).unwrap_or(a)).collect();
        let order = x.order.iter().map(|&a| inverse.get(a).copied().unwrap_or(a)).collect();
        let shape = p.iter().map(|&a| x.shape[a]).collect();
        Ok(Value::Graph(Val { node: x.node, shape, order, batch, hidden: x.hidden }))
    }

    /// `Concat` of computed values along a sample axis, in the first one's layout.
    fn concat(&mut self, node: &NodeProto) -> Result<Value, String> {
        let first = self.graph(node, 0)?;
        let axis = self.sample_axis(read::int(node, "axis", 1), first.shape.len())?;
        let mut parts = vec![first.node];
        let mut shape = first.shape.clone();
        for k in 1..node.input.len() {
            let v = self.graph(node, k)?;
            if v.shape.len() != first.shape.len() {
                return self.fail("concatenates values of different ranks");
            }
            shape[axis] += v.shape[axis];
            parts.push(self.g.relayout(&v, &first.order)?.node);
        }
        let stored = first.order.iter().position(|&a| a == axis).unwrap_or(axis);
        let (n, _) = self.g.apply(concatenate(stored as i64 + 1), &parts)?;
        Ok(Value::Graph(Val { node: n, shape, order: first.order, batch: 0, hidden: None }))
    }
}

/// A Reshape target as the file writes it, the batch as `batch`.
fn show_target(t: &[f64]) -> String {
    let dims: Vec<String> =
        t.iter().map(|d| if d.is_nan() { "batch".into() } else { (*d as i64).to_string() }).collect();
    format!("[{}]", dims.join(", "))
}
