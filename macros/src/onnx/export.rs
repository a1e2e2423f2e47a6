//! `save_onnx` for the models `sequential!` and `functional!` define: the graph, encoded here
//! with the `proto` messages when the model compiles, and the weights appended at run time by
//! the runtime's `save_onnx` as initializers named as kiln names them. Each layer reads its
//! weights in kiln's layouts (Dense's `[in, out]` kernel is MatMul's `B`), so nothing is
//! transposed. Opset 17; a symbolic batch axis.

use proc_macro2::TokenStream;
use quote::quote;

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, TypeTensor, ValueInfoProto, dtype,
};
use crate::ir::{Model, Op, Resampling, Static};

/// The graph being written: its nodes, and a counter for the names of intermediate values.
struct Writer {
    nodes: Vec<NodeProto>,
    count: usize,
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i, ..Default::default() }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 1, f, ..Default::default() }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

fn attr_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints, ..Default::default() }
}

impl Writer {
    /// Appends `op(inputs)` with `attrs`, its output named `out` (or a fresh name): the output.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: Option<&str>) -> String {
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
    fn constant(&mut self, dims: Vec<i64>, floats: Vec<f32>, ints: Vec<i64>) -> String {
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
    fn activation(&mut self, act: &str, x: &str, out: Option<&str>) -> Option<String> {
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
}

/// A window as `infer` describes it (`Window { h: 8usize, .. }`): its numbers by field name.
fn window(win: &TokenStream) -> Option<std::collections::HashMap<String, i64>> {
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
    /// A windowed op on the channels-last `x` of sample rank `rank` (kiln's image as ONNX's
    /// NCHW and back): its attributes from the window (a one-row image is 1-D).
    #[allow(clippy::too_many_arguments)]
    fn windowed(
        &mut self,
        op: &str,
        x: &str,
        rank: usize,
        win: &TokenStream,
        extra: &[&str],
        mut attrs: Vec<AttributeProto>,
        out: &str,
    ) -> Option<String> {
        let w = window(win)?;
        let g = |k: &str| w.get(k).copied();
        let pads = |n: i64, k: i64, s: i64, d: i64, p: i64, o: i64| (p, ((o - 1) * s + (k - 1) * d + 1 - n - p).max(0));
        let (pt, pb) = pads(g("h")?, g("kh")?, g("sh")?, g("dh")?, g("ph")?, g("oh")?);
        let (pl, pr) = pads(g("w")?, g("kw")?, g("sw")?, g("dw")?, g("pw")?, g("ow")?);
        let one_d = rank == 2;
        let pick = |a: i64, b: i64| if one_d { vec![b] } else { vec![a, b] };
        attrs.extend([
            attr_ints("kernel_shape", pick(g("kh")?, g("kw")?)),
            attr_ints("strides", pick(g("sh")?, g("sw")?)),
            attr_ints("pads", if one_d { vec![pl, pr] } else { vec![pt, pl, pb, pr] }),
        ]);
        if op == "Conv" {
            attrs.push(attr_ints("dilations", pick(g("dh")?, g("dw")?)));
        }
        let to: Vec<i64> = [0, rank as i64].into_iter().chain(1..rank as i64).collect();
        let back: Vec<i64> = [0].into_iter().chain(2..=rank as i64).chain([1]).collect();
        let t = self.node("Transpose", &[x], vec![attr_ints("perm", to)], None);
        let mut ins = vec![t.as_str()];
        ins.extend(extra);
        let y = self.node(op, &ins, attrs, None);
        Some(self.node("Transpose", &[&y], vec![attr_ints("perm", back)], Some(out)))
    }
}

impl Writer {
    /// ONNX's ConvTranspose on the channels-last image `x` (to NCHW and back), its pads and output
    /// padding from `win`, the convolution from its output back to its input: `None` where the
    /// window cannot be read or needs a negative output padding.
    fn transposed(&mut self, x: &str, win: &TokenStream, extra: &[&str], out: &str) -> Option<String> {
        let w = window(win)?;
        let g = |k: &str| w.get(k).copied();
        let mut attrs =
            vec![attr_ints("kernel_shape", vec![g("kh")?, g("kw")?]), attr_ints("strides", vec![g("sh")?, g("sw")?])];
        // The forward convolution reads `n` (this layer's output) with pads `p` at the start and
        // what its `o` outputs need at the end; the transposed one crops the same.
        let side = |n: i64, k: i64, s: i64, p: i64, o: i64| {
            let end = ((o - 1) * s + k - n - p).max(0);
            (p, end, n - ((o - 1) * s + k - p - end))
        };
        let (pt, pb, eh) = side(g("h")?, g("kh")?, g("sh")?, g("ph")?, g("oh")?);
        let (pl, pr, ew) = side(g("w")?, g("kw")?, g("sw")?, g("pw")?, g("ow")?);
        if eh < 0 || ew < 0 || g("dh")? != 1 || g("dw")? != 1 {
            return None;
        }
        attrs.push(attr_ints("pads", vec![pt, pl, pb, pr]));
        if eh > 0 || ew > 0 {
            attrs.push(attr_ints("output_padding", vec![eh, ew]));
        }
        let t = self.node("Transpose", &[x], vec![attr_ints("perm", vec![0, 3, 1, 2])], None);
        let mut ins = vec![t.as_str()];
        ins.extend(extra);
        let y = self.node("ConvTranspose", &ins, attrs, None);
        Some(self.node("Transpose", &[&y], vec![attr_ints("perm", vec![0, 2, 3, 1])], Some(out)))
    }

    /// A stored `[kh, kw, c, m]` depthwise kernel as ONNX's grouped Conv weight `[c·m, 1, kh, kw]`.
    fn depthwise_kernel(&mut self, kernel: &str, shape: [usize; 4]) -> String {
        let [kh, kw, c, m] = shape.map(|d| d as i64);
        let t = self.node("Transpose", &[kernel], vec![attr_ints("perm", vec![2, 3, 0, 1])], None);
        let dims = self.constant(vec![4], vec![], vec![c * m, 1, kh, kw]);
        self.node("Reshape", &[&t, &dims], vec![], None)
    }

    /// `act` on `linear`, the pre-activation named `linear_name`, into `own` (no node for Linear).
    fn then(&mut self, act: &'static str, linear: &str, own: &str) -> Option<String> {
        if act == "Linear" { Some(linear.to_string()) } else { self.activation(act, linear, Some(own)) }
    }
}

/// A user-math `UnaryOp` as written (`Exp`, `Scale(0.5)`, `Clip(0.0, 4.0)`): its name and its
/// constant arguments, `None` for an argument that is not a number literal.
fn unary_op(op: &TokenStream) -> Option<(String, Vec<f32>)> {
    let number = |e: &syn::Expr| -> Option<f32> {
        match e {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse().ok(),
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => {
                i.base10_parse::<i64>().ok().map(|v| v as f32)
            }
            syn::Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => {
                    f.base10_parse::<f32>().ok().map(|v| -v)
                }
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => {
                    i.base10_parse::<i64>().ok().map(|v| -v as f32)
                }
                _ => None,
            },
            _ => None,
        }
    };
    let last = |p: &syn::Path| p.segments.last().map(|s| s.ident.to_string());
    match syn::parse2::<syn::Expr>(op.clone()).ok()? {
        syn::Expr::Path(p) => Some((last(&p.path)?, vec![])),
        syn::Expr::Call(c) => {
            let syn::Expr::Path(f) = &*c.func else { return None };
            Some((last(&f.path)?, c.args.iter().map(number).collect::<Option<_>>()?))
        }
        _ => None,
    }
}

/// The axis of a sample of `shape` that user math's `[outer, len, inner]` view reduces, slices or
/// normalises, and whose result has `out` as its shape (when given).
fn middle_axis(shape: &[usize], len: usize, inner: usize) -> Option<usize> {
    (0..shape.len()).rev().find(|&k| shape[k] == len && shape[k + 1..].iter().product::<usize>() == inner)
}

impl Writer {
    /// A float scalar constant.
    fn scalar(&mut self, v: f32) -> String {
        self.constant(vec![], vec![v], vec![])
    }

