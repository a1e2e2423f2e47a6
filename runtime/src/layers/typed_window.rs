//! Convolution, pooling and batch normalisation with their shape rules in their types, for the
//! fields of a `#[kiln::model]` struct: the Keras subclassing style's `self.conv =
//! Conv2D(32, 3, activation="relu")` is a field `conv: Conv2D<1, 32, 3, Relu>` (reading one
//! channel). The `call` macro checks each window against the shape it is applied to when the
//! model compiles, and tells the field that shape when the model is built
//! ([`Layer::bind_input`]), so its buffers follow the input as in the other styles.
//!
//! - `Conv2D<C, F, K, A = Linear, P = Valid, S = 1>`: `[h, w, C]` to `[h', w', F]`, a `K × K`
//!   window with stride `S` and padding `P` (`Valid` or `Same`); `Conv1D<C, F, K, A, P, S>`:
//!   `[steps, C]` to `[steps', F]`. Keras' defaults otherwise (bias, `glorot_uniform`).
//! - `MaxPooling2D<N, P = Valid>` and `AveragePooling2D<N, P>`: `N × N` windows with stride
//!   `N`, any number of channels; `MaxPooling1D<N, P>` and `AveragePooling1D<N, P>` on steps.
//! - `BatchNormalization<C>`: the last axis of `C` channels, Keras' defaults (momentum 0.99,
//!   epsilon 1e-3, center and scale; moving statistics non-trainable, frozen means inference).
//!
//! Global pooling, flattening and dropout change no weights and are functions in `call`
//! (`global_average_pooling(x)`, `flatten(x)`, `dropout(x, 0.25)`).

use std::marker::PhantomData;

use rand::rngs::StdRng;

use super::traits::WindowRule;
use super::{
    ActivationFn, BatchNorm, BatchNormBuffers, Conv, ConvBuffers, Init, Linear, Pool, PoolBuffers, PoolKind, Shaped,
};
use crate::kernels::ActKind;

/// Keras' `padding` as a type: [`Valid`] (no padding, the default) or [`Same`].
pub trait Padding: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Whether the input is padded so that a stride of 1 keeps its size.
    const SAME: bool;
}

/// `padding = "valid"`: windows lie wholly inside the input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Valid;

/// `padding = "same"`: the input is padded with zeros so that the output has `ceil(size /
/// stride)` positions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Same;

impl Padding for Valid {
    const SAME: bool = false;
}

impl Padding for Same {
    const SAME: bool = true;
}

