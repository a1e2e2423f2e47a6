//! Keras' MultiHeadAttention as ONNX nodes (opset 17 has no attention operator): the three
//! projections as MatMuls on the kernels reshaped to `[features, heads · width]`, the heads
//! split out by Reshape and Transpose, the scaled scores, the masks as a Where, a Softmax over
//! the key steps, and the output projection. The weights stay in kiln's layouts and names.

use super::writer::{Writer, attr_int, attr_ints};

/// The sizes of one MultiHeadAttention application, as `infer` describes it.
pub(super) struct Heads {
    pub heads: usize,
    pub key_dim: usize,
    pub value_dim: usize,
    pub out: usize,
    pub bias: bool,
    pub causal: bool,
    /// `[steps, features]` of the query, the value and the key.
    pub query: [usize; 2],
    pub value: [usize; 2],
    pub key: [usize; 2],
}

/// Keras' score for a step a query may not attend to: added to every such score alike, so a
/// query that may attend to nothing spreads its weight evenly.
const MASKED: f32 = -1e9;

/// Keras' `Attention` or `AdditiveAttention`: its scale weight's name (with `use_scale`), its
/// flags and its query and value steps.
pub(super) struct Dot<'a> {
    pub(super) scale: Option<&'a str>,
    pub(super) causal: bool,
    pub(super) additive: bool,
    pub(super) tq: usize,
    pub(super) tv: usize,
}

impl Writer {
    /// `x [batch, steps, features]` (`io`) projected by `{layer}.{part}_kernel` (`[features,
    /// heads, width]`) and its bias, then `[batch, heads, steps, width]`, or with `keys_last`
    /// the key layout `[batch, heads, width, steps]`.
    fn project(
        &mut self,
        x: &str,
        layer: &str,
        h: &Heads,
        (part, width, io): (&str, usize, [usize; 2]),
        keys_last: bool,
    ) -> String {
        let [steps, features] = io;
        let flat = self.constant(vec![2], vec![], vec![features as i64, (h.heads * width) as i64]);
        let kernel = self.node("Reshape", &[&format!("{layer}.{part}_kernel"), &flat], vec![], None);
        let mut y = self.node("MatMul", &[x, &kernel], vec![], None);
        if h.bias {
            let row = self.constant(vec![1], vec![], vec![(h.heads * width) as i64]);
            let bias = self.node("Reshape", &[&format!("{layer}.{part}_bias"), &row], vec![], None);
            y = self.node("Add", &[&y, &bias], vec![], None);
        }
        let split = self.constant(vec![4], vec![], vec![0, steps as i64, h.heads as i64, width as i64]);
        let y = self.node("Reshape", &[&y, &split], vec![], None);
        let perm = if keys_last { vec![0, 2, 3, 1] } else { vec![0, 2, 1, 3] };
        self.node("Transpose", &[&y], vec![attr_ints("perm", perm)], None)
    }

    /// Keras' `Attention` (`q · kᵀ`, times the scalar `scale`) or `AdditiveAttention` (`Σ_d
    /// scale_d · tanh(q_d + k_d)`) of `query` over `value` (keyed by `key`), as kiln computes
    /// them: a padded value step (`masks[1]`) or a later one (causal) has 1e9 taken from its
    /// score, once; a padded query step (`masks[0]`) outputs zeros.
    pub(super) fn dot_attention(
        &mut self,
        [query, value, key]: [&str; 3],
        masks: [Option<&str>; 2],
        form: &Dot,
        own: &str,
    ) -> String {
        let mut scores = if form.additive {
            let (two, one) = (self.constant(vec![1], vec![], vec![2]), self.constant(vec![1], vec![], vec![1]));
            let q = self.node("Unsqueeze", &[query, &two], vec![], None);
            let k = self.node("Unsqueeze", &[key, &one], vec![], None);
            let sum = self.node("Add", &[&q, &k], vec![], None);
            let mut t = self.node("Tanh", &[&sum], vec![], None);
            if let Some(s) = form.scale {
                t = self.node("Mul", &[&t, s], vec![], None);
            }
            let last = self.constant(vec![1], vec![], vec![-1]);
            self.node("ReduceSum", &[&t, &last], vec![attr_int("keepdims", 0)], None)
        } else {
            let kt = self.node("Transpose", &[key], vec![attr_ints("perm", vec![0, 2, 1])], None);
            let s = self.node("MatMul", &[query, &kt], vec![], None);
            match form.scale {
                Some(scale) => self.node("Mul", &[&s, scale], vec![], None),
                None => s,
            }
        };
        // 1 where a score is masked: the value's padding, the causal mask, or both.
        let mut off: Option<String> = None;
        if let Some(m) = masks[1] {
            let one = self.scalar(1.0);
            let pad = self.node("Sub", &[&one, m], vec![], None);
            let axis = self.constant(vec![1], vec![], vec![1]);
            off = Some(self.node("Unsqueeze", &[&pad, &axis], vec![], None));
        }
        if form.causal {
            let (tq, tv) = (form.tq, form.tv);
            let later: Vec<f32> = (0..tq).flat_map(|a| (0..tv).map(move |c| if c > a { 1.0 } else { 0.0 })).collect();
            let c = self.constant(vec![tq as i64, tv as i64], later, vec![]);
            off = Some(match off {
                Some(pad) => self.node("Max", &[&pad, &c], vec![], None),
                None => c,
            });
        }
        if let Some(off) = off {
            let big = self.scalar(-MASKED);
            let minus = self.node("Mul", &[&off, &big], vec![], None);
            scores = self.node("Sub", &[&scores, &minus], vec![], None);
        }
        let weights = self.node("Softmax", &[&scores], vec![attr_int("axis", -1)], None);
        match masks[0] {
            None => self.node("MatMul", &[&weights, value], vec![], Some(own)),
            Some(m) => {
                let out = self.node("MatMul", &[&weights, value], vec![], None);
                let last = self.constant(vec![1], vec![], vec![-1]);
                let keep = self.node("Unsqueeze", &[m, &last], vec![], None);
                self.node("Mul", &[&out, &keep], vec![], Some(own))
            }
        }
    }