    /// User math's element-wise chain on `x`, the last op's output named `out`.
    fn unary(&mut self, x: &str, ops: &[TokenStream], out: &str) -> Option<String> {
        let mut h = x.to_string();
        for (i, op) in ops.iter().enumerate() {
            let name = (i + 1 == ops.len()).then_some(out);
            let (op, args) = unary_op(op)?;
            h = match (op.as_str(), &args[..]) {
                ("Negative", []) => self.node("Neg", &[&h], vec![], name),
                ("Exp" | "Log" | "Sqrt" | "Abs", []) => self.node(&op, &[&h], vec![], name),
                ("Square", []) => self.node("Mul", &[&h, &h], vec![], name),
                ("StopGradient", []) => self.node("Identity", &[&h], vec![], name),
                ("Scale" | "Shift" | "DivideBy" | "Power" | "Maximum" | "Minimum", &[c]) => {
                    let onnx = match op.as_str() {
                        "Scale" => "Mul",
                        "Shift" => "Add",
                        "DivideBy" => "Div",
                        "Power" => "Pow",
                        "Maximum" => "Max",
                        _ => "Min",
                    };
                    let c = self.scalar(c);
                    self.node(onnx, &[&h, &c], vec![], name)
                }
                ("SubtractFrom" | "Reciprocal", &[c]) => {
                    let onnx = if op == "SubtractFrom" { "Sub" } else { "Div" };
                    let c = self.scalar(c);
                    self.node(onnx, &[&c, &h], vec![], name)
                }
                ("Clip", &[lo, hi]) => {
                    let (lo, hi) = (self.scalar(lo), self.scalar(hi));
                    self.node("Clip", &[&h, &lo, &hi], vec![], name)
                }
                _ => return None,
            };
        }
        Some(h)
    }

