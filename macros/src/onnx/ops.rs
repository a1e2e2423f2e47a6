//! The operators: each ONNX node lowered to kiln layers through their specs, or folded when its
//! inputs are known when the model compiles. Convolutions, pooling and normalisation are in
//! `window`; constant folding in `fold`.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::graph::{Graph, Val, Value, identity};
use super::proto::NodeProto;
use super::read::{self, Const, describe};
use crate::layers::{Num, Scalar, broadcast, concatenate, flatten, scalar, softmax_axis, unary};

/// The operators kiln imports, for the message about one it does not.
pub const SUPPORTED: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "LeakyRelu",
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
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
    "LayerNormalization",
    "Pad",
    "Identity",
    "Dropout",
    "Constant",
    "Shape",
    "Gather",
    "Cast",
    "ConstantOfShape",
    "Slice",
];

/// Lowers an ONNX graph's nodes, in the file's (topological) order.
pub struct Lowering<'a> {
    pub g: Graph,
    pub opset: i64,
    pub nodes: &'a [NodeProto],
    /// For each value name, the nodes reading it (MatMul then Add fuse into one Dense).
    consumers: HashMap<String, Vec<usize>>,
    /// Nodes already lowered as part of an earlier one.
    skip: HashSet<usize>,
    /// The batch size the file fixes, if it fixes one (else it is symbolic).
    pub batch: Option<usize>,
    /// Layers made without a bias (a Conv whose bias the exporter wrote as a later Add), by
    /// node, with the call that built them: the Add becomes their bias.
    biasable: HashMap<usize, String>,
}

