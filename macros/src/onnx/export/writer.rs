//! The graph under construction: nodes, constants, attributes and activations, and the window
//! numbers `infer` writes for windowed layers.

use proc_macro2::TokenStream;

use super::super::proto::{AttributeProto, NodeProto, TensorProto, dtype};

/// The graph being written: its nodes, and a counter for the names of intermediate values.
pub(super) struct Writer {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) count: usize,
}

/// Where a layer's output before its activation goes: the layer's own name when it has none.
pub(super) fn pre_activation(act: &str, own: &str) -> String {
    if act == "Linear" { own.to_string() } else { format!("{own}_linear") }
}

pub(super) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i, ..Default::default() }
}

pub(super) fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 1, f, ..Default::default() }
}

pub(super) fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

pub(super) fn attr_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints, ..Default::default() }
}

impl Writer {
    /// Appends `op(inputs)` with `attrs`, its output named `out` (or a fresh name): the output.
    pub(super) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: Option<&str>) -> String {
        self.count += 1;
        let out = out.map_or_else(|| format!("{op}_{}", self.count), str::to_string);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("{op}_{}", self.count),
            op_type: op.into(),
            domain: String::new(),
            attribute: attrs,
        });
        out
    }

    /// A constant tensor (a Constant node), float or int64.
    pub(super) fn constant(&mut self, dims: Vec<i64>, floats: Vec<f32>, ints: Vec<i64>) -> String {
        let int = !ints.is_empty();
        let t = TensorProto {
            dims,
            data_type: if int { dtype::INT64 } else { dtype::FLOAT },
            float_data: floats,
            int64_data: ints,
            ..Default::default()
        };
        let value = AttributeProto { name: "value".into(), r#type: 4, t: Some(t), ..Default::default() };
        self.node("Constant", &[], vec![value], None)
    }

    /// Activation `act` (kiln's runtime type name) on `x`; `None` for one with no ONNX form here.
    pub(super) fn activation(&mut self, act: &str, x: &str, out: Option<&str>) -> Option<String> {
        Some(match act {
            "Linear" => match out {
                Some(o) => self.node("Identity", &[x], vec![], Some(o)),
                None => x.to_string(),
            },
            "Relu" | "Sigmoid" | "Tanh" | "Elu" | "Selu" | "Softplus" => self.node(act, &[x], vec![], out),
            "Softmax" => self.node("Softmax", &[x], vec![attr_int("axis", -1)], out),
            "Swish" => {
                let s = self.node("Sigmoid", &[x], vec![], None);
                self.node("Mul", &[x, &s], vec![], out)
            }
            "Gelu" => {
                // 0.5 x (1 + erf(x / √2)), as PyTorch writes it before opset 20.
                let root2 = self.constant(vec![], vec![std::f32::consts::SQRT_2], vec![]);
                let (one, half) = (self.constant(vec![], vec![1.0], vec![]), self.constant(vec![], vec![0.5], vec![]));
                let d = self.node("Div", &[x, &root2], vec![], None);
                let e = self.node("Erf", &[&d], vec![], None);
                let a = self.node("Add", &[&e, &one], vec![], None);
                let m = self.node("Mul", &[x, &a], vec![], None);
                self.node("Mul", &[&m, &half], vec![], out)
            }
            _ => return None,
        })
    }

    /// A float scalar constant.
    pub(super) fn scalar(&mut self, v: f32) -> String {
        self.constant(vec![], vec![v], vec![])
    }

    /// `act` on `linear` (see [`pre_activation`]) into `own`; no node for Linear.
    pub(super) fn then(&mut self, act: &'static str, linear: &str, own: &str) -> Option<String> {
        if act == "Linear" { Some(linear.to_string()) } else { self.activation(act, linear, Some(own)) }
    }
}

/// A window as `infer` describes it (`Window { h: 8usize, .. }`): its numbers by field name.
pub(super) fn window(win: &TokenStream) -> Option<std::collections::HashMap<String, i64>> {
    let s: syn::ExprStruct = syn::parse2(win.clone()).ok()?;
    s.fields
        .iter()
        .map(|f| {
            let syn::Member::Named(name) = &f.member else { return None };
            let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(v), .. }) = &f.expr else { return None };
            Some((name.to_string(), v.base10_parse().ok()?))
        })
        .collect()
}

impl Writer {
    /// Ids `[batch, k]` (int64) as rows `[batch, depth]`: ones where an id occurs, or with
    /// `count` how many times (ONNX's OneHot, then the maximum or the sum over the ids).
    pub(super) fn rows_of_ids(&mut self, ids: &str, depth: usize, count: bool, own: &str) -> String {
        let d = self.constant(vec![1], vec![], vec![depth as i64]);
        let values = self.constant(vec![2], vec![0.0, 1.0], vec![]);
        let hot = self.node("OneHot", &[ids, &d, &values], vec![attr_int("axis", -1)], None);
        if count {
            let axes = self.constant(vec![1], vec![], vec![1]);
            self.node("ReduceSum", &[&hot, &axes], vec![attr_int("keepdims", 0)], Some(own))
        } else {
            self.node("ReduceMax", &[&hot], vec![attr_ints("axes", vec![1]), attr_int("keepdims", 0)], Some(own))
        }
    }

    /// IntegerLookup: values `x` (`[batch, k]`) as rows of `oov` columns, then one per entry of
    /// `vocabulary` (-1: unused). A value in the vocabulary marks its entry's column; another
    /// its floor modulo `oov` (as kiln's runtime does). Ones, or with `count` how many times.
    pub(super) fn lookup(&mut self, x: &str, vocabulary: &str, oov: usize, count: bool, own: &str) -> String {
        let last = self.constant(vec![1], vec![], vec![-1]);
        let each = self.node("Unsqueeze", &[x, &last], vec![], None);
        let hit = self.node("Equal", &[&each, vocabulary], vec![], None);
        let unused = self.scalar(-1.0);
        let unused = self.node("Equal", &[vocabulary, &unused], vec![], None);
        let used = self.node("Not", &[&unused], vec![], None);
        let hit = self.node("And", &[&hit, &used], vec![], None);
        let known = self.node("Cast", &[&hit], vec![attr_int("to", 1)], None);
        // [batch, k, 1]: 1 where the value is in the vocabulary.
        let found = self.node("ReduceMax", &[&known], vec![attr_ints("axes", vec![-1]), attr_int("keepdims", 1)], None);
        let whole = self.node("Cast", &[x], vec![attr_int("to", 7)], None);
        let n = self.constant(vec![], vec![], vec![oov as i64]);
        let bucket = self.node("Mod", &[&whole, &n], vec![], None);
        let depth = self.constant(vec![1], vec![], vec![oov as i64]);
        let values = self.constant(vec![2], vec![0.0, 1.0], vec![]);
        let hot = self.node("OneHot", &[&bucket, &depth, &values], vec![attr_int("axis", -1)], None);
        let one = self.scalar(1.0);
        let unknown = self.node("Sub", &[&one, &found], vec![], None);
        let hot = self.node("Mul", &[&hot, &unknown], vec![], None);
        let rows = self.node("Concat", &[&hot, &known], vec![attr_int("axis", -1)], None);
        if count {
            let axes = self.constant(vec![1], vec![], vec![1]);
            self.node("ReduceSum", &[&rows, &axes], vec![attr_int("keepdims", 0)], Some(own))
        } else {
            self.node("ReduceMax", &[&rows], vec![attr_ints("axes", vec![1]), attr_int("keepdims", 0)], Some(own))
        }
    }
}