    /// `x` (a sample of rank `rank`) with axes of size 1 inserted after the batch axis up to
    /// rank `to`, so that ONNX's broadcasting, which aligns from the last axis over the batch
    /// axis too, pairs the axes as user math does within each sample.
    fn lift_rank(&mut self, x: &str, rank: usize, to: usize) -> String {
        if rank >= to {
            return x.to_string();
        }
        let axes = self.constant(vec![(to - rank) as i64], vec![], (1..=(to - rank) as i64).collect());
        self.node("Unsqueeze", &[x, &axes], vec![], None)
    }
}

/// A recurrent layer's configuration as `infer` describes it (`Recurrence { cell: .., .. }`):
/// the cell (`Lstm`, `Gru`, `Simple`), whether a GRU resets after, the two activations, and the
/// flags, as written.
struct Recurrence {
    cell: String,
    reset_after: bool,
    activations: (String, String),
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
}

fn recurrence(cfg: &TokenStream) -> Option<Recurrence> {
    let s: syn::ExprStruct = syn::parse2(cfg.clone()).ok()?;
    let field =
        |name: &str| s.fields.iter().find(|f| matches!(&f.member, syn::Member::Named(m) if m == name)).map(|f| &f.expr);
    let last = |e: &syn::Expr| match e {
        syn::Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        syn::Expr::Struct(s) => s.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    let flag = |name: &str| matches!(field(name), Some(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) if b.value);
    let cell = field("cell")?;
    let reset_after = matches!(cell, syn::Expr::Struct(c) if c.fields.iter().any(|f| matches!(&f.expr, syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. }) if b.value)));
    Some(Recurrence {
        cell: last(cell)?,
        reset_after,
        activations: (last(field("activation")?)?, last(field("recurrent_activation")?)?),
        return_sequences: flag("return_sequences"),
        return_state: flag("return_state"),
        go_backwards: flag("go_backwards"),
    })
}

impl Writer {
    /// kiln's `[in, gates x units]` matrix `m`, its gates in Keras' order, as ONNX's
    /// `[1, gates x units, in]` in `order` (LSTM: `i f c o` to `i o f c`).
    fn gate_matrix(&mut self, m: &str, gates: usize, units: usize, order: &[usize]) -> String {
        let t = self.node("Transpose", &[m], vec![attr_ints("perm", vec![1, 0])], None);
        let r = self.reorder(&t, gates, units, order);
        let zero = self.constant(vec![1], vec![], vec![0]);
        self.node("Unsqueeze", &[&r, &zero], vec![], None)
    }

    /// The blocks of `units` rows of `x` in `order` (nothing to do for the identity).
    fn reorder(&mut self, x: &str, gates: usize, units: usize, order: &[usize]) -> String {
        if order.iter().enumerate().all(|(k, &o)| k == o) {
            return x.to_string();
        }
        let sizes = self.constant(vec![gates as i64], vec![], vec![units as i64; gates]);
        self.count += 1;
        let parts: Vec<String> = (0..gates).map(|k| format!("Split_{}_{k}", self.count)).collect();
        self.nodes.push(NodeProto {
            input: vec![x.to_string(), sizes],
            output: parts.clone(),
            name: format!("Split_{}", self.count),
            op_type: "Split".into(),
            domain: String::new(),
            attribute: vec![attr_int("axis", 0)],
        });
        let picked: Vec<&str> = order.iter().map(|&k| parts[k].as_str()).collect();
        self.node("Concat", &picked, vec![attr_int("axis", 0)], None)
    }