impl<'a> Lowering<'a> {
    pub fn new(g: Graph, opset: i64, nodes: &'a [NodeProto], batch: Option<usize>) -> Lowering<'a> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for input in &n.input {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        Lowering { g, opset, nodes, consumers, skip: HashSet::new(), batch, biasable: HashMap::new() }
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

    /// Input `k`, which must be computed by the model.
    pub fn graph(&self, node: &NodeProto, k: usize) -> Result<Val, String> {
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
        let ins: Vec<Value> =
            (0..node.input.len()).filter_map(|k| self.input(node, k).transpose()).collect::<Result<_, _>>()?;
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
            "Gemm" => self.gemm(node)?,
            "MatMul" => self.matmul(i)?,
            "Flatten" => self.flatten(node)?,
            "Reshape" => self.reshape(node)?,
            "Squeeze" | "Unsqueeze" => super::fold::squeeze(self, node)?,
            "Transpose" => self.transpose(node)?,
            "Concat" => self.concat(node)?,
            "Conv" => self.conv(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" | "GlobalMaxPool" => self.global_pool(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "LayerNormalization" => self.layer_norm(node)?,
            "Pad" => self.pad(node)?,
            "Slice" => self.slice(node)?,
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

    /// `Add`, `Sub`, `Mul`, `Div`: of two computed values (broadcast as NumPy does), or of one and
    /// a single number.
    fn arithmetic(&mut self, node: &NodeProto) -> Result<Value, String> {
        let (a, b) = (self.need(node, 0)?, self.need(node, 1)?);
        let class = match node.op_type.as_str() {
            "Add" => "Add",
            "Sub" => "Subtract",
            "Mul" => "Multiply",
            _ => "Divide",
        };
        let (x, c, const_left) = match (a, b) {
            (Value::Graph(a), Value::Graph(b)) => {
                let (a, b) = if a.shape == b.shape {
                    let b = self.g.relayout(&b, &a.order)?;
                    (a, b)
                } else if a.shape.len() == b.shape.len() {
                    (self.g.onnx_layout(&a)?, self.g.onnx_layout(&b)?)
                } else {
                    return self.fail(format!(
                        "broadcasts values of ranks {} and {} (with their batch axes); kiln broadcasts values of one \
                         rank",
                        a.shape.len() + 1,
                        b.shape.len() + 1
                    ));
                };
                let (n, out) = self.g.apply(broadcast(class), &[a.node, b.node])?;
                let shape = if a.order == identity(a.shape.len()) { out } else { a.shape.clone() };
                return Ok(Value::Graph(Val { node: n, shape, order: a.order }));
            }
            (Value::Graph(x), Value::Const(c)) => (x, c, false),
            (Value::Const(c), Value::Graph(x)) => (x, c, true),
            (Value::Const(_), Value::Const(_)) => return self.fail("has two constant inputs"),
        };
        if c.vals.len() != 1 {
            if class == "Add"
                && let Some(v) = self.fuse_bias(&x, &c)?
            {
                return Ok(v);
            }
            return self.with_constant(&x, &c, class, const_left);
        }
        let v = c.vals[0] as f32;
        let op = match (class, const_left) {
            ("Add", _) => Scalar::Shift(Num::Lit(v)),
            ("Multiply", _) => Scalar::Scale(Num::Lit(v)),
            ("Subtract", false) => Scalar::Shift(Num::Lit(-v)),
            ("Subtract", true) => Scalar::SubtractFrom(Num::Lit(v)),
            (_, false) => Scalar::DivideBy(Num::Lit(v)),
            (_, true) => Scalar::Reciprocal(Num::Lit(v)),
        };
        let (n, _) = self.g.apply(scalar(op), &[x.node])?;
        Ok(Value::Graph(Val { node: n, ..x }))
    }

    /// Records that the layer of `node`, built by `call` without a bias, may take one.
    pub fn biasable(&mut self, node: usize, call: String) {
        self.biasable.insert(node, call);
    }

    /// `x + c` where `x` is (a view of) the output of a layer made without a bias, read by
    /// nothing else, and `c` holds one value per channel: the layer rebuilt with `c` as its bias.
    fn fuse_bias(&mut self, x: &Val, c: &Const) -> Result<Option<Value>, String> {
        let mut base = x.node;
        let mut chain = vec![base];
        while let crate::ir::Op::Apply(l) = self.g.nodes[base].op
            && self.g.layers[l].kind.is_view()
        {
            base = self.g.nodes[base].inputs[0];
            chain.push(base);
        }
        let Some(call) = self.biasable.get(&base).cloned() else { return Ok(None) };
        let channels = *self.g.nodes[base].output_shape.last().unwrap_or(&0);
        // One value per channel, on the axis the layer stores last.
        let last = *x.order.last().unwrap_or(&0);
        let rank = x.shape.len();
        let mut dims = c.dims.clone();
        if dims.len() == rank + 1 && dims[0] == 1 {
            dims.remove(0);
        }
        let mut cd = vec![1; rank.saturating_sub(dims.len())];
        cd.extend(dims);
        let per_channel = cd.len() == rank && (0..rank).all(|a| cd[a] == if a == last { channels } else { 1 });
        let used_once = chain.iter().all(|&n| self.g.nodes.iter().filter(|m| m.inputs.contains(&n)).count() <= 1)
            && chain.iter().all(|&n| {
                let names: Vec<&String> = self
                    .g
                    .values
                    .iter()
                    .filter(|(_, v)| matches!(v, Value::Graph(v) if v.node == n))
                    .map(|(k, _)| k)
                    .collect();
                names.iter().all(|k| self.consumers.get(*k).is_none_or(|u| u.len() <= 1))
            });
        if !per_channel || !used_once || x.shape[last] != channels {
            return Ok(None);
        }
        let crate::ir::Op::Apply(l) = self.g.nodes[base].op else { return Ok(None) };
        self.g.layers[l].kind = self.g.spec(&call.replace("use_bias = false", "use_bias = true"))?;
        self.g.weight(base, "bias", vec![channels], c.f32s());
        self.biasable.remove(&base);
        Ok(Some(Value::Graph(x.clone())))
    }

    /// `x op c` (or `c op x`) with a constant tensor `c` broadcast against `x`: the constant a
    /// `Weight` layer stored in `x`'s layout, then the broadcasting op.
    fn with_constant(&mut self, x: &Val, c: &Const, class: &'static str, left: bool) -> Result<Value, String> {
        let rank = x.shape.len();
        let mut dims = c.dims.clone();
        if dims.len() == rank + 1 {
            if dims[0] != 1 {
                return self.fail(format!("broadcasts a constant of dimensions {dims:?} along the batch axis"));
            }
            dims.remove(0);
        }
        if dims.len() > rank {
            return self.fail(format!(
                "broadcasts a constant of dimensions {:?} against a value of rank {}",
                c.dims,
                rank + 1
            ));
        }
        let mut cd = vec![1; rank - dims.len()];
        cd.extend(dims);
        let mut shape = x.shape.clone();
        for (s, &d) in shape.iter_mut().zip(&cd) {
            match (*s, d) {
                (a, b) if a == b || b == 1 => {}
                (1, b) => *s = b,
                _ => {
                    return self
                        .fail(format!("broadcasts a constant of dimensions {:?} against {:?}", c.dims, x.shape));
                }
            }
        }
        // The constant's values in the order `x` stores its axes.
        let stored: Vec<usize> = x.order.iter().map(|&a| cd[a]).collect();
        let strides: Vec<usize> = (0..rank).map(|a| cd[a + 1..].iter().product()).collect();
        let n: usize = cd.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|i| {
                let (mut rest, mut at) = (i, 0);
                for (k, &a) in x.order.iter().enumerate().rev() {
                    at += (rest % stored[k]) * strides[a];
                    rest /= stored[k];
                }
                c.vals[at] as f32
            })
            .collect();
        let (k, _) = self.g.apply(super::constant::constant(stored), &[x.node])?;
        self.g.weight(k, "value", vec![n], vals);
        let ins = if left { [k, x.node] } else { [x.node, k] };
        let (node, _) = self.g.apply(broadcast(class), &ins)?;
        Ok(Value::Graph(Val { node, shape, order: x.order.clone() }))
    }

    /// A Dense layer on the last axis of `x` (in the file's layout), its kernel `[inputs, units]`.
    fn dense(&mut self, x: &Val, kernel: Vec<f32>, units: usize, bias: Option<Vec<f32>>) -> Result<Value, String> {
        let x = self.g.onnx_layout(x)?;
        let inputs = *x.shape.last().unwrap_or(&0);
        let use_bias = if bias.is_some() { "true" } else { "false" };
        let spec = self.g.spec(&format!("Dense({units}, use_bias = {use_bias})"))?;
        let (n, out) = self.g.apply(spec, &[x.node])?;
        self.g.weight(n, "kernel", vec![inputs, units], kernel);
        match bias {
            Some(b) => self.g.weight(n, "bias", vec![units], b),
            None => self.biasable(n, format!("Dense({units}, use_bias = false)")),
        }
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out }))
    }

