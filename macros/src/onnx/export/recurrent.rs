//! Recurrent layers: ONNX's LSTM, GRU and RNN (forward, reverse or bidirectional), their gates
//! reordered from Keras' to ONNX's by nodes on the weights.

use proc_macro2::TokenStream;

use super::super::proto::NodeProto;
use super::writer::{Writer, attr_int, attr_ints, attr_string};

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
    pub(super) fn gate_matrix(&mut self, m: &str, gates: usize, units: usize, order: &[usize]) -> String {
        let t = self.node("Transpose", &[m], vec![attr_ints("perm", vec![1, 0])], None);
        let r = self.reorder(&t, gates, units, order);
        let zero = self.constant(vec![1], vec![], vec![0]);
        self.node("Unsqueeze", &[&r, &zero], vec![], None)
    }

    /// The blocks of `units` rows of `x` in `order` (nothing to do for the identity).
    pub(super) fn reorder(&mut self, x: &str, gates: usize, units: usize, order: &[usize]) -> String {
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

    /// A recurrent layer on `x` (`[batch, steps, features]`), started from the states
    /// `initial` (`[batch, units]` each; none: zeros): ONNX's LSTM, GRU or RNN on `[steps,
    /// batch, features]`, its weights reordered in the graph; `None` where it has no form here
    /// (other activations). `merge`: a Bidirectional wrapper's merge mode (its weights
    /// `forward_kernel`, `backward_kernel`, ..): one bidirectional operator, the two directions'
    /// outputs merged after it. With `return_state`, the output is kiln's: the sequence (or the
    /// last state) then the final states, `[batch, rows, units]`, which the parts slice.
    /// `mask`: Keras' mask of the input's steps and their number (see `masks.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recurrent(
        &mut self,
        x: &str,
        initial: &[&str],
        cfg: &TokenStream,
        layer: &str,
        units: usize,
        merge: Option<&str>,
        mask: Option<(&str, usize)>,
        out: &str,
    ) -> Option<String> {
        let r = recurrence(cfg)?;
        let backwards = r.go_backwards && merge.is_none();
        let tanh_sigmoid = r.activations == ("Tanh".into(), "Sigmoid".into());
        if (r.go_backwards && !backwards) || !tanh_sigmoid {
            return None;
        }
        // A Bidirectional layer's outputs before each direction's first real step would be
        // that direction's initial state, which the reading back does not give.
        if mask.is_some() && !initial.is_empty() && merge.is_some() {
            return None;
        }
        // With a mask, the real steps of each sequence first, and their count.
        let (x, lens) = match mask {
            Some((m, steps)) => {
                let (x, lens) = self.real_steps_first(x, m, steps);
                (x, Some(lens))
            }
            None => (x.to_string(), None),
        };
        let x = x.as_str();

        let (op, gates, order): (&str, usize, &[usize]) = match r.cell.as_str() {
            "Lstm" => ("LSTM", 4, &[0, 3, 1, 2]),
            "Gru" => ("GRU", 3, &[0, 1, 2]),
            "Simple" => ("RNN", 1, &[0]),
            _ => return None,
        };
        let dirs: &[&str] = if merge.is_some() { &["forward_", "backward_"] } else { &[""] };
        let [w, rk, b] = self.operator_weights(layer, dirs, (gates, units, order), r.reset_after);
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
        let mut input = vec![xt, w, rk, b];
        // ONNX's sequence_lens (empty without a mask), then initial_h (and initial_c).
        match (lens, initial.is_empty()) {
            (Some(lens), _) => input.push(lens),
            (None, false) => input.push(String::new()),
            (None, true) => {}
        }
        if !initial.is_empty() {
            input.extend(self.initial_states(initial, dirs.len())?);
        }
        self.count += 1;
        let (y, yh) = (format!("{op}_{}_Y", self.count), format!("{op}_{}_Y_h", self.count));
        let mut output = vec![y.clone(), yh.clone()];
        if r.return_state && op == "LSTM" {
            output.push(format!("{op}_{}_Y_c", self.count));
        }
        let states = output[1..].to_vec();
        // With return_state the output above is the first part of kiln's; the states follow.
        let (full, out) = (out, if r.return_state { format!("{out}_output") } else { out.to_string() });
        let out = out.as_str();
        self.nodes.push(NodeProto {
            input,
            output,
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
        // Where a sequence's steps are read back, with the state before its first real step.
        let mask = mask.filter(|_| r.return_sequences).map(|(m, _)| (m, initial.first().copied()));
        if r.return_state && merge.is_none() {
            return Some(self.with_states(value, &states, (r.return_sequences, backwards, mask), full));
        }
        let Some(mode) = merge else {
            let axis = self.constant(vec![1], vec![], vec![dir_axis]);
            let s = self.node("Squeeze", &[value, &axis], vec![], last);
            if !r.return_sequences {
                return Some(s);
            }
            if let Some(m) = mask {
                // Each step's output read back from the real steps' (see `masks.rs`).
                let t = self.node("Transpose", &[&s], vec![attr_ints("perm", vec![1, 0, 2])], None);
                let o = self.outputs_at_every_step(&t, m, backwards);
                let o = if backwards { self.steps_reversed(&o, 1) } else { o };
                return Some(self.node("Identity", &[&o], vec![], Some(out)));
            }
            // `go_backwards` returns its outputs in the order it computed them, from the
            // last step: ONNX's reverse direction aligns them with the input, so they are
            // read back to front.
            let s = if backwards { self.steps_reversed(&s, 0) } else { s };
            return Some(self.node("Transpose", &[&s], vec![attr_ints("perm", vec![1, 0, 2])], Some(out)));
        };
        // Batch first ([batch, steps, 2, units] or [batch, 2, units]).
        let t = match mask {
            Some((m, _)) => self.directions_at_every_step(value, m),
            None => self.node("Transpose", &[value], vec![attr_ints("perm", to_batch_first.clone())], None),
        };
        let merged = self.merged(&t, mode, (to_batch_first.len(), units), out)?;
        if !r.return_state {
            return Some(merged);
        }
        Some(self.with_both_states(&merged, &states, full))
    }

    /// The states `initial` (`[batch, units]` each) as ONNX's `initial_h` (and `initial_c`),
    /// `[directions, batch, units]`: a Bidirectional layer's are Keras' `[fh, (fc,) bh, (bc)]`,
    /// each kind stacked.
    fn initial_states(&mut self, initial: &[&str], directions: usize) -> Option<Vec<String>> {
        let per = initial.len() / directions;
        let mut inputs = Vec::new();
        for k in 0..per {
            let mut parts = Vec::new();
            for d in 0..directions {
                let zero = self.constant(vec![1], vec![], vec![0]);
                parts.push(self.node("Unsqueeze", &[initial[d * per + k], &zero], vec![], None));
            }
            inputs.push(match &parts[..] {
                [one] => one.clone(),
                [f, b] => self.node("Concat", &[f, b], vec![attr_int("axis", 0)], None),
                _ => return None,
            });
        }
        Some(inputs)
    }

    /// A Bidirectional layer's `return_state` value: in Keras' order, the `merged` output, then
    /// the forward direction's final `states`, then the backward one's, each sample's values one
    /// after the other.
    fn with_both_states(&mut self, merged: &str, states: &[String], out: &str) -> String {
        let mut parts = vec![self.node("Flatten", &[merged], vec![attr_int("axis", 1)], None)];
        let axis = self.constant(vec![1], vec![], vec![0]);
        for k in 0..2 {
            for s in states {
                let c = |w: &mut Self, v: i64| w.constant(vec![1], vec![], vec![v]);
                let (start, end) = (c(self, k), c(self, k + 1));
                let d = self.node("Slice", &[s, &start, &end, &axis], vec![], None);
                parts.push(self.node("Squeeze", &[&d, &axis], vec![], None));
            }
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &parts, vec![attr_int("axis", 1)], Some(out))
    }

    /// A bidirectional operator's two directions `t` (batch first, `rank` axes, the directions
    /// on the one before the units) merged by `mode` into `out`.
    fn merged(&mut self, t: &str, mode: &str, (rank, units): (usize, usize), out: &str) -> Option<String> {
        Some(match mode {
            "Concat" => {
                // The directions next to the units, then [.., 2 · units].
                let mut dims = vec![0i64; rank - 2];
                dims.push(2 * units as i64);
                let shape = self.constant(vec![dims.len() as i64], vec![], dims);
                self.node("Reshape", &[t, &shape], vec![], Some(out))
            }
            mode => {
                // The two directions merged along their axis, which goes.
                let axis = rank as i64 - 2;
                let axes = self.constant(vec![1], vec![], vec![axis]);
                match mode {
                    "Sum" => self.node("ReduceSum", &[t, &axes], vec![attr_int("keepdims", 0)], Some(out)),
                    "Ave" => {
                        let attrs = vec![attr_ints("axes", vec![axis]), attr_int("keepdims", 0)];
                        self.node("ReduceMean", &[t], attrs, Some(out))
                    }
                    "Mul" => {
                        let part = |w: &mut Self, k: i64| {
                            let (s, e) =
                                (w.constant(vec![1], vec![], vec![k]), w.constant(vec![1], vec![], vec![k + 1]));
                            w.node("Slice", &[t, &s, &e, &axes], vec![], None)
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

    /// A recurrent operator's `W`, `R` and `B` from kiln's weights of the layer `layer` (each
    /// direction's under its prefix in `dirs`): gates reordered to ONNX's `order`, the
    /// directions stacked on axis 0.
    fn operator_weights(
        &mut self,
        layer: &str,
        dirs: &[&str],
        (gates, units, order): (usize, usize, &[usize]),
        reset_after: bool,
    ) -> [String; 3] {
        let gu = gates * units;
        let mut weights: [Vec<String>; 3] = Default::default();
        for dir in dirs {
            let p = |name: &str| format!("{layer}.{dir}{name}");
            weights[0].push(self.gate_matrix(&p("kernel"), gates, units, order));
            weights[1].push(self.gate_matrix(&p("recurrent_kernel"), gates, units, order));
            // ONNX's bias is the input one then the recurrent one; kiln's one bias is the first.
            weights[2].push(if reset_after {
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
        weights.map(|v| match &v[..] {
            [one] => one.clone(),
            both => {
                let both: Vec<&str> = both.iter().map(String::as_str).collect();
                self.node("Concat", &both, vec![attr_int("axis", 0)], None)
            }
        })
    }

    /// A bidirectional operator's `Y` (`[steps, 2, batch, units]`) over the real steps moved to
    /// the front, read back at every step: `[batch, steps, 2, units]`.
    fn directions_at_every_step(&mut self, y: &str, mask: &str) -> String {
        let axis = self.constant(vec![1], vec![], vec![1]);
        let mut dirs = Vec::new();
        for (k, backwards) in [(0, false), (1, true)] {
            let c = |w: &mut Self, v: i64| w.constant(vec![1], vec![], vec![v]);
            let (s, e) = (c(self, k), c(self, k + 1));
            let d = self.node("Slice", &[y, &s, &e, &axis], vec![], None);
            let d = self.node("Squeeze", &[&d, &axis], vec![], None);
            let d = self.node("Transpose", &[&d], vec![attr_ints("perm", vec![1, 0, 2])], None);
            // The backward direction's outputs are kept in input order, as Bidirectional does.
            let d = self.outputs_at_every_step(&d, (mask, None), backwards);
            let two = self.constant(vec![1], vec![], vec![2]);
            dirs.push(self.node("Unsqueeze", &[&d, &two], vec![], None));
        }
        self.node("Concat", &[&dirs[0], &dirs[1]], vec![attr_int("axis", 2)], None)
    }

    /// `x` read back to front along `axis`.
    fn steps_reversed(&mut self, x: &str, axis: i64) -> String {
        let c = |w: &mut Self, v: i64| w.constant(vec![1], vec![], vec![v]);
        let (start, end, axes, step) = (c(self, -1), c(self, i64::MIN), c(self, axis), c(self, -1));
        self.node("Slice", &[x, &start, &end, &axes, &step], vec![], None)
    }

    /// A forward operator's output `value` (`Y`, or `Y_h` for the last state) followed by its
    /// final `states`, as kiln keeps a `return_state` layer's value: `[batch, rows, units]`,
    /// the sequence's steps (back to front for `go_backwards`; with a `mask`, read back from the
    /// real steps') or the last state, then each state, batch first.
    fn with_states(
        &mut self,
        value: &str,
        states: &[String],
        (sequence, backwards, mask): (bool, bool, Option<(&str, Option<&str>)>),
        out: &str,
    ) -> String {
        let first = if let Some(m) = mask {
            let axis = self.constant(vec![1], vec![], vec![1]);
            let s = self.node("Squeeze", &[value, &axis], vec![], None);
            let t = self.node("Transpose", &[&s], vec![attr_ints("perm", vec![1, 0, 2])], None);
            let o = self.outputs_at_every_step(&t, m, backwards);
            if backwards { self.steps_reversed(&o, 1) } else { o }
        } else if sequence {
            let yt = self.node("Transpose", &[value], vec![attr_ints("perm", vec![2, 0, 1, 3])], None);
            let axis = self.constant(vec![1], vec![], vec![2]);
            let seq = self.node("Squeeze", &[&yt, &axis], vec![], None);
            if backwards { self.steps_reversed(&seq, 1) } else { seq }
        } else {
            self.node("Transpose", &[value], vec![attr_ints("perm", vec![1, 0, 2])], None)
        };
        let mut parts = vec![first];
        for s in states {
            parts.push(self.node("Transpose", &[s], vec![attr_ints("perm", vec![1, 0, 2])], None));
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &parts, vec![attr_int("axis", 1)], Some(out))
    }
}