    /// A recurrent layer on `x` (`[batch, steps, features]`): ONNX's LSTM, GRU or RNN on
    /// `[steps, batch, features]`, its weights reordered in the graph; `None` where it has no
    /// form here (other activations, `go_backwards`, `return_state`). `merge`: a Bidirectional
    /// wrapper's merge mode (its weights `forward_kernel`, `backward_kernel`, ..): one
    /// bidirectional operator, the two directions' outputs merged after it.
    fn recurrent(
        &mut self,
        x: &str,
        cfg: &TokenStream,
        layer: &str,
        units: usize,
        merge: Option<&str>,
        out: &str,
    ) -> Option<String> {
        let r = recurrence(cfg)?;
        let backwards = r.go_backwards && merge.is_none();
        if (r.go_backwards && !backwards) || r.return_state || r.activations != ("Tanh".into(), "Sigmoid".into()) {
            return None;
        }
        let (op, gates, order): (&str, usize, &[usize]) = match r.cell.as_str() {
            "Lstm" => ("LSTM", 4, &[0, 3, 1, 2]),
            "Gru" => ("GRU", 3, &[0, 1, 2]),
            "Simple" => ("RNN", 1, &[0]),
            _ => return None,
        };
        let gu = gates * units;
        let dirs: &[&str] = if merge.is_some() { &["forward_", "backward_"] } else { &[""] };
        let mut weights: [Vec<String>; 3] = Default::default();
        for dir in dirs {
            let p = |name: &str| format!("{layer}.{dir}{name}");
            weights[0].push(self.gate_matrix(&p("kernel"), gates, units, order));
            weights[1].push(self.gate_matrix(&p("recurrent_kernel"), gates, units, order));
            // ONNX's bias is the input one then the recurrent one; kiln's one bias is the first.
            weights[2].push(if r.reset_after {
                let shape = self.constant(vec![2], vec![], vec![1, 2 * gu as i64]);
                self.node("Reshape", &[&p("bias"), &shape], vec![], None)
            } else {
                let first = self.reorder(&p("bias"), gates, units, order);
                let zeros = self.constant(vec![gu as i64], vec![0.0; gu], vec![]);
                let both = self.node("Concat", &[&first, &zeros], vec![attr_int("axis", 0)], None);
                let zero = self.constant(vec![1], vec![], vec![0]);
                self.node("Unsqueeze", &[&both, &zero], vec![], None)
            });
        }
        // The directions stacked on ONNX's axis 0.
        let [w, rk, b] = weights.map(|v| match &v[..] {
            [one] => one.clone(),
            both => {
                let both: Vec<&str> = both.iter().map(String::as_str).collect();
                self.node("Concat", &both, vec![attr_int("axis", 0)], None)
            }
        });
        let xt = self.node("Transpose", &[x], vec![attr_ints("perm", vec![1, 0, 2])], None);
        let mut attrs = vec![attr_int("hidden_size", units as i64)];
        if r.cell == "Gru" {
            attrs.push(attr_int("linear_before_reset", i64::from(r.reset_after)));
        }
        if merge.is_some() {
            attrs.push(attr_string("direction", "bidirectional"));
        } else if backwards {
            attrs.push(attr_string("direction", "reverse"));
        }
        self.count += 1;
        let (y, yh) = (format!("{op}_{}_Y", self.count), format!("{op}_{}_Y_h", self.count));
        self.nodes.push(NodeProto {
            input: vec![xt, w, rk, b],
            output: vec![y.clone(), yh.clone()],
            name: format!("{op}_{}", self.count),
            op_type: op.into(),
            domain: String::new(),
            attribute: attrs,
        });
        // Y is [steps, directions, batch, units], Y_h [directions, batch, units]; the last
        // node of a layer that returns Y_h's values as they are takes the layer's name.
        let last = (!r.return_sequences).then_some(out);
        let (value, dir_axis, to_batch_first): (&str, i64, Vec<i64>) =
            if r.return_sequences { (&y, 1, vec![2, 0, 1, 3]) } else { (&yh, 0, vec![1, 0, 2]) };
        Some(match merge {
            None => {
                let axis = self.constant(vec![1], vec![], vec![dir_axis]);
                let s = self.node("Squeeze", &[value, &axis], vec![], last);
                if !r.return_sequences {
                    return Some(s);
                }
                // `go_backwards` returns its outputs in the order it computed them, from the
                // last step: ONNX's reverse direction aligns them with the input, so they are
                // read back to front.
                let s = if backwards {
                    let c = |w: &mut Self, v: i64| w.constant(vec![1], vec![], vec![v]);
                    let (start, end, axes, step) = (c(self, -1), c(self, i64::MIN), c(self, 0), c(self, -1));
                    self.node("Slice", &[&s, &start, &end, &axes, &step], vec![], None)
                } else {
                    s
                };
                self.node("Transpose", &[&s], vec![attr_ints("perm", vec![1, 0, 2])], Some(out))
            }
            Some("Concat") => {
                // Batch first, the directions next to the units, then [.., 2 · units].
                let t = self.node("Transpose", &[value], vec![attr_ints("perm", to_batch_first.clone())], None);
                let mut dims = vec![0i64; to_batch_first.len() - 2];
                dims.push(2 * units as i64);
                let shape = self.constant(vec![dims.len() as i64], vec![], dims);
                self.node("Reshape", &[&t, &shape], vec![], Some(out))
            }
            Some(mode) => {
                // Batch first ([batch, steps, 2, units] or [batch, 2, units]), then the two
                // directions merged along their axis, which goes.
                let t = self.node("Transpose", &[value], vec![attr_ints("perm", to_batch_first.clone())], None);
                let axis = to_batch_first.len() as i64 - 2;
                let axes = self.constant(vec![1], vec![], vec![axis]);
                match mode {
                    "Sum" => self.node("ReduceSum", &[&t, &axes], vec![attr_int("keepdims", 0)], Some(out)),
                    "Ave" => {
                        let attrs = vec![attr_ints("axes", vec![axis]), attr_int("keepdims", 0)];
                        self.node("ReduceMean", &[&t], attrs, Some(out))
                    }
                    "Mul" => {
                        let part = |w: &mut Self, k: i64| {
                            let (s, e) =
                                (w.constant(vec![1], vec![], vec![k]), w.constant(vec![1], vec![], vec![k + 1]));
                            w.node("Slice", &[&t, &s, &e, &axes], vec![], None)
                        };
                        let (f, b) = (part(self, 0), part(self, 1));
                        let m = self.node("Mul", &[&f, &b], vec![], None);
                        self.node("Squeeze", &[&m, &axes], vec![], Some(out))
                    }
                    _ => return None,
                }
            }
        })
    }
}

/// A tensor's type: float (or int64 ids), a symbolic batch axis then `shape`.
fn value_info(name: &str, shape: &[usize], int: bool) -> ValueInfoProto {
    let mut dim = vec![Dimension { dim_value: None, dim_param: Some("batch".into()) }];
    dim.extend(shape.iter().map(|&d| Dimension { dim_value: Some(d as i64), dim_param: None }));
    let elem_type = if int { dtype::INT64 } else { dtype::FLOAT };
    let tensor_type = TypeTensor { elem_type, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(tensor_type) }) }
}