    /// `Gemm(A, B, C)`: `alpha * A' B' + beta * C` as a Dense layer, `A` computed, `B` and `C`
    /// known.
    fn gemm(&mut self, node: &NodeProto) -> Result<Value, String> {
        let a = self.graph(node, 0)?;
        if a.shape.len() != 1 || read::int(node, "transA", 0) != 0 {
            return self.fail(format!(
                "multiplies a value of shape [batch, {}]{}; kiln imports Gemm on [batch, features] without transA",
                a.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                if read::int(node, "transA", 0) != 0 { " transposed" } else { "" }
            ));
        }
        let b = self.constant(node, 1)?;
        let (alpha, beta) = (read::float(node, "alpha", 1.0), read::float(node, "beta", 1.0));
        let trans = read::int(node, "transB", 0) != 0;
        let k = a.shape[0];
        let (rows, cols) = match b.dims[..] {
            [r, c] => (r, c),
            _ => return self.fail(format!("has a weight of dimensions {:?}; Gemm's B is a matrix", b.dims)),
        };
        let (bk, units) = if trans { (cols, rows) } else { (rows, cols) };
        if bk != k {
            return self.fail(format!("multiplies [batch, {k}] by a matrix of {bk} rows"));
        }
        let w = b.f32s();
        let kernel: Vec<f32> = (0..k * units)
            .map(|i| {
                let (r, c) = (i / units, i % units);
                alpha * if trans { w[c * k + r] } else { w[r * units + c] }
            })
            .collect();
        let bias = match self.input(node, 2)? {
            None => None,
            Some(Value::Const(c)) => Some(self.bias(&c, units, beta)?),
            Some(Value::Graph(_)) => return self.fail("adds a computed C; kiln imports Gemm with a constant C"),
        };
        self.dense(&a, kernel, units, bias)
    }

    /// A constant broadcast along `units` (a bias), scaled by `scale`.
    fn bias(&self, c: &Const, units: usize, scale: f32) -> Result<Vec<f32>, String> {
        let v = c.f32s();
        match v.len() {
            1 => Ok(vec![v[0] * scale; units]),
            n if n == units && c.dims.last() == Some(&units) => Ok(v.iter().map(|x| x * scale).collect()),
            _ => self.fail(format!("adds a constant of dimensions {:?} to {units} units", c.dims)),
        }
    }

