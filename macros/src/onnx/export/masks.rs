//! Keras' masks in the graph: the mask an `Embedding(mask_zero = true)` or a `Masking` layer
//! makes (`[batch, steps]`, 1 for a real step and 0 for padding, named `<layer>_mask`), and the
//! layers that read one: the masked mean of `GlobalAveragePooling1D`, attention that skips the
//! padded steps, and recurrent layers that carry their state over them.
//!
//! ONNX's recurrent operators know padding only at the end of a sequence (`sequence_lens`);
//! kiln, as Keras, skips a padded step wherever it is. The graph moves each sequence's real
//! steps to its front, in order (a TopK of `mask · 2T − t` gives their positions), runs the
//! operator on them with `sequence_lens`, and reads each step's output back where kiln has it:
//! the state after the real steps up to it (or from it, reading backwards), zeros before any.

use super::super::proto::NodeProto;
use super::writer::{Writer, attr_int, attr_ints};

impl Writer {
    /// Keras' `mask_zero` mask of the token ids `ids`: 1 where the id is not 0.
    pub(super) fn mask_of_ids(&mut self, ids: &str, name: &str) -> String {
        let zero = self.constant(vec![], vec![], vec![0]);
        let pad = self.node("Equal", &[ids, &zero], vec![], None);
        let real = self.node("Not", &[&pad], vec![], None);
        self.node("Cast", &[&real], vec![attr_int("to", 1)], Some(name))
    }

    /// Keras' `Masking(mask_value)`: a step is real where any feature differs from `value`;
    /// its mask is named `mask`, and `x` with the padded steps zeroed `own`.
    pub(super) fn masking(&mut self, x: &str, value: f32, mask: &str, own: &str) -> String {
        let v = self.scalar(value);
        let same = self.node("Equal", &[x, &v], vec![], None);
        let differs = self.node("Not", &[&same], vec![], None);
        let ones = self.node("Cast", &[&differs], vec![attr_int("to", 1)], None);
        let keep = vec![attr_ints("axes", vec![-1]), attr_int("keepdims", 1)];
        let real = self.node("ReduceMax", &[&ones], keep, None);
        let last = self.constant(vec![1], vec![], vec![-1]);
        self.node("Squeeze", &[&real, &last], vec![], Some(mask));
        self.node("Mul", &[x, &real], vec![], Some(own))
    }

    /// The mean of `x` (`[batch, steps, features]`) over its real steps (at least one counted,
    /// as kiln divides).
    pub(super) fn masked_mean(&mut self, x: &str, mask: &str, own: &str) -> String {
        let last = self.constant(vec![1], vec![], vec![-1]);
        let m = self.node("Unsqueeze", &[mask, &last], vec![], None);
        let kept = self.node("Mul", &[x, &m], vec![], None);
        let steps = self.constant(vec![1], vec![], vec![1]);
        let sum = self.node("ReduceSum", &[&kept, &steps], vec![attr_int("keepdims", 0)], None);
        let count = self.node("ReduceSum", &[&m, &steps], vec![attr_int("keepdims", 0)], None);
        let one = self.scalar(1.0);
        let count = self.node("Max", &[&count, &one], vec![], None);
        self.node("Div", &[&sum, &count], vec![], Some(own))
    }

    /// The attention mask `[batch, Tq, Tv]` (or a shape that broadcasts to it) of the steps'
    /// masks of query (`[batch, Tq]`), value and key (`[batch, Tv]`) and Keras' explicit
    /// `attention_mask`: a query step attends to a key step where all of them are 1.
    pub(super) fn attention_mask(&mut self, steps: [Option<&str>; 3], explicit: Option<&str>) -> Option<String> {
        let mut parts = Vec::new();
        for (k, m) in steps.into_iter().enumerate() {
            if let Some(m) = m {
                // The query's mask along Tq (axis 2 added), the others' along Tv (axis 1).
                let axis = self.constant(vec![1], vec![], vec![if k == 0 { 2 } else { 1 }]);
                parts.push(self.node("Unsqueeze", &[m, &axis], vec![], None));
            }
        }
        parts.extend(explicit.map(str::to_string));
        let mut all = parts.pop()?;
        for p in parts {
            all = self.node("Mul", &[&p, &all], vec![], None);
        }
        Some(all)
    }