/// The nodes of application `i` of a layer, reading `ins`, its output named `own`.
fn layer_nodes(w: &mut Writer, model: &Model, i: usize, ins: &[&str], own: &str) -> Result<String, String> {
    let node = &model.nodes[i];
    let Some(layer) = model.layer_of(i) else { return Err("an input is not a layer".into()) };
    let own = own.to_string();
    let unsupported = || format!("layer `{}` ({}) has no ONNX export yet", layer.name, layer.kind.class());
    let out = if layer.kind.is_view() {
        let mut dims = vec![0i64];
        dims.extend(node.output_shape.iter().map(|&d| d as i64));
        let shape = w.constant(vec![dims.len() as i64], vec![], dims);
        w.node("Reshape", &[ins[0], &shape], vec![], Some(&own))
    } else {
        let s = layer.kind.infer(&node.input_shapes, &node.output_shape).ok_or_else(unsupported)?;
        let params = layer.kind.params(&node.input_shapes).unwrap_or_default();
        let p = |name: &str| format!("{}.{name}", layer.name);
        let has = |name: &str| params.iter().any(|(n, _)| *n == name);
        match s {
            Static::Identity => w.node("Identity", &[ins[0]], vec![], Some(&own)),
            Static::TimeDistributed { inner, .. } if matches!(*inner, Static::Dense { .. }) => {
                // A Dense layer on every step: MatMul takes the steps as a leading axis.
                let Static::Dense { act, .. } = *inner else { return Err(unsupported()) };
                let mut h = w.node("MatMul", &[ins[0], &p("kernel")], vec![], None);
                if has("bias") {
                    h = w.node("Add", &[&h, &p("bias")], vec![], None);
                }
                w.activation(act, &h, Some(&own)).ok_or_else(unsupported)?
            }
            Static::Dense { act, .. } => {
                let mut h = w.node("MatMul", &[ins[0], &p("kernel")], vec![], None);
                if has("bias") {
                    h = w.node("Add", &[&h, &p("bias")], vec![], None);
                }
                w.activation(act, &h, Some(&own)).ok_or_else(unsupported)?
            }
            Static::Activation { act } => w.activation(act, ins[0], Some(&own)).ok_or_else(unsupported)?,
            Static::Merge { op } => {
                let onnx = match (op, ins.len()) {
                    ("Add", 2) => "Add",
                    ("Add", _) => "Sum",
                    ("Subtract", 2) => "Sub",
                    ("Multiply", 2) => "Mul",
                    ("Divide", 2) => "Div",
                    ("Maximum", _) => "Max",
                    ("Minimum", _) => "Min",
                    ("Average", _) => "Mean",
                    _ => return Err(unsupported()),
                };
                w.node(onnx, ins, vec![], Some(&own))
            }
            Static::Concat { .. } => {
                let shapes = &node.input_shapes;
                let rank = shapes[0].len();
                let axis = (0..rank).find(|&a| shapes.iter().any(|s| s[a] != shapes[0][a])).unwrap_or(rank - 1);
                w.node("Concat", ins, vec![attr_int("axis", axis as i64 + 1)], Some(&own))
            }
            Static::BatchNorm { epsilon, center: true, scale: true } => {
                // ONNX normalises axis 1: a channels-last value moves there and back.
                let rank = node.input_shapes[0].len();
                let args = |x: &str| [x.to_string(), p("gamma"), p("beta"), p("moving_mean"), p("moving_variance")];
                let eps = vec![attr_float("epsilon", epsilon)];
                if rank == 1 {
                    let a = args(ins[0]);
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    w.node("BatchNormalization", &a, eps, Some(&own))
                } else {
                    let to: Vec<i64> = [0, rank as i64].into_iter().chain(1..rank as i64).collect();
                    let back: Vec<i64> = [0].into_iter().chain(2..=rank as i64).chain([1]).collect();
                    let t = w.node("Transpose", &[ins[0]], vec![attr_ints("perm", to)], None);
                    let a = args(&t);
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    let n = w.node("BatchNormalization", &a, eps, None);
                    w.node("Transpose", &[&n], vec![attr_ints("perm", back)], Some(&own))
                }
            }
            Static::LayerNorm { epsilon, center: true, scale: true } => w.node(
                "LayerNormalization",
                &[ins[0], &p("gamma"), &p("beta")],
                vec![attr_int("axis", -1), attr_float("epsilon", epsilon)],
                Some(&own),
            ),
            Static::Conv { win, groups, act, .. } => {
                // kiln's kernel [k.., in, out] read as ONNX's [out, in, k..].
                let rank = node.input_shapes[0].len();
                let perm: Vec<i64> = if rank == 2 { vec![2, 1, 0] } else { vec![3, 2, 0, 1] };
                let k = w.node("Transpose", &[&p("kernel")], vec![attr_ints("perm", perm)], None);
                let bias = p("bias");
                let mut extra = vec![k.as_str()];
                if has("bias") {
                    extra.push(&bias);
                }
                let pre = format!("{own}_linear");
                let linear = if act == "Linear" { own.clone() } else { pre };
                let group = vec![attr_int("group", groups as i64)];
                w.windowed("Conv", ins[0], rank, &win, &extra, group, &linear).ok_or_else(unsupported)?;
                if act == "Linear" {
                    own.clone()
                } else {
                    w.activation(act, &linear, Some(&own)).ok_or_else(unsupported)?
                }
            }
            Static::Depthwise { win, multiplier, act } if node.input_shapes[0].len() == 3 => {
                let (kh, kw) =
                    window(&win).and_then(|m| Some((*m.get("kh")?, *m.get("kw")?))).ok_or_else(unsupported)?;
                let c = node.input_shapes[0][2];
                let k = w.depthwise_kernel(&p("kernel"), [kh as usize, kw as usize, c, multiplier]);
                let bias = p("bias");
                let mut extra = vec![k.as_str()];
                if has("bias") {
                    extra.push(&bias);
                }
                let linear = if act == "Linear" { own.clone() } else { format!("{own}_linear") };
                let group = vec![attr_int("group", c as i64)];
                w.windowed("Conv", ins[0], 3, &win, &extra, group, &linear).ok_or_else(unsupported)?;
                w.then(act, &linear, &own).ok_or_else(unsupported)?
            }
            Static::Separable { win, multiplier, act, .. } if node.input_shapes[0].len() == 3 => {
                // The depthwise Conv (group c), then the pointwise one (1 × 1).
                let (kh, kw) =
                    window(&win).and_then(|m| Some((*m.get("kh")?, *m.get("kw")?))).ok_or_else(unsupported)?;
                let c = node.input_shapes[0][2];
                let k = w.depthwise_kernel(&p("depthwise_kernel"), [kh as usize, kw as usize, c, multiplier]);
                let depth = format!("{own}_depthwise");
                let group = vec![attr_int("group", c as i64)];
                w.windowed("Conv", ins[0], 3, &win, &[&k], group, &depth).ok_or_else(unsupported)?;
                // The pointwise kernel [1, 1, c·m, filters] as a 1 × 1 Conv's [filters, c·m, 1, 1].
                let perm = vec![attr_ints("perm", vec![3, 2, 0, 1])];
                let pk = w.node("Transpose", &[&p("pointwise_kernel")], perm, None);
                let bias = p("bias");
                let mut ins = vec![pk.as_str()];
                if has("bias") {
                    ins.push(&bias);
                }
                let t = w.node("Transpose", &[&depth], vec![attr_ints("perm", vec![0, 3, 1, 2])], None);
                let mut args = vec![t.as_str()];
                args.extend(ins);
                let y = w.node("Conv", &args, vec![attr_ints("kernel_shape", vec![1, 1])], None);
                let linear = if act == "Linear" { own.clone() } else { format!("{own}_linear") };
                w.node("Transpose", &[&y], vec![attr_ints("perm", vec![0, 2, 3, 1])], Some(&linear));
                w.then(act, &linear, &own).ok_or_else(unsupported)?
            }
            Static::ConvTranspose { win, act } if node.input_shapes[0].len() == 3 => {
                // kiln's kernel [kh, kw, filters, in] read as ONNX's [in, filters, kh, kw].
                let perm = vec![attr_ints("perm", vec![3, 2, 0, 1])];
                let k = w.node("Transpose", &[&p("kernel")], perm, None);
                let bias = p("bias");
                let mut extra = vec![k.as_str()];
                if has("bias") {
                    extra.push(&bias);
                }
                let linear = if act == "Linear" { own.clone() } else { format!("{own}_linear") };
                w.transposed(ins[0], &win, &extra, &linear).ok_or_else(unsupported)?;
                w.then(act, &linear, &own).ok_or_else(unsupported)?
            }
            Static::Unary { ops } => w.unary(ins[0], &ops, &own).ok_or_else(unsupported)?,
            Static::Broadcast { op, a, b } => {
                let onnx = match op {
                    "Add" => "Add",
                    "Subtract" => "Sub",
                    "Multiply" => "Mul",
                    "Divide" => "Div",
                    _ => return Err(unsupported()),
                };
                let rank = a.len().max(b.len());
                let (x, y) = (w.lift_rank(ins[0], a.len(), rank), w.lift_rank(ins[1], b.len(), rank));
                w.node(onnx, &[&x, &y], vec![], Some(&own))
            }
            Static::Reduce { op, len, inner } => {
                let shape = &node.input_shapes[0];
                let k = middle_axis(shape, len, inner).ok_or_else(unsupported)? as i64 + 1;
                let keep = i64::from(node.output_shape.len() == shape.len());
                let onnx = match op {
                    "Sum" => "ReduceSum",
                    "Mean" => "ReduceMean",
                    "Max" => "ReduceMax",
                    "Min" => "ReduceMin",
                    "LogSumExp" => "ReduceLogSumExp",
                    _ => return Err(unsupported()),
                };
                if onnx == "ReduceSum" {
                    let axes = w.constant(vec![1], vec![], vec![k]);
                    w.node(onnx, &[ins[0], &axes], vec![attr_int("keepdims", keep)], Some(&own))
                } else {
                    let attrs = vec![attr_ints("axes", vec![k]), attr_int("keepdims", keep)];
                    w.node(onnx, &[ins[0]], attrs, Some(&own))
                }
            }
            Static::SoftmaxAxis { log, len, inner } => {
                let k = middle_axis(&node.input_shapes[0], len, inner).ok_or_else(unsupported)? as i64 + 1;
                let op = if log { "LogSoftmax" } else { "Softmax" };
                w.node(op, &[ins[0]], vec![attr_int("axis", k)], Some(&own))
            }
            Static::Slice { len, inner, start, end } => {
                let k = middle_axis(&node.input_shapes[0], len, inner).ok_or_else(unsupported)? as i64 + 1;
                let (s0, e0, ax) = (
                    w.constant(vec![1], vec![], vec![start as i64]),
                    w.constant(vec![1], vec![], vec![end as i64]),
                    w.constant(vec![1], vec![], vec![k]),
                );
                w.node("Slice", &[ins[0], &s0, &e0, &ax], vec![], Some(&own))
            }
            Static::MatMul { a, b, ta, tb } => {
                let rank = a.len().max(b.len());
                let mut x = w.lift_rank(ins[0], a.len(), rank);
                let mut y = w.lift_rank(ins[1], b.len(), rank);
                // Each operand's last two axes swapped where it is read transposed.
                let swap = |r: usize| -> Vec<i64> {
                    let mut p: Vec<i64> = (0..=r as i64).collect();
                    p.swap(r - 1, r);
                    p
                };
                if ta {
                    x = w.node("Transpose", &[&x], vec![attr_ints("perm", swap(rank))], None);
                }
                if tb {
                    y = w.node("Transpose", &[&y], vec![attr_ints("perm", swap(rank))], None);
                }
                w.node("MatMul", &[&x, &y], vec![], Some(&own))
            }
            Static::Pool { win, max } => {
                let rank = node.input_shapes[0].len();
                let op = if max { "MaxPool" } else { "AveragePool" };
                w.windowed(op, ins[0], rank, &win, &[], vec![], &own).ok_or_else(unsupported)?
            }
            Static::LeakyRelu { slope } => w.node("LeakyRelu", &[ins[0]], vec![attr_float("alpha", slope)], Some(&own)),
            Static::Rescaling { scale, offset } => {
                let s = w.constant(vec![], vec![scale], vec![]);
                let o = w.constant(vec![], vec![offset], vec![]);
                let m = w.node("Mul", &[ins[0], &s], vec![], None);
                w.node("Add", &[&m, &o], vec![], Some(&own))
            }
            Static::Embedding { mask: None, .. } => {
                w.node("Gather", &[&p("embeddings"), ins[0]], vec![attr_int("axis", 0)], Some(&own))
            }
            Static::Recurrent { cfg, units, .. } if model.mask_source(node.inputs[0]).is_none() => {
                w.recurrent(ins[0], &cfg, &layer.name.to_string(), units, None, &own).ok_or_else(unsupported)?
            }
            Static::Bidirectional { cfg, mode, units, .. } if model.mask_source(node.inputs[0]).is_none() => {
                w.recurrent(ins[0], &cfg, &layer.name.to_string(), units, Some(mode), &own).ok_or_else(unsupported)?
            }
            Static::Resample { form, .. } if node.input_shapes[0].len() >= 2 => {
                let shape = &node.input_shapes[0];
                let (rank, image) = (shape.len(), shape.len() == 3);
                match form {
                    Resampling::Pad([t, b, l, r]) => {
                        // ONNX pads channels-first values here, as kiln's importer reads them:
                        // the channels move to axis 1 and back, around one Pad.
                        let to: Vec<i64> = [0, rank as i64].into_iter().chain(1..rank as i64).collect();
                        let back: Vec<i64> = [0].into_iter().chain(2..=rank as i64).chain([1]).collect();
                        let (begin, end) = if image { (vec![t, l], vec![b, r]) } else { (vec![l], vec![r]) };
                        let pads: Vec<i64> = [0, 0]
                            .into_iter()
                            .chain(begin.iter().map(|&v| v as i64))
                            .chain([0, 0])
                            .chain(end.iter().map(|&v| v as i64))
                            .collect();
                        let pads = w.constant(vec![pads.len() as i64], vec![], pads);
                        let x = w.node("Transpose", &[ins[0]], vec![attr_ints("perm", to)], None);
                        let padded = w.node("Pad", &[&x, &pads], vec![], None);
                        w.node("Transpose", &[&padded], vec![attr_ints("perm", back)], Some(&own))
                    }
                    Resampling::Crop([t, b, l, r]) => {
                        // The kept rows and columns of the channels-last value, one Slice.
                        let (h, wd) = if image { (shape[0], shape[1]) } else { (1, shape[0]) };
                        let (axes, starts, ends) = if image {
                            (vec![1, 2], vec![t as i64, l as i64], vec![(h - b) as i64, (wd - r) as i64])
                        } else {
                            (vec![1], vec![l as i64], vec![(wd - r) as i64])
                        };
                        let n = axes.len() as i64;
                        let starts = w.constant(vec![n], vec![], starts);
                        let ends = w.constant(vec![n], vec![], ends);
                        let axes = w.constant(vec![n], vec![], axes);
                        w.node("Slice", &[ins[0], &starts, &ends, &axes], vec![], Some(&own))
                    }
                    Resampling::Up(sy, sx) => {
                        // Nearest, each output position reading input position ⌊i / scale⌋:
                        // every row and column repeated, as kiln's UpSampling does.
                        let scales: Vec<f32> =
                            if image { vec![1.0, sy as f32, sx as f32, 1.0] } else { vec![1.0, sx as f32, 1.0] };
                        let scales = w.constant(vec![scales.len() as i64], scales, vec![]);
                        let attrs = vec![
                            attr_string("mode", "nearest"),
                            attr_string("coordinate_transformation_mode", "asymmetric"),
                            attr_string("nearest_mode", "floor"),
                        ];
                        w.node("Resize", &[ins[0], "", &scales], attrs, Some(&own))
                    }
                }
            }
            Static::Resample { form: Resampling::Up(1, n), .. } if node.input_shapes[0].len() == 1 => {
                // RepeatVector: [features] to [n, features], a broadcast of one step.
                let one = w.constant(vec![1], vec![], vec![1]);
                let step = w.node("Unsqueeze", &[ins[0], &one], vec![], None);
                let shape = w.constant(vec![3], vec![], vec![1, n as i64, 1]);
                w.node("Expand", &[&step, &shape], vec![], Some(&own))
            }
            Static::Normalization => {
                // (x - mean) / max(sqrt(variance), 1e-7), Keras' floor of the deviation.
                let centred = w.node("Sub", &[ins[0], &p("mean")], vec![], None);
                let sd = w.node("Sqrt", &[&p("variance")], vec![], None);
                let floor = w.scalar(1e-7);
                let sd = w.node("Max", &[&sd, &floor], vec![], None);
                w.node("Div", &[&centred, &sd], vec![], Some(&own))
            }
            Static::PRelu { .. } => w.node("PRelu", &[ins[0], &p("alpha")], vec![], Some(&own)),
            Static::Dot => {
                // Two vectors per sample: their product summed, kept as [1].
                let m = w.node("Mul", &[ins[0], ins[1]], vec![], None);
                let axes = w.constant(vec![1], vec![], vec![1]);
                w.node("ReduceSum", &[&m, &axes], vec![attr_int("keepdims", 1)], Some(&own))
            }
            Static::Permute { order, .. } => {
                let perm: Vec<i64> = [0].into_iter().chain(order.iter().map(|&o| o as i64 + 1)).collect();
                w.node("Transpose", &[ins[0]], vec![attr_ints("perm", perm)], Some(&own))
            }
            Static::Global { max } => {
                let axes: Vec<i64> = (1..node.input_shapes[0].len() as i64).collect();
                let op = if max { "ReduceMax" } else { "ReduceMean" };
                w.node(op, &[ins[0]], vec![attr_ints("axes", axes), attr_int("keepdims", 0)], Some(&own))
            }
            _ => return Err(unsupported()),
        }
    };
    Ok(out)
}