macro_rules! conv_field {
    ($(#[$doc:meta])* $ty:ident, $rank:literal, $class:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty<
            const C: usize,
            const F: usize,
            const K: usize,
            A: ActivationFn = Linear,
            P: Padding = Valid,
            const S: usize = 1,
        > {
            /// The convolution (its windows follow the input the model gives it).
            pub layer: Conv<A>,
            _padding: PhantomData<P>,
        }

        impl<const C: usize, const F: usize, const K: usize, A: ActivationFn, P: Padding, const S: usize>
            $ty<C, F, K, A, P, S>
        {
            const RULE: WindowRule =
                WindowRule { class: $class, rank: $rank, kernel: K, strides: S, dilation: 1, same: P::SAME };
        }

        impl<const C: usize, const F: usize, const K: usize, A: ActivationFn, P: Padding, const S: usize> Init
            for $ty<C, F, K, A, P, S>
        {
            fn init(rng: &mut StdRng) -> Self {
                // Until the model binds its input, the windows are those of one window's input.
                let shape: &[usize] = if $rank == 1 { &[K, C] } else { &[K, K, C] };
                let geom = super::window_of(Self::RULE, shape);
                $ty { layer: Conv::new(geom, F, true, $rank == 1, rng), _padding: PhantomData }
            }
        }

        impl<const C: usize, const F: usize, const K: usize, A: ActivationFn, P: Padding, const S: usize> Shaped
            for $ty<C, F, K, A, P, S>
        {
            const IN: usize = C;
            const OUT: usize = F;
            const ACT: ActKind = A::KIND;
            const KIND: &'static str = $class;
            const PARAMS: usize = K * if $rank == 1 { 1 } else { K } * C * F + F;
            const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(if $rank == 1 {
                &[("kernel", &[K, C, F]), ("bias", &[F])]
            } else {
                &[("kernel", &[K, K, C, F]), ("bias", &[F])]
            });
            const WINDOW: Option<WindowRule> = Some(Self::RULE);
        }

        field_layer!(
            [const C: usize, const F: usize, const K: usize, A: ActivationFn, P: Padding, const S: usize]
            $ty<C, F, K, A, P, S>, ConvBuffers,
            |this, shape| this.layer.set_window(super::window_of(Self::RULE, shape))
        );
    };
}

conv_field!(
    /// Keras' `Conv2D(F, K, strides = S, padding = P, activation = A)` as a field, reading `C`
    /// channels: `[h, w, C]` to `[h', w', F]`.
    Conv2D, 2, "Conv2D"
);
conv_field!(
    /// Keras' `Conv1D(F, K, strides = S, padding = P, activation = A)` as a field, reading `C`
    /// channels: `[steps, C]` to `[steps', F]`.
    Conv1D, 1, "Conv1D"
);

macro_rules! pool_field {
    ($(#[$doc:meta])* $ty:ident, $rank:literal, $class:literal, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty<const N: usize, P: Padding = Valid> {
            /// The pooling layer (its windows follow the input the model gives it).
            pub layer: Pool,
            _padding: PhantomData<P>,
        }

        impl<const N: usize, P: Padding> $ty<N, P> {
            const RULE: WindowRule =
                WindowRule { class: $class, rank: $rank, kernel: N, strides: N, dilation: 1, same: P::SAME };
        }

        impl<const N: usize, P: Padding> Init for $ty<N, P> {
            fn init(_: &mut StdRng) -> Self {
                let shape: &[usize] = if $rank == 1 { &[N, 1] } else { &[N, N, 1] };
                $ty { layer: Pool::new(super::window_of(Self::RULE, shape), $kind), _padding: PhantomData }
            }
        }

        impl<const N: usize, P: Padding> Shaped for $ty<N, P> {
            const IN: usize = 0;
            const OUT: usize = 0;
            const KIND: &'static str = $class;
            const PARAMS: usize = 0;
            const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[]);
            const WINDOW: Option<WindowRule> = Some(Self::RULE);
            const ANY_WIDTH: bool = true;
        }

        field_layer!(
            [const N: usize, P: Padding] $ty<N, P>, PoolBuffers,
            |this, shape| this.layer.set_window(super::window_of(Self::RULE, shape))
        );
    };
}

pool_field!(
    /// Keras' `MaxPooling2D(N, padding = P)` as a field: `[h, w, c]` to `[h / N, w / N, c]`.
    MaxPooling2D, 2, "MaxPooling2D", PoolKind::Max
);
pool_field!(
    /// Keras' `AveragePooling2D(N, padding = P)` as a field: `[h, w, c]` to `[h / N, w / N, c]`.
    AveragePooling2D, 2, "AveragePooling2D", PoolKind::Average
);
pool_field!(
    /// Keras' `MaxPooling1D(N, padding = P)` as a field: `[steps, c]` to `[steps / N, c]`.
    MaxPooling1D, 1, "MaxPooling1D", PoolKind::Max
);
pool_field!(
    /// Keras' `AveragePooling1D(N, padding = P)` as a field: `[steps, c]` to `[steps / N, c]`.
    AveragePooling1D, 1, "AveragePooling1D", PoolKind::Average
);

/// Keras' `BatchNormalization()` over a last axis of `C` channels as a field, with Keras'
/// defaults (momentum 0.99, epsilon 1e-3, center and scale).
#[derive(Clone, Debug)]
pub struct BatchNormalization<const C: usize> {
    /// The layer: gamma, beta, and the non-trainable moving mean and variance.
    pub layer: BatchNorm,
}

impl<const C: usize> Init for BatchNormalization<C> {
    fn init(_: &mut StdRng) -> Self {
        BatchNormalization { layer: BatchNorm::new(C, 0.99, 1e-3, true, true) }
    }
}

impl<const C: usize> Shaped for BatchNormalization<C> {
    const IN: usize = C;
    const OUT: usize = C;
    const KIND: &'static str = "BatchNormalization";
    const PARAMS: usize = 4 * C;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> =
        Some(&[("gamma", &[C]), ("beta", &[C]), ("moving_mean", &[C]), ("moving_variance", &[C])]);
}

field_layer!([const C: usize] BatchNormalization<C>, BatchNormBuffers);
