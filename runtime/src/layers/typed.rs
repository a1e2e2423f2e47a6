//! Sequence layers with their shapes in their types, for the fields of a `#[kiln::model]` struct
//! (whose shape rule is `Shaped`'s: the last axis `IN` wide in, `OUT` wide out, the other axes
//! kept): `Embed<V, D>` reads ids `[.., 1]` and writes vectors `[.., D]`; `LstmSeq<F, U>`,
//! `GruSeq<F, U>` and `SimpleRnnSeq<F, U>` read `[T, F]` and write every step's state `[T, U]`
//! (Keras' `return_sequences = True`, defaults otherwise); `LayerNormalization<F>` normalises
//! the last axis; `BiLstmSeq<F, U>` and `BiGruSeq<F, U>` read `[T, F]` both ways and write
//! `[T, 2U]` (Keras' `Bidirectional(.., return_sequences = True)`, concatenated);
//! `SelfAttention<D, H, K, CAUSAL>` is `MultiHeadAttention(H, K)` applied to `(x, x)`, `[T, D]`
//! to `[T, D]`, and `CrossAttention<DQ, DV, H, K, CAUSAL>` the same applied to `(query, value)`
//! (`self.cross(q, v)`); both take an `attention_mask` as their last input. `sequential!` and
//! `functional!` take the Keras-named layers instead.

use rand::rngs::StdRng;

use super::{
    AttentionConfig, BackwardOpts, Bidirectional, BidirectionalBuffers, Cell, Ctx, Embedding, EmbeddingBuffers, Gate,
    Init, Layer, LayerNorm, LayerNormBuffers, MergeMode, MultiHeadAttention, Param, Recurrent, RecurrentBuffers,
    RecurrentConfig, Shaped, sized,
};
use super::traits::InputRule;

/// Keras' `Embedding(V, D)` as a field: ids `[.., 1]` (an `Ids<T, 1>` input) to vectors `[.., D]`.
#[derive(Clone, Debug)]
pub struct Embed<const V: usize, const D: usize> {
    /// The table and its buffers.
    pub layer: Embedding,
}

impl<const V: usize, const D: usize> Init for Embed<V, D> {
    fn init(rng: &mut StdRng) -> Self {
        Embed { layer: Embedding::new(V, D, rng) }
    }
}

impl<const V: usize, const D: usize> Shaped for Embed<V, D> {
    const IN: usize = 1;
    const OUT: usize = D;
    const KIND: &'static str = "Embedding";
    const PARAMS: usize = V * D;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[("embeddings", &[V, D])]);
    const IDS: Option<usize> = Some(V);
}

field_layer!([const V: usize, const D: usize] Embed<V, D>, EmbeddingBuffers);

macro_rules! recurrent_field {
    ($(#[$doc:meta])* $ty:ident, $cell:expr, $kind:literal, $gates:literal, $bias_rows:literal, $more:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty<const F: usize, const U: usize> {
            /// The recurrent layer (its steps follow the input).
            pub layer: Recurrent,
        }

        impl<const F: usize, const U: usize> Init for $ty<F, U> {
            fn init(rng: &mut StdRng) -> Self {
                let cfg = RecurrentConfig {
                    cell: $cell,
                    steps: 1,
                    features: F,
                    units: U,
                    activation: Gate::Tanh,
                    recurrent_activation: Gate::Sigmoid,
                    use_bias: true,
                    return_sequences: true,
                    return_state: false,
                    go_backwards: false,
                    dropout: 0.0,
                    recurrent_dropout: 0.0,
                };
                $ty { layer: Recurrent::new(cfg, rng) }
            }
        }

        impl<const F: usize, const U: usize> Shaped for $ty<F, U> {
            const IN: usize = F;
            const OUT: usize = U;
            const KIND: &'static str = $kind;
            const PARAMS: usize = $gates * U * (F + U + $bias_rows);
            const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[
                ("kernel", &[F, $gates * U]),
                ("recurrent_kernel", &[U, $gates * U]),
                ("bias", if $bias_rows == 2 { &[2, $gates * U] } else { &[$gates * U] }),
            ]);
            const MORE_INPUTS: &'static [InputRule] = $more;
        }

        field_layer!([const F: usize, const U: usize] $ty<F, U>, RecurrentBuffers);
    };
}

recurrent_field!(
    /// Keras' `LSTM(U, return_sequences = True)` as a field: `[T, F]` to `[T, U]`.
    LstmSeq, Cell::Lstm, "LSTM", 4, 1, &[]
);
recurrent_field!(
    /// Keras' `GRU(U, return_sequences = True)` (`reset_after`) as a field: `[T, F]` to `[T, U]`;
    /// `self.gru(x, h)` starts from state `h` (Keras' `initial_state`).
    GruSeq, Cell::Gru { reset_after: true }, "GRU", 3, 2, &[InputRule::State(U)]
);
recurrent_field!(
    /// Keras' `SimpleRNN(U, return_sequences = True)` as a field: `[T, F]` to `[T, U]`;
    /// `self.rnn(x, h)` starts from state `h` (Keras' `initial_state`).
    SimpleRnnSeq, Cell::Simple, "SimpleRNN", 1, 1, &[InputRule::State(U)]
);

