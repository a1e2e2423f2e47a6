//! `save_onnx` for the models `sequential!` and `functional!` define: the graph, encoded here
//! with the `proto` messages when the model compiles, and the weights appended at run time by
//! the runtime's `save_onnx` as initializers named as kiln names them. Each layer reads its
//! weights in kiln's layouts (Dense's `[in, out]` kernel is MatMul's `B`), so nothing is
//! transposed. Opset 17; a symbolic batch axis.

use proc_macro2::TokenStream;
use quote::quote;

mod attention;
mod masks;
mod math;
mod recurrent;
mod window;
mod writer;

use super::proto::{
    Dimension, GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto, TypeProto, TypeTensor, ValueInfoProto,
    dtype,
};
use crate::ir::{Model, Op, Resampling, Static};
use math::middle_axis;
use writer::{Writer, attr_float, attr_int, attr_ints, pre_activation, window};

/// A tensor's type: float (or int64 ids), a symbolic batch axis then `shape`.
fn value_info(name: &str, shape: &[usize], int: bool) -> ValueInfoProto {
    let mut dim = vec![Dimension { dim_value: None, dim_param: Some("batch".into()) }];
    dim.extend(shape.iter().map(|&d| Dimension { dim_value: Some(d as i64), dim_param: None }));
    let elem_type = if int { dtype::INT64 } else { dtype::FLOAT };
    let tensor_type = TypeTensor { elem_type, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(tensor_type) }) }
}

/// The nodes of application `i` of a layer, reading `ins` (and Keras' masks of their steps,
/// `masks`), its output named `own`.
fn layer_nodes(
    w: &mut Writer,
    model: &Model,
    i: usize,
    (ins, masks): (&[&str], &[Option<String>]),
    own: &str,
) -> Result<String, String> {
    let node = &model.nodes[i];
    let Some(layer) = model.layer_of(i) else { return Err("an input is not a layer".into()) };
    let unsupported = || format!("layer `{}` ({}) has no ONNX export yet", layer.name, layer.kind.class());
    if layer.kind.is_view() {
        let mut dims = vec![0i64];
        dims.extend(node.output_shape.iter().map(|&d| d as i64));
        let shape = w.constant(vec![dims.len() as i64], vec![], dims);
        return Ok(w.node("Reshape", &[ins[0], &shape], vec![], Some(own)));
    }
    let s = layer.kind.onnx(&node.input_shapes, &node.output_shape).ok_or_else(unsupported)?;
    let params = layer.kind.params(&node.input_shapes).unwrap_or_default();
    // Weights are named as kiln names them: the layer's name, or a field's own prefix.
    let prefix = layer.kind.weight_prefix().map_or_else(|| layer.name.to_string(), str::to_string);
    let p = |name: &str| layer.kind.weight_path(name).unwrap_or_else(|| format!("{prefix}.{name}"));
    let has = |name: &str| params.iter().any(|(n, _)| *n == name);
    let cx = Layer { prefix: &prefix, p: &p, has: &has, unsupported: &unsupported };
    let at = At { input_shapes: &node.input_shapes, output_shape: &node.output_shape };
    static_nodes(w, s, &at, &cx, (ins, masks), own)
}

/// The shapes a layer's nodes are written for (one sample's, the batch axis before them).
#[derive(Clone, Copy)]
struct At<'a> {
    input_shapes: &'a [Vec<usize>],
    output_shape: &'a [usize],
}

/// What the nodes of a layer read of it: its weights' names and whether it has one, and its
/// error when a form has no ONNX export here.
struct Layer<'a> {
    prefix: &'a str,
    p: &'a dyn Fn(&str) -> String,
    has: &'a dyn Fn(&str) -> bool,
    unsupported: &'a dyn Fn() -> String,
}