/// The graph of `model` without its initializers, or the layer that has no ONNX form here.
fn graph(model: &Model) -> Result<GraphProto, String> {
    let mut w = Writer { nodes: vec![], count: 0 };
    let mut names: Vec<String> = Vec::with_capacity(model.nodes.len());
    for (i, node) in model.nodes.iter().enumerate() {
        let name = match node.op {
            Op::Input(k) => model.inputs[k].0.clone(),
            Op::Apply(l) => {
                let layer = &model.layers[l];
                let app = model.app_index(i);
                let own = if app == 0 { layer.name.to_string() } else { format!("{}_{app}", layer.name) };
                let ins: Vec<&str> = node.inputs.iter().map(|&j| names[j].as_str()).collect();
                layer_nodes(&mut w, model, i, &ins, &own)?
            }
        };
        names.push(name);
    }
    let input = model
        .inputs
        .iter()
        .zip(&model.int_inputs)
        .map(|((n, node), &int)| value_info(n, &model.nodes[*node].output_shape, int))
        .collect();
    let output = model.outputs.iter().map(|&o| value_info(&names[o], &model.nodes[o].output_shape, false)).collect();
    Ok(GraphProto {
        node: w.nodes,
        name: model.name.to_string(),
        initializer: vec![],
        input,
        output,
        value_info: vec![],
    })
}