/// Keras' `LayerNormalization()` on a last axis of `F` as a field.
#[derive(Clone, Debug)]
pub struct LayerNormalization<const F: usize> {
    /// The layer (epsilon 1e-3, center and scale).
    pub layer: LayerNorm,
}

impl<const F: usize> Init for LayerNormalization<F> {
    fn init(_: &mut StdRng) -> Self {
        LayerNormalization { layer: LayerNorm::new(F, 1e-3, true, true) }
    }
}

impl<const F: usize> Shaped for LayerNormalization<F> {
    const IN: usize = F;
    const OUT: usize = F;
    const KIND: &'static str = "LayerNormalization";
    const PARAMS: usize = 2 * F;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[("gamma", &[F]), ("beta", &[F])]);
}

field_layer!([const F: usize] LayerNormalization<F>, LayerNormBuffers);

/// Keras' `MultiHeadAttention(num_heads = H, key_dim = K)` applied to `(x, x)` as a field:
/// `[T, D]` to `[T, D]`, with `use_causal_mask` when `CAUSAL`; `self.attn(x, mask)` gives it
/// Keras' `attention_mask` (`[T, T]`). Applied once per model (it is not `Shareable`).
#[derive(Clone, Debug)]
pub struct SelfAttention<const D: usize, const H: usize, const K: usize, const CAUSAL: bool = false> {
    /// The attention layer (its steps follow the input).
    pub layer: MultiHeadAttention,
    /// The input's gradient: as query and as value.
    dx: Vec<f32>,
}

impl<const D: usize, const H: usize, const K: usize, const CAUSAL: bool> Init for SelfAttention<D, H, K, CAUSAL> {
    fn init(rng: &mut StdRng) -> Self {
        let cfg = AttentionConfig {
            tq: 1,
            dq: D,
            tv: 1,
            dv: D,
            dk: D,
            heads: H,
            key_dim: K,
            value_dim: K,
            out: D,
            use_bias: true,
            causal: CAUSAL,
            attention_mask: false,
            dropout: 0.0,
        };
        SelfAttention { layer: MultiHeadAttention::new(cfg, rng), dx: Vec::new() }
    }
}

impl<const D: usize, const H: usize, const K: usize, const CAUSAL: bool> Shaped for SelfAttention<D, H, K, CAUSAL> {
    const IN: usize = D;
    const OUT: usize = D;
    const KIND: &'static str = "MultiHeadAttention";
    const PARAMS: usize = 3 * (D * H * K + H * K) + H * K * D + D;
    const MORE_INPUTS: &'static [InputRule] = &[InputRule::Mask];
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[
        ("query_kernel", &[D, H, K]),
        ("query_bias", &[H, K]),
        ("key_kernel", &[D, H, K]),
        ("key_bias", &[H, K]),
        ("value_kernel", &[D, H, K]),
        ("value_bias", &[H, K]),
        ("attention_output_kernel", &[H, K, D]),
        ("attention_output_bias", &[D]),
    ]);
}

impl<const D: usize, const H: usize, const K: usize, const CAUSAL: bool> Layer for SelfAttention<D, H, K, CAUSAL> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.layer.set_mask_input(xs.len() > 1);
        match xs {
            [x, mask, ..] => self.layer.forward(&[x, x, mask], ctx),
            _ => self.layer.forward(&[xs[0], xs[0]], ctx),
        }
    }
    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        match xs {
            [x, mask, ..] => self.layer.backward(&[x, x, mask], dy, ctx, opts),
            _ => self.layer.backward(&[xs[0], xs[0]], dy, ctx, opts),
        }
        if opts.input_grad {
            let (q, v) = (self.layer.input_grad(0), self.layer.input_grad(1));
            let dx = sized(&mut self.dx, q.len());
            dx.iter_mut().zip(q.iter().zip(v)).for_each(|(d, (a, b))| *d = a + b);
        }
    }
    fn output(&self) -> &[f32] {
        self.layer.output()
    }
    /// The input's; a mask has none.
    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.dx } else { &[] }
    }
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        self.layer.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.layer.visit_params_mut(f)
    }
}

