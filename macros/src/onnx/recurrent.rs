//! `LSTM` and `GRU` (forward, one layer, as PyTorch and tf2onnx export them) as kiln's LSTM and
//! GRU, and `Gather` of one position of a computed value (`out[:, -1, :]`, `h_n[-1]`).
//!
//! ONNX's sequences are `[steps, batch, features]` (`layout = 0`): the batch axis is recorded on
//! the value, and since kiln stores every value batch first, the Transposes around the operator
//! move nothing. Gates: ONNX orders an LSTM's blocks `i, o, f, c` and a GRU's `z, r, h`; Keras
//! `i, f, c, o` and `z, r, h`. ONNX's two biases (input and recurrent) are one bias of the LSTM,
//! and the `[2, 3 units]` bias of a GRU with `reset_after` (ONNX's `linear_before_reset`).

use super::graph::{Val, Value, identity};
use super::ops::Lowering;
use super::proto::NodeProto;
use super::read;

impl Lowering<'_> {
    /// `LSTM` / `GRU` / `RNN` (SimpleRNN): their outputs `Y` (`[steps, directions, batch, units]`), `Y_h` and `Y_c`
    /// (`[directions, batch, units]`), each that a later node reads. Bidirectional ones are
    /// kiln's `Bidirectional(.., merge_mode = "concat")`, whose `[steps, 2 units]` is ONNX's
    /// `[steps, 2, units]`.
    pub fn recurrent(&mut self, i: usize) -> Result<(), String> {
        let nodes = self.nodes;
        let node = &nodes[i];
        let lstm = node.op_type == "LSTM";
        let x = self.graph_any(node, 0)?;
        let layout = read::int(node, "layout", 0);
        if x.shape.len() != 2 || x.batch != if layout == 0 { 1 } else { 0 } {
            return self.fail("reads a value that is not a sequence [steps, batch, features] (layout 0) or [batch, steps, features] (layout 1)");
        }
        let direction = read::string(node, "direction", "forward");
        let dirs = match direction.as_str() {
            "forward" | "reverse" => 1,
            "bidirectional" => 2,
            _ => 0,
        };
        // ONNX's reverse direction reads the steps back to front, as kiln's `go_backwards`; its
        // `Y` is in the input's order where kiln's is in the order it computed.
        let backwards = direction == "reverse";
        if dirs == 0
            || read::attr(node, "clip").is_some()
            || read::attr(node, "activations").is_some()
            || read::int(node, "input_forget", 0) != 0
        {
            return self.fail(format!("is a {direction} {} with clip, activations or input_forget set; kiln imports forward, reverse and bidirectional ones with the default activations", node.op_type));
        }
        if node.input.get(4).is_some_and(|s| !s.is_empty()) {
            return self.fail("has sequence_lens; kiln imports sequences of one length");
        }
        let (steps, features) = (x.shape[0], x.shape[1]);
        let gates = match node.op_type.as_str() {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let w = self.constant(node, 1)?;
        let units = w.dims.get(1).copied().unwrap_or(0) / gates;
        let linear_before_reset = read::int(node, "linear_before_reset", 0) != 0;
        let weights = self.recurrent_weights(node, dirs, features, units, linear_before_reset)?;
        // initial_h (and an LSTM's initial_c): zeros, or computed values of `units` per sample
        // ([1, batch, units]), Keras' `initial_state`.
        let mut initial = Vec::new();
        for k in [5, 6] {
            match self.input(node, k)? {
                None => {}
                Some(Value::Const(c)) if c.vals.iter().all(|&v| v == 0.0) => {}
                Some(Value::Graph(v))
                    if dirs == 1 && v.hidden.is_none() && v.shape.iter().product::<usize>() == units =>
                {
                    initial.push(self.g.reshape(v.node, &[units])?);
                }
                Some(_) => {
                    return self.fail(
                        "has an initial state kiln does not read: a constant that is not zeros, or one of a bidirectional operator",
                    );
                }
            }
        }
        if !initial.is_empty() && initial.len() != if lstm { 2 } else { 1 } {
            return self.fail("starts from a computed initial_h or initial_c but not both; kiln's LSTM takes both");
        }
        let used = |k: usize| node.output.get(k).is_some_and(|o| !o.is_empty() && self.consumers.contains_key(o));
        let (seq, state) = (used(0), used(1) || (lstm && used(2)));
        if dirs == 2 && (state && seq || used(2)) {
            return self.fail("is bidirectional with its sequence and its states read; kiln imports one of Y and Y_h");
        }
        if backwards && seq {
            return self.fail(
                "is a reverse operator whose sequence Y is read; kiln imports a reverse operator's final states (Y_h, Y_c)",
            );
        }
        let (class, extra) = match node.op_type.as_str() {
            "LSTM" => ("LSTM", String::new()),
            "GRU" => ("GRU", format!(", reset_after = {linear_before_reset}")),
            _ => ("SimpleRNN", String::new()),
        };
        // kiln's return_state where the sequence and a state are read, or an LSTM's cell state.
        let both = (seq && state) || (lstm && used(2));
        let sequences = if both { seq } else { seq || !state };
        let inner = format!(
            "{class}({units}, return_sequences = {sequences}, return_state = {both}, go_backwards = {backwards}{extra})"
        );
        let call = if dirs == 2 { format!("Bidirectional({inner}, merge_mode = \"concat\")") } else { inner };
        let mut spec = self.g.spec(&call)?;
        if !initial.is_empty() {
            spec = spec.with_initial_state().ok_or_else(|| format!("{}: {call} takes no initial state", self.g.at))?;
        }
        let inputs: Vec<usize> = std::iter::once(x.node).chain(initial.iter().copied()).collect();
        let (n, _) = self.g.apply(spec.clone(), &inputs)?;
        let prefixes: &[&str] = if dirs == 2 { &["forward_", "backward_"] } else { &[""] };
        for (prefix, (kernel, recurrent, bias, bias_shape)) in prefixes.iter().zip(weights) {
            let gu = gates * units;
            self.g.weight(n, &format!("{prefix}kernel"), vec![features, gu], kernel);
            self.g.weight(n, &format!("{prefix}recurrent_kernel"), vec![units, gu], recurrent);
            self.g.weight(n, &format!("{prefix}bias"), bias_shape, bias);
        }
        // The outputs kiln computes, as nodes: [sequence or last h, h, c].
        let mut outs: Vec<Option<usize>> = vec![None; 3];
        if both {
            // The first part is Y only when the layer returns its sequence (else its last state,
            // which Y_h gives).
            for (k, slot) in outs.iter_mut().enumerate().take(if lstm { 3 } else { 2 }).skip(usize::from(!seq)) {
                *slot = Some(self.g.apply(crate::layers::part(spec.clone(), k), &[n])?.0);
            }
        } else if seq {
            outs[0] = Some(n);
            // A layer whose last step alone is read may be rebuilt to return it (`last_step`),
            // from its call: one started from given states keeps its sequence.
            if initial.is_empty() {
                self.sequences.insert(n, call.clone());
            }
        } else {
            outs[1] = Some(n);
        }
        let batch_y = if layout == 0 { 2 } else { 0 };
        let batch_h = if layout == 0 { 1 } else { 0 };
        for (k, out) in outs.into_iter().enumerate() {
            let (Some(o), Some(name)) = (out, node.output.get(k).filter(|n| !n.is_empty())) else { continue };
            let (shape, batch) =
                if k == 0 { (vec![steps, dirs, units], batch_y) } else { (vec![dirs, units], batch_h) };
            let v = self.g.reshape(o, &shape)?;
            self.g.values.insert(
                name.clone(),
                Value::Graph(Val { node: v, order: identity(shape.len()), shape, batch, hidden: None }),
            );
        }
        Ok(())
    }

    /// Each direction's kernel, recurrent kernel, bias and the bias's shape, in Keras' gate order.
    #[allow(clippy::type_complexity)]
    fn recurrent_weights(
        &self,
        node: &NodeProto,
        dirs: usize,
        features: usize,
        units: usize,
        linear_before_reset: bool,
    ) -> Result<Vec<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<usize>)>, String> {
        let lstm = node.op_type == "LSTM";
        let gates = match node.op_type.as_str() {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let gu = gates * units;
        let (w, r) = (self.constant(node, 1)?, self.constant(node, 2)?);
        if w.dims != [dirs, gu, features] || r.dims != [dirs, gu, units] || units == 0 {
            return self
                .fail(format!("has weights of dimensions {:?} and {:?} for {features} features", w.dims, r.dims));
        }
        let b = match self.input(node, 3)? {
            None => vec![0f32; dirs * 2 * gu],
            Some(Value::Const(b)) if b.vals.len() == dirs * 2 * gu => b.f32s(),
            Some(_) => return self.fail("has a bias that is not a constant of 2 x gates x units values per direction"),
        };
        // Keras' gate k is ONNX's block blocks[k].
        let blocks: &[usize] = &[0, 2, 3, 1, 0, 1, 2, 0][match gates {
            4 => 0..4,
            3 => 4..7,
            _ => 7..8,
        }];
        let reorder = |m: &[f32], cols: usize| -> Vec<f32> {
            // [gates x units, cols] (ONNX) to [cols, gates x units] (Keras).
            let mut out = vec![0f32; cols * gu];
            for (k, &blk) in blocks.iter().enumerate() {
                for j in 0..units {
                    for c in 0..cols {
                        out[c * gu + k * units + j] = m[(blk * units + j) * cols + c];
                    }
                }
            }
            out
        };
        let (wv, rv) = (w.f32s(), r.f32s());
        let mut out = Vec::new();
        for d in 0..dirs {
            let kernel = reorder(&wv[d * gu * features..(d + 1) * gu * features], features);
            let recurrent = reorder(&rv[d * gu * units..(d + 1) * gu * units], units);
            let b = &b[d * 2 * gu..(d + 1) * 2 * gu];
            let bias_of = |half: usize| -> Vec<f32> {
                blocks.iter().flat_map(|&blk| (0..units).map(move |j| b[half * gu + blk * units + j])).collect()
            };
            let (bias, shape) = if !lstm && linear_before_reset {
                (bias_of(0).into_iter().chain(bias_of(1)).collect(), vec![2, gu])
            } else {
                (bias_of(0).iter().zip(bias_of(1)).map(|(a, c)| a + c).collect(), vec![gu])
            };
            out.push((kernel, recurrent, bias, shape));
        }
        Ok(out)
    }

    /// `Gather` of one position (a scalar index known when the model compiles) along a sample
    /// axis of a computed value: kiln's Slice, the axis then dropped (a view).
    pub fn gather(&mut self, node: &NodeProto) -> Result<Value, String> {
        if let Some(Value::Const(table)) = self.input(node, 0)? {
            return self.embedding(node, &table);
        }
        let x = self.graph_any(node, 0)?;
        let idx = self.constant(node, 1)?;
        let rank = x.shape.len() + 1;
        let axis = read::int(node, "axis", 0);
        let full = if axis < 0 { axis + rank as i64 } else { axis } as usize;
        if full == x.batch || full >= rank {
            return self
                .fail(format!("gathers along axis {axis}, the batch axis or none; kiln gathers along a sample axis"));
        }
        if !idx.dims.is_empty() || idx.vals.len() != 1 {
            return self.fail(format!("gathers indices of dimensions {:?}; kiln imports Gather of one position (an Embedding needs integer inputs, not yet imported)", idx.dims));
        }
        let a = full - usize::from(full > x.batch);
        let d = x.shape[a] as i64;
        let i = idx.vals[0] as i64;
        let i = if i < 0 { i + d } else { i };
        if !(0..d).contains(&i) {
            return self.fail(format!("gathers position {} of an axis of {d}", idx.vals[0]));
        }
        let stored = x.order.iter().position(|&b| b == a).unwrap_or(a);
        let mut node_out = x.node;
        if let Some(n) = self.last_step(node, &x, a, i == d - 1)? {
            node_out = n;
        } else if d > 1 {
            let spec = crate::layers::slice(stored as i64 + 1, i as usize, i as usize + 1);
            node_out = self.g.apply(spec, &[x.node])?.0;
        }
        let mut shape = x.shape.clone();
        shape.remove(a);
        if shape.is_empty() {
            return self.fail("leaves one number per sample; kiln keeps at least one axis besides the batch");
        }
        let order: Vec<usize> = x.order.iter().filter(|&&b| b != a).map(|&b| b - usize::from(b > a)).collect();
        let batch = x.batch - usize::from(full < x.batch);
        let v = Val { node: node_out, shape, order, batch, hidden: None };
        let n = self.g.reshape(node_out, &v.stored())?;
        Ok(Value::Graph(Val { node: n, ..v }))
    }

    /// For `Gather` of the last step of a recurrent layer's sequence that nothing else reads
    /// (`out[:, -1, :]`): the layer rebuilt to return its last step, `[units]`, so that it
    /// computes no sequence to slice; its sequence's views are left to be pruned.
    fn last_step(&mut self, node: &NodeProto, x: &Val, axis: usize, last: bool) -> Result<Option<usize>, String> {
        let mut base = x.node;
        let mut chain = vec![base];
        while let crate::ir::Op::Apply(l) = self.g.nodes[base].op
            && self.g.layers[l].kind.is_view()
        {
            base = self.g.nodes[base].inputs[0];
            chain.push(base);
        }
        let Some(call) = self.sequences.get(&base).cloned() else { return Ok(None) };
        // The steps: the first sample axis of the sequence, wherever the views put it.
        let stored_steps = self.g.nodes[base].output_shape.first().copied();
        let steps_axis = x.shape.get(axis).copied() == stored_steps && x.order.first() == Some(&axis);
        let sole = chain.iter().all(|&n| {
            let names = self.g.values.iter().filter(|(_, v)| matches!(v, Value::Graph(v) if v.node == n));
            names.map(|(k, _)| k).all(|k| self.consumers.get(k).is_none_or(|u| u.len() <= 1))
        }) && node.input.first().is_some_and(|n| self.consumers.get(n).is_some_and(|u| u.len() == 1));
        if !last || !steps_axis || !sole {
            return Ok(None);
        }
        let crate::ir::Op::Apply(l) = self.g.nodes[base].op else { return Ok(None) };
        let spec = self.g.spec(&call.replace("return_sequences = true", "return_sequences = false"))?;
        let out = spec.output_shape(&self.g.nodes[base].input_shapes).map_err(|e| format!("{}: {e}", self.g.at))?;
        self.g.layers[l].kind = spec;
        self.g.nodes[base].output_shape = out;
        self.sequences.remove(&base);
        Ok(Some(base))
    }

    /// `Gather(table, ids)` with a known `[vocabulary, features]` table and computed ids (an
    /// integer input): kiln's Embedding.
    fn embedding(&mut self, node: &NodeProto, table: &super::read::Const) -> Result<Value, String> {
        let ids = self.graph(node, 1)?;
        if read::int(node, "axis", 0) != 0 || table.dims.len() != 2 {
            return self.fail(format!(
                "gathers rows of a constant of dimensions {:?} along axis {}; kiln imports an Embedding's \
                 [vocabulary, features] table gathered by rows",
                table.dims,
                read::int(node, "axis", 0)
            ));
        }
        let (vocab, features) = (table.dims[0], table.dims[1]);
        let spec = self.g.spec(&format!("Embedding({vocab}, {features})"))?;
        let (n, out) = self.g.apply(spec, &[ids.node])?;
        self.g.weight(n, "embeddings", vec![vocab, features], table.f32s());
        Ok(Value::Graph(Val { node: n, order: identity(out.len()), shape: out, batch: 0, hidden: None }))
    }
}