    /// `MatMul(x, W)` with `W` known: a Dense layer without bias, or with the bias of the `Add`
    /// that alone reads its result.
    fn matmul(&mut self, i: usize) -> Result<Value, String> {
        let node = &self.nodes[i];
        let x = self.graph(node, 0)?;
        let w = self.constant(node, 1)?;
        let (k, units) = match w.dims[..] {
            [k, u] => (k, u),
            _ => {
                return self.fail(format!(
                    "multiplies by a tensor of dimensions {:?}; kiln imports MatMul by a matrix",
                    w.dims
                ));
            }
        };
        if x.shape.last() != Some(&k) {
            return self.fail(format!("multiplies a value of last axis {:?} by a matrix of {k} rows", x.shape.last()));
        }
        let mut bias = None;
        if let Some(users) = self.consumers.get(&node.output[0])
            && let [j] = users[..]
            && self.nodes[j].op_type == "Add"
        {
            let add = &self.nodes[j];
            let other = add.input.iter().position(|n| *n != node.output[0]);
            if let Some(o) = other
                && let Some(Value::Const(c)) = self.g.values.get(&add.input[o])
                && c.dims.last() == Some(&units)
                && c.vals.len() == units
            {
                bias = Some(c.f32s());
                self.skip.insert(j);
                let out = add.output[0].clone();
                let v = self.dense(&x, w.f32s(), units, bias)?;
                self.g.values.insert(out, v.clone());
                return Ok(v);
            }
        }
        self.dense(&x, w.f32s(), units, bias)
    }

    /// `LayerNormalization` over the last axis: kiln's LayerNormalization, gamma the scale and
    /// beta the bias.
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
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out }))
    }

    /// `Reshape(x, shape)`, the shape known (the batch axis first: the batch size, `0` or `-1`).
    fn reshape(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let target = self.constant(node, 1)?;
        let t = &target.vals;
        let batch_ok = |d: f64| {
            d.is_nan()
                || d == 0.0
                || (d == -1.0 && !t[1..].contains(&-1.0))
                || self.batch.is_some_and(|b| d == b as f64)
        };
        if t.is_empty() || !batch_ok(t[0]) {
            return self.fail(format!(
                "reshapes to {}, which changes the batch axis; kiln keeps it: its first dimension is the batch size, \
                 0 or -1",
                show_target(t)
            ));
        }
        let mut sample = Vec::new();
        for (i, &d) in t.iter().enumerate().skip(1) {
            sample.push(match d {
                0.0 if read::int(node, "allowzero", 0) == 0 => match x.shape.get(i - 1) {
                    Some(&s) => s as i64,
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
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out }))
    }

    /// `Transpose`: no values move; the value's layout records the new order of its axes.
    fn transpose(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let rank = x.shape.len();
        let perm = read::ints(node, "perm").unwrap_or_else(|| (0..=rank as i64).rev().collect());
        if perm.len() != rank + 1 || perm[0] != 0 {
            return self.fail(format!("permutes the axes as {perm:?}; kiln keeps the batch axis first"));
        }
        let p: Vec<usize> = perm[1..].iter().map(|&a| (a - 1).max(0) as usize).collect();
        let mut sorted = p.clone();
        sorted.sort();
        if sorted != identity(rank) {
            return self.fail(format!("has perm {perm:?}, which is not a permutation of the axes"));
        }
        // Output axis j is input axis p[j]: the stored axis holding input axis a holds output
        // axis p⁻¹(a).
        let inverse: Vec<usize> = (0..rank).map(|a| p.iter().position(|&b| b == a).unwrap_or(a)).collect();
        let order = x.order.iter().map(|&a| inverse[a]).collect();
        let shape = p.iter().map(|&a| x.shape[a]).collect();
        Ok(Value::Graph(Val { node: x.node, shape, order }))
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
        Ok(Value::Graph(Val { node: n, shape, order: first.order }))
    }
}

/// A Reshape target as the file writes it, the batch as `batch`.
fn show_target(t: &[f64]) -> String {
    let dims: Vec<String> =
        t.iter().map(|d| if d.is_nan() { "batch".into() } else { (*d as i64).to_string() }).collect();
    format!("[{}]", dims.join(", "))
}