/// Keras' `MultiHeadAttention(num_heads = H, key_dim = K)` applied to `(query, value)` as a
/// field, `self.cross(q, v)`: a query `[Tq, DQ]` attends over a value `[Tv, DV]` (the key is the
/// value) and writes `[Tq, DQ]`; `self.cross(q, v, mask)` gives Keras' `attention_mask`
/// (`[Tq, Tv]`), and `CAUSAL` its `use_causal_mask`. Applied once per model.
#[derive(Clone, Debug)]
pub struct CrossAttention<const DQ: usize, const DV: usize, const H: usize, const K: usize, const CAUSAL: bool = false>
{
    /// The attention layer (its steps follow the inputs).
    pub layer: MultiHeadAttention,
}

impl<const DQ: usize, const DV: usize, const H: usize, const K: usize, const CAUSAL: bool> Init
    for CrossAttention<DQ, DV, H, K, CAUSAL>
{
    fn init(rng: &mut StdRng) -> Self {
        let cfg = AttentionConfig {
            tq: 1,
            dq: DQ,
            tv: 1,
            dv: DV,
            dk: DV,
            heads: H,
            key_dim: K,
            value_dim: K,
            out: DQ,
            use_bias: true,
            causal: CAUSAL,
            attention_mask: false,
            dropout: 0.0,
        };
        CrossAttention { layer: MultiHeadAttention::new(cfg, rng) }
    }
}

impl<const DQ: usize, const DV: usize, const H: usize, const K: usize, const CAUSAL: bool> Shaped
    for CrossAttention<DQ, DV, H, K, CAUSAL>
{
    const IN: usize = DQ;
    const OUT: usize = DQ;
    const KIND: &'static str = "MultiHeadAttention";
    const PARAMS: usize = DQ * H * K + H * K + 2 * (DV * H * K + H * K) + H * K * DQ + DQ;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[
        ("query_kernel", &[DQ, H, K]),
        ("query_bias", &[H, K]),
        ("key_kernel", &[DV, H, K]),
        ("key_bias", &[H, K]),
        ("value_kernel", &[DV, H, K]),
        ("value_bias", &[H, K]),
        ("attention_output_kernel", &[H, K, DQ]),
        ("attention_output_bias", &[DQ]),
    ]);
    const MORE_INPUTS: &'static [InputRule] = &[InputRule::Steps(DV), InputRule::Mask];
    const REQUIRED_INPUTS: usize = 2;
}

impl<const DQ: usize, const DV: usize, const H: usize, const K: usize, const CAUSAL: bool> Layer
    for CrossAttention<DQ, DV, H, K, CAUSAL>
{
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.layer.set_mask_input(xs.len() > 2);
        self.layer.forward(xs, ctx)
    }
    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        self.layer.backward(xs, dy, ctx, opts)
    }
    fn output(&self) -> &[f32] {
        self.layer.output()
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        if i < 2 { self.layer.input_grad(i) } else { &[] }
    }
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        self.layer.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.layer.visit_params_mut(f)
    }
}

macro_rules! bidirectional_field {
    ($(#[$doc:meta])* $ty:ident, $one:ident, $kind:literal, $gates:literal, $bias_rows:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty<const F: usize, const U: usize> {
            /// The two directions, concatenated.
            pub layer: Bidirectional,
        }

        impl<const F: usize, const U: usize> Init for $ty<F, U> {
            fn init(rng: &mut StdRng) -> Self {
                let (forward, backward) = ($one::<F, U>::init(rng).layer, $one::<F, U>::init(rng).layer);
                $ty { layer: Bidirectional::new(forward, backward, MergeMode::Concat) }
            }
        }

        impl<const F: usize, const U: usize> Shaped for $ty<F, U> {
            const IN: usize = F;
            const OUT: usize = 2 * U;
            const KIND: &'static str = $kind;
            const PARAMS: usize = 2 * $gates * U * (F + U + $bias_rows);
            const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[
                ("forward_kernel", &[F, $gates * U]),
                ("forward_recurrent_kernel", &[U, $gates * U]),
                ("forward_bias", if $bias_rows == 2 { &[2, $gates * U] } else { &[$gates * U] }),
                ("backward_kernel", &[F, $gates * U]),
                ("backward_recurrent_kernel", &[U, $gates * U]),
                ("backward_bias", if $bias_rows == 2 { &[2, $gates * U] } else { &[$gates * U] }),
            ]);
        }

        field_layer!([const F: usize, const U: usize] $ty<F, U>, BidirectionalBuffers);
    };
}

bidirectional_field!(
    /// Keras' `Bidirectional(LSTM(U, return_sequences = True))` as a field: `[T, F]` to `[T, 2U]`.
    BiLstmSeq, LstmSeq, "Bidirectional", 4, 1
);
bidirectional_field!(
    /// Keras' `Bidirectional(GRU(U, return_sequences = True))` as a field: `[T, F]` to `[T, 2U]`.
    BiGruSeq, GruSeq, "Bidirectional", 3, 2
);
