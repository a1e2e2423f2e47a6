//! Sequence layers with their shapes in their types, for the fields of a `#[kiln::model]` struct
//! (whose shape rule is `Shaped`'s: the last axis `IN` wide in, `OUT` wide out, the other axes
//! kept): `Embed<V, D>` reads ids `[.., 1]` and writes vectors `[.., D]`; `LstmSeq<F, U>`,
//! `GruSeq<F, U>` and `SimpleRnnSeq<F, U>` read `[T, F]` and write every step's state `[T, U]`
//! (Keras' `return_sequences = True`, defaults otherwise); `LayerNormalization<F>` normalises
//! the last axis. `sequential!` and `functional!` take the Keras-named layers instead.

use rand::rngs::StdRng;

use super::{
    BackwardOpts, Cell, Ctx, Embedding, EmbeddingBuffers, Gate, Init, Layer, LayerNorm, LayerNormBuffers, Param,
    Recurrent, RecurrentBuffers, RecurrentConfig, Shaped, Shareable,
};

/// The `Layer` and `Shareable` methods of a wrapper, handed to its `layer`.
macro_rules! wrapper {
    ($ty:ident <$($g:ident),*>, $buffers:ty) => {
        impl<$(const $g: usize),*> Layer for $ty<$($g),*> {
            fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
                self.layer.forward(xs, ctx)
            }
            fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
                self.layer.backward(xs, dy, ctx, opts)
            }
            fn output(&self) -> &[f32] {
                self.layer.output()
            }
            fn input_grad(&self, i: usize) -> &[f32] {
                self.layer.input_grad(i)
            }
            fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
                self.layer.visit_params(f)
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
                self.layer.visit_params_mut(f)
            }
        }

        impl<$(const $g: usize),*> Shareable for $ty<$($g),*> {
            type Buffers = $buffers;
            fn buffers_mut(&mut self) -> &mut $buffers {
                self.layer.buffers_mut()
            }
        }
    };
}

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

wrapper!(Embed<V, D>, EmbeddingBuffers);

macro_rules! recurrent_field {
    ($(#[$doc:meta])* $ty:ident, $cell:expr, $kind:literal, $gates:literal, $bias_rows:literal) => {
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
        }

        wrapper!($ty<F, U>, RecurrentBuffers);
    };
}

recurrent_field!(
    /// Keras' `LSTM(U, return_sequences = True)` as a field: `[T, F]` to `[T, U]`.
    LstmSeq, Cell::Lstm, "LSTM", 4, 1
);
recurrent_field!(
    /// Keras' `GRU(U, return_sequences = True)` (`reset_after`) as a field: `[T, F]` to `[T, U]`.
    GruSeq, Cell::Gru { reset_after: true }, "GRU", 3, 2
);
recurrent_field!(
    /// Keras' `SimpleRNN(U, return_sequences = True)` as a field: `[T, F]` to `[T, U]`.
    SimpleRnnSeq, Cell::Simple, "SimpleRNN", 1, 1
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

wrapper!(LayerNormalization<F>, LayerNormBuffers);