/// `save_onnx` for a model: writing the file, or the error naming the layer with no ONNX form.
pub fn expand(model: &Model) -> TokenStream {
    use prost::Message;
    let name = &model.name;
    let doc = "Writes the model as an ONNX file (opset 17, a symbolic batch axis): its graph and its \
               weights as they are now, named as kiln names them (`dense.kernel`), for onnxruntime, \
               TensorRT or a browser.";
    let body = match graph(model) {
        Ok(g) => {
            let head = ModelProto {
                ir_version: 8,
                opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
                producer_name: "kiln".into(),
                graph: None,
            };
            let (head, g) = (
                proc_macro2::Literal::byte_string(&head.encode_to_vec()),
                proc_macro2::Literal::byte_string(&g.encode_to_vec()),
            );
            quote!(::kiln::__private::save_onnx(self, path.as_ref(), #head, #g))
        }
        Err(why) => {
            let why = format!("{why}: save_onnx cannot write {name}");
            quote! {
                let _ = path;
                Err(::kiln::Error::InvalidArgument { name: "model", reason: #why.into() })
            }
        }
    };
    let ty = crate::codegen::type_path(model);
    quote! {
        impl #ty {
            #[doc = #doc]
            pub fn save_onnx(&self, path: impl AsRef<::std::path::Path>) -> ::kiln::Result<()> {
                #body
            }
        }
    }
}