    /// `x` (`[batch, steps, ..]`) with each sequence's real steps moved to its front, in order,
    /// and their count as `sequence_lens` (int32).
    pub(super) fn real_steps_first(&mut self, x: &str, mask: &str, steps: usize) -> (String, String) {
        // mask · 2T − t: the real steps first, each group in order of t.
        let big = self.scalar(2.0 * steps as f32);
        let t = self.constant(vec![steps as i64], (0..steps).map(|t| t as f32).collect(), vec![]);
        let scaled = self.node("Mul", &[mask, &big], vec![], None);
        let keys = self.node("Sub", &[&scaled, &t], vec![], None);
        let k = self.constant(vec![1], vec![], vec![steps as i64]);
        self.count += 1;
        let (values, order) = (format!("TopK_{}_values", self.count), format!("TopK_{}_indices", self.count));
        self.nodes.push(NodeProto {
            input: vec![keys, k],
            output: vec![values, order.clone()],
            name: format!("TopK_{}", self.count),
            op_type: "TopK".into(),
            domain: String::new(),
            attribute: vec![attr_int("axis", 1), attr_int("largest", 1), attr_int("sorted", 1)],
        });
        let moved = self.steps_at(x, &order);
        let axes = self.constant(vec![1], vec![], vec![1]);
        let count = self.node("ReduceSum", &[mask, &axes], vec![attr_int("keepdims", 0)], None);
        let lens = self.node("Cast", &[&count], vec![attr_int("to", 6)], None);
        (moved, lens)
    }

    /// `x` (`[batch, steps, features]`) read at `at` (`[batch, steps]`, int64): step `t` of the
    /// result is step `at[t]` of `x`.
    fn steps_at(&mut self, x: &str, at: &str) -> String {
        let last = self.constant(vec![1], vec![], vec![-1]);
        let at = self.node("Unsqueeze", &[at, &last], vec![], None);
        let shape = self.node("Shape", &[x], vec![], None);
        let at = self.node("Expand", &[&at, &shape], vec![], None);
        self.node("GatherElements", &[x, &at], vec![attr_int("axis", 1)], None)
    }

    /// A recurrent output `y` over the real steps moved to the front (`[batch, steps, units]`,
    /// zeros past each sequence's count) read back at every step as kiln gives it: reading
    /// forwards, the state after the real steps up to `t`; reading backwards, the state after
    /// the real steps from `t` on, in input order; where there are none, the `initial` state
    /// (`[batch, units]`), or zeros.
    pub(super) fn outputs_at_every_step(
        &mut self,
        y: &str,
        (mask, initial): (&str, Option<&str>),
        backwards: bool,
    ) -> String {
        let axis = self.constant(vec![], vec![], vec![1]);
        let exclusive = vec![attr_int("exclusive", i64::from(backwards))];
        let seen = self.node("CumSum", &[mask, &axis], exclusive, None);
        if backwards {
            // Read at the number of real steps before t: past the count, a zero row of `y`.
            let at = self.node("Cast", &[&seen], vec![attr_int("to", 7)], None);
            let read = self.steps_at(y, &at);
            let Some(initial) = initial else { return read };
            // The initial state where no real step comes at or after t.
            let steps = self.constant(vec![1], vec![], vec![1]);
            let total = self.node("ReduceSum", &[mask, &steps], vec![attr_int("keepdims", 1)], None);
            let none = self.node("Equal", &[&seen, &total], vec![], None);
            let none = self.node("Cast", &[&none], vec![attr_int("to", 1)], None);
            let last = self.constant(vec![1], vec![], vec![-1]);
            let none = self.node("Unsqueeze", &[&none, &last], vec![], None);
            let h0 = self.node("Unsqueeze", &[initial, &steps], vec![], None);
            let before = self.node("Mul", &[&none, &h0], vec![], None);
            return self.node("Add", &[&read, &before], vec![], None);
        }
        let one = self.scalar(1.0);
        let before = self.node("Sub", &[&seen, &one], vec![], None);
        let zero = self.scalar(0.0);
        let at = self.node("Max", &[&before, &zero], vec![], None);
        let at = self.node("Cast", &[&at], vec![attr_int("to", 7)], None);
        let read = self.steps_at(y, &at);
        // Zeros (or the initial state) where no real step has come yet.
        let any = self.node("Min", &[&seen, &one], vec![], None);
        let last = self.constant(vec![1], vec![], vec![-1]);
        let any = self.node("Unsqueeze", &[&any, &last], vec![], None);
        let kept = self.node("Mul", &[&read, &any], vec![], None);
        let Some(initial) = initial else { return kept };
        let none = self.node("Sub", &[&one, &any], vec![], None);
        let steps = self.constant(vec![1], vec![], vec![1]);
        let h0 = self.node("Unsqueeze", &[initial, &steps], vec![], None);
        let before = self.node("Mul", &[&none, &h0], vec![], None);
        self.node("Add", &[&kept, &before], vec![], None)
    }
}