    /// The attention of `query` over `value` (and `key`, else the value), with Keras'
    /// `attention_mask` `mask` (`[batch, Tq, Tv]`, attending where it is not 0) and the causal
    /// mask: its output named `own`.
    pub(super) fn attention(
        &mut self,
        [query, value, key]: [&str; 3],
        mask: Option<&str>,
        layer: &str,
        h: &Heads,
        own: &str,
    ) -> String {
        let (tq, tv) = (h.query[0], h.value[0]);
        let q = self.project(query, layer, h, ("query", h.key_dim, h.query), false);
        // Keras scales the projected query by 1 / √key_dim before the product.
        let scale = self.scalar((1.0 / (h.key_dim as f64).sqrt()) as f32);
        let q = self.node("Mul", &[&q, &scale], vec![], None);
        let k = self.project(key, layer, h, ("key", h.key_dim, h.key), true);
        let v = self.project(value, layer, h, ("value", h.value_dim, h.value), false);
        let mut scores = self.node("MatMul", &[&q, &k], vec![], None);
        if h.causal {
            // The steps after each query's own, as PyTorch writes a causal mask: a constant
            // added to the scores. Every query sees at least the first key step, so each row's
            // softmax is over the steps it sees, whatever the scores' size.
            let add: Vec<f32> = (0..tq).flat_map(|i| (0..tv).map(move |j| if j <= i { 0.0 } else { MASKED })).collect();
            let c = self.constant(vec![tq as i64, tv as i64], add, vec![]);
            scores = self.node("Add", &[&scores, &c], vec![], None);
        }
        if let Some(m) = mask {
            // Keras' attention_mask [batch, Tq, Tv]: the score itself where it is not 0, else
            // -1e9 for every head (a query that may attend to nothing spreads its weight evenly).
            let zero = self.scalar(0.0);
            let off = self.node("Equal", &[m, &zero], vec![], None);
            let axis = self.constant(vec![1], vec![], vec![1]);
            let off = self.node("Unsqueeze", &[&off, &axis], vec![], None);
            let masked = self.scalar(MASKED);
            scores = self.node("Where", &[&off, &masked, &scores], vec![], None);
        }
        let weights = self.node("Softmax", &[&scores], vec![attr_int("axis", -1)], None);
        let heads = self.node("MatMul", &[&weights, &v], vec![], None);
        let steps_first = self.node("Transpose", &[&heads], vec![attr_ints("perm", vec![0, 2, 1, 3])], None);
        let joined = self.constant(vec![3], vec![], vec![0, tq as i64, (h.heads * h.value_dim) as i64]);
        let o = self.node("Reshape", &[&steps_first, &joined], vec![], None);
        let flat = self.constant(vec![2], vec![], vec![(h.heads * h.value_dim) as i64, h.out as i64]);
        let kernel = self.node("Reshape", &[&format!("{layer}.attention_output_kernel"), &flat], vec![], None);
        if h.bias {
            let y = self.node("MatMul", &[&o, &kernel], vec![], None);
            self.node("Add", &[&y, &format!("{layer}.attention_output_bias")], vec![], Some(own))
        } else {
            self.node("MatMul", &[&o, &kernel], vec![], Some(own))
        }
    }
}