/// The nodes of `s`, what a layer computes on one sample of the shapes `node` gives (see
/// [`layer_nodes`]).
// Long because it is one match arm per `Static` kind, each a few lines of its own (the longer
// ones are `Writer` methods in this module's files).
fn static_nodes(
    w: &mut Writer,
    s: Static,
    node: &At,
    cx: &Layer,
    (ins, masks): (&[&str], &[Option<String>]),
    own: &str,
) -> Result<String, String> {
    let (prefix, p, has, unsupported) = (cx.prefix, cx.p, cx.has, cx.unsupported);
    let own = own.to_string();
    Ok(match s {
        Static::Identity => w.node("Identity", &[ins[0]], vec![], Some(&own)),
        Static::WeightRead => {
            // The value expanded to [batch, ..]: the batch from the input the node reads.
            let shape = w.node("Shape", &[ins[0]], vec![], None);
            let c = |w: &mut Writer, v: Vec<i64>| w.constant(vec![v.len() as i64], vec![], v);
            let (zero, one) = (c(w, vec![0]), c(w, vec![1]));
            let batch = w.node("Slice", &[&shape, &zero, &one], vec![], None);
            let rest = c(w, node.output_shape.iter().map(|&d| d as i64).collect());
            let full = w.node("Concat", &[&batch, &rest], vec![attr_int("axis", 0)], None);
            w.node("Expand", &[&p("value"), &full], vec![], Some(&own))
        }
        Static::TimeDistributed { inner, .. } if matches!(*inner, Static::Dense { .. }) => {
            // A Dense layer on every step: MatMul takes the steps as a leading axis.
            let Static::Dense { act, .. } = *inner else { return Err(unsupported()) };
            let mut h = w.node("MatMul", &[ins[0], &p("kernel")], vec![], None);
            if has("bias") {
                h = w.node("Add", &[&h, &p("bias")], vec![], None);
            }
            w.activation(act, &h, Some(&own)).ok_or_else(unsupported)?
        }
        Static::TimeDistributed { inner, steps } => {
            // Any other layer on every step: the steps joined to the batch axis, the layer's
            // nodes on [batch · steps, ..], then the steps split out again.
            let rest: Vec<Vec<usize>> = node.input_shapes.iter().map(|s| s[1..].to_vec()).collect();
            let c = |w: &mut Writer, v: Vec<i64>| w.constant(vec![v.len() as i64], vec![], v);
            let joined = c(w, [-1].into_iter().chain(rest[0].iter().map(|&d| d as i64)).collect());
            let x = w.node("Reshape", &[ins[0], &joined], vec![], None);
            let each = At { input_shapes: &rest, output_shape: &node.output_shape[1..] };
            let y = static_nodes(w, *inner, &each, cx, (&[&x], &[None]), &format!("{own}_step"))?;
            let dims = [-1, steps as i64].into_iter().chain(node.output_shape[1..].iter().map(|&d| d as i64));
            let split = c(w, dims.collect());
            w.node("Reshape", &[&y, &split], vec![], Some(&own))
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
            let bias = has("bias").then(|| p("bias"));
            w.conv(ins[0], (rank, &win), (&k, bias.as_deref()), groups, act, &own).ok_or_else(unsupported)?
        }
        Static::Depthwise { win, multiplier, act } if node.input_shapes[0].len() == 3 => {
            let (kh, kw) = window(&win).and_then(|m| Some((*m.get("kh")?, *m.get("kw")?))).ok_or_else(unsupported)?;
            let c = node.input_shapes[0][2];
            let k = w.depthwise_kernel(&p("kernel"), [kh as usize, kw as usize, c, multiplier]);
            let bias = has("bias").then(|| p("bias"));
            w.conv(ins[0], (3, &win), (&k, bias.as_deref()), c, act, &own).ok_or_else(unsupported)?
        }
        Static::Separable { win, multiplier, act, .. } if node.input_shapes[0].len() == 3 => {
            // The depthwise Conv (group c), then the pointwise one (1 × 1).
            let (kh, kw) = window(&win).and_then(|m| Some((*m.get("kh")?, *m.get("kw")?))).ok_or_else(unsupported)?;
            let c = node.input_shapes[0][2];
            let k = w.depthwise_kernel(&p("depthwise_kernel"), [kh as usize, kw as usize, c, multiplier]);
            let depth = format!("{own}_depthwise");
            let group = vec![attr_int("group", c as i64)];
            w.windowed("Conv", ins[0], 3, &win, &[&k], group, &depth).ok_or_else(unsupported)?;
            // The pointwise kernel [1, 1, c·m, filters] as a 1 × 1 Conv's [filters, c·m, 1, 1].
            let perm = vec![attr_ints("perm", vec![3, 2, 0, 1])];
            let pk = w.node("Transpose", &[&p("pointwise_kernel")], perm, None);
            let bias = has("bias").then(|| p("bias"));
            let t = w.node("Transpose", &[&depth], vec![attr_ints("perm", vec![0, 3, 1, 2])], None);
            let mut args = vec![t.as_str(), pk.as_str()];
            args.extend(bias.as_deref());
            let y = w.node("Conv", &args, vec![attr_ints("kernel_shape", vec![1, 1])], None);
            let linear = pre_activation(act, &own);
            w.node("Transpose", &[&y], vec![attr_ints("perm", vec![0, 2, 3, 1])], Some(&linear));
            w.then(act, &linear, &own).ok_or_else(unsupported)?
        }
        Static::ConvTranspose { win, act } if node.input_shapes[0].len() == 3 => {
            // kiln's kernel [kh, kw, filters, in] read as ONNX's [in, filters, kh, kw].
            let perm = vec![attr_ints("perm", vec![3, 2, 0, 1])];
            let k = w.node("Transpose", &[&p("kernel")], perm, None);
            let bias = has("bias").then(|| p("bias"));
            let mut extra = vec![k.as_str()];
            extra.extend(bias.as_deref());
            let linear = pre_activation(act, &own);
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
        Static::Embedding { mask, .. } => {
            let e = w.node("Gather", &[&p("embeddings"), ins[0]], vec![attr_int("axis", 0)], Some(&own));
            if mask.is_some() {
                w.mask_of_ids(ins[0], &format!("{own}_mask"));
            }
            e
        }
        Static::Masking { value, .. } => w.masking(ins[0], value, &format!("{own}_mask"), &own),
        Static::Recurrent { cfg, units, .. } => {
            // The inputs after the sequence are its initial_state.
            let mask = masks[0].as_deref().map(|m| (m, node.input_shapes[0][0]));
            w.recurrent(ins[0], &ins[1..], &cfg, prefix, units, None, mask, &own).ok_or_else(unsupported)?
        }
        Static::Bidirectional { cfg, mode, units, .. } => {
            let mask = masks[0].as_deref().map(|m| (m, node.input_shapes[0][0]));
            // The inputs after the sequence are its initial_state, Keras' [fh, (fc,) bh, (bc)].
            w.recurrent(ins[0], &ins[1..], &cfg, prefix, units, Some(mode), mask, &own).ok_or_else(unsupported)?
        }
        Static::Take { start, len } => {
            // One output of a layer of several (kept one after the other in each sample's
            // values): its values sliced from the flattened whole, in its own shape.
            let flat = w.node("Flatten", &[ins[0]], vec![attr_int("axis", 1)], None);
            let c = |w: &mut Writer, v: usize| w.constant(vec![1], vec![], vec![v as i64]);
            let (s, e, axis) = (c(w, start), c(w, start + len), c(w, 1));
            let part = w.node("Slice", &[&flat, &s, &e, &axis], vec![], None);
            let dims: Vec<i64> = [0].into_iter().chain(node.output_shape.iter().map(|&d| d as i64)).collect();
            let shape = w.constant(vec![dims.len() as i64], vec![], dims);
            w.node("Reshape", &[&part, &shape], vec![], Some(&own))
        }
        Static::Resample { form, .. } if node.input_shapes[0].len() >= 2 => {
            w.resample(ins[0], &node.input_shapes[0], form, &own)
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
        Static::Attention { bias, mask, heads, key_dim, value_dim, out, causal, .. } => {
            // Query, value, then the key where one is given, then the attention mask.
            let shapes = &node.input_shapes;
            let data = shapes.len() - usize::from(mask);
            let two = |s: &[usize]| <[usize; 2]>::try_from(s).map_err(|_| unsupported());
            let k = if data > 2 { 2 } else { 1 };
            let (query, value, key) = (two(&shapes[0])?, two(&shapes[1])?, two(&shapes[k])?);
            let h = attention::Heads { heads, key_dim, value_dim, out, bias, causal, query, value, key };
            // The steps' masks of query, value and key (a key's only where one is given).
            let step = |j: usize| masks.get(j).and_then(|m| m.as_deref());
            let steps = [step(0), step(1), if data > 2 { step(2) } else { None }];
            let m = w.attention_mask(steps, mask.then(|| ins[data]));
            w.attention([ins[0], ins[1], ins[k]], m.as_deref(), prefix, &h, &own)
        }
        Static::CategoryRows { depth, count } => w.rows_of_ids(ins[0], depth, count, &own),
        Static::DotAttention { use_scale, causal, additive, tq, tv } => {
            let scale = use_scale.then(|| p("scale"));
            let key = ins.get(2).copied().unwrap_or(ins[1]);
            let step = |j: usize| masks.get(j).and_then(|m| m.as_deref());
            let form = attention::Dot { scale: scale.as_deref(), causal, additive, tq, tv };
            w.dot_attention([ins[0], ins[1], key], [step(0), step(1)], &form, &own)
        }
        Static::Lookup { oov, count } => w.lookup(ins[0], &p("vocabulary"), oov, count, &own),
        Static::Buckets { bins, rows } => {
            // The boundaries at or below each value, counted: its bucket.
            let axis = w.constant(vec![1], vec![], vec![-1]);
            let x = w.node("Unsqueeze", &[ins[0], &axis], vec![], None);
            let at_or_above = w.node("GreaterOrEqual", &[&x, &p("bin_boundaries")], vec![], None);
            let ones = w.node("Cast", &[&at_or_above], vec![attr_int("to", 1)], None);
            let last = w.constant(vec![1], vec![], vec![-1]);
            let keep = vec![attr_int("keepdims", 0)];
            match rows {
                None => w.node("ReduceSum", &[&ones, &last], keep, Some(&own)),
                Some(count) => {
                    let buckets = w.node("ReduceSum", &[&ones, &last], keep, None);
                    let ids = w.node("Cast", &[&buckets], vec![attr_int("to", 7)], None);
                    w.rows_of_ids(&ids, bins, count, &own)
                }
            }
        }
        Static::Permute { order, .. } => {
            let perm: Vec<i64> = [0].into_iter().chain(order.iter().map(|&o| o as i64 + 1)).collect();
            w.node("Transpose", &[ins[0]], vec![attr_ints("perm", perm)], Some(&own))
        }
        Static::Global { max: false } if node.input_shapes[0].len() == 2 && masks[0].is_some() => {
            w.masked_mean(ins[0], masks[0].as_deref().unwrap_or_default(), &own)
        }
        Static::Global { max } => {
            let axes: Vec<i64> = (1..node.input_shapes[0].len() as i64).collect();
            let op = if max { "ReduceMax" } else { "ReduceMean" };
            w.node(op, &[ins[0]], vec![attr_ints("axes", axes), attr_int("keepdims", 0)], Some(&own))
        }
        _ => return Err(unsupported()),
    })
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
                // The mask its inputs carry, where the layer reads one: its maker's `<name>_mask`.
                let masks: Vec<Option<String>> = node
                    .inputs
                    .iter()
                    .map(|&j| model.mask_source(j).filter(|_| layer.kind.uses_mask()))
                    .map(|s| s.map(|s| format!("{}_mask", names[s])))
                    .collect();
                layer_nodes(&mut w, model, i, (&ins, &masks), &own)?
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
    let (path, (_, args, _)) = (crate::codegen::type_path(model), model.generics.split_for_impl());
    expand_or(Ok(model), &model.name, &quote!(#path #args), &model.generics)
}

/// `save_onnx` for `model`, or for a model that cannot be written (`Err`: why), of type `ty`
/// (named `name`, with size parameters `generics`).
pub fn expand_or(
    model: Result<&Model, &str>,
    name: &syn::Ident,
    ty: &TokenStream,
    generics: &syn::Generics,
) -> TokenStream {
    use prost::Message;
    let doc = "Writes the model as an ONNX file (opset 17, a symbolic batch axis): its graph and its \
               weights as they are now, named as kiln names them (`dense.kernel`), for onnxruntime, \
               TensorRT or a browser.";
    let body = match model.map_err(str::to_string).and_then(graph) {
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
    let (ig, _, wg) = generics.split_for_impl();
    quote! {
        impl #ig #ty #wg {
            #[doc = #doc]
            pub fn save_onnx(&self, path: impl AsRef<::std::path::Path>) -> ::kiln::Result<()> {
                #body
            }
        }
    }
}
