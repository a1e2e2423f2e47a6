//! A layer's static shape rule and construction: what the model macros need of a layer type they
//! did not generate (a field of a `#[kiln::model]` struct, a user's own layer in `sequential!` or
//! `functional!`), as constants, so its shapes are checked when the model compiles.

use rand::rngs::StdRng;

use super::{Activation, ActivationFn, Dense, Layer};
use crate::kernels::ActKind;

/// A layer's static shape rule: it reads inputs whose **last axis** is `IN` wide and writes
/// outputs whose last axis is `OUT` wide, keeping every other axis (Keras' Dense rule; a
/// per-feature layer has `IN == OUT`).
pub trait Shaped {
    /// Width of the input's last axis.
    const IN: usize;
    /// Width of the output's last axis.
    const OUT: usize;
    /// The activation applied over each whole output row (softmax enables the fused gradient);
    /// `Linear` for layers that end in none.
    const ACT: ActKind = ActKind::Linear;
    /// The layer's Keras class, for the summary.
    const KIND: &'static str;
    /// Number of parameter values.
    const PARAMS: usize;
    /// A model's own layers, for summaries that expand nested models; empty for plain layers.
    const LAYERS: &'static [crate::summary::LayerInfo] = &[];
    /// Its weights by name and shape, in traversal order (`kernel`, `[IN, OUT]`), so that a
    /// `#[weights(..)]` file can be checked against a model holding it when the model compiles;
    /// `None` when the type does not state them (such a model cannot embed checked weights).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = None;
    /// For a layer that reads integer token ids (a model whose input is `dtype = i32`): one more
    /// than the largest id it accepts. `None` for layers that read floats.
    const IDS: Option<usize> = None;
}

/// The id bound a `#[kiln::model]` input of token ids takes from the field reading it.
pub const fn ids_below(ids: Option<usize>) -> usize {
    match ids {
        Some(b) => b,
        None => 0,
    }
}

/// The smaller of two bounds, in constants.
pub const fn min_usize(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

/// Building a layer with Keras' initialisers from a random stream.
pub trait Init: Sized {
    /// A new layer initialised from `rng`.
    fn init(rng: &mut StdRng) -> Self;
}

impl<const I: usize, const O: usize, A: ActivationFn> Shaped for Dense<I, O, A> {
    const IN: usize = I;
    const OUT: usize = O;
    const ACT: ActKind = A::KIND;
    const KIND: &'static str = "Dense";
    const PARAMS: usize = I * O + O;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> =
        Some(&[("kernel", &[I, O]), ("bias", &[O])]);
}

impl<const I: usize, const O: usize, A: ActivationFn> Init for Dense<I, O, A> {
    fn init(rng: &mut StdRng) -> Self {
        Dense::new(true, rng)
    }
}

impl<A: ActivationFn, const W: usize> Shaped for Activation<A, W> {
    const IN: usize = W;
    const OUT: usize = W;
    const ACT: ActKind = A::KIND;
    const KIND: &'static str = "Activation";
    const PARAMS: usize = 0;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[]);
}

impl<A: ActivationFn, const W: usize> Init for Activation<A, W> {
    fn init(_: &mut StdRng) -> Self {
        Activation::new()
    }
}

impl<T: Shaped, const N: usize> Shaped for [T; N] {
    const IN: usize = T::IN;
    const OUT: usize = T::OUT;
    const ACT: ActKind = T::ACT;
    const KIND: &'static str = T::KIND;
    const PARAMS: usize = T::PARAMS * N;
    const LAYERS: &'static [crate::summary::LayerInfo] = T::LAYERS;
    /// One element's (the model macro numbers the elements).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = T::PARAM_SHAPES;
}

impl<T: Init, const N: usize> Init for [T; N] {
    fn init(rng: &mut StdRng) -> Self {
        std::array::from_fn(|_| T::init(rng))
    }
}

/// A `Vec`'s length is not in its type: `PARAMS` is one element's (the model macro multiplies by
/// the `#[layer(len = ..)]` it is given).
impl<T: Shaped> Shaped for Vec<T> {
    const IN: usize = T::IN;
    const OUT: usize = T::OUT;
    const ACT: ActKind = T::ACT;
    const KIND: &'static str = T::KIND;
    const PARAMS: usize = T::PARAMS;
    const LAYERS: &'static [crate::summary::LayerInfo] = T::LAYERS;
    /// One element's (the model macro numbers the elements).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = T::PARAM_SHAPES;
}

/// `n` layers built one after the other from `rng` (a `Vec` field with `#[layer(len = n)]`).
pub fn init_vec<T: Init>(n: usize, rng: &mut StdRng) -> Vec<T> {
    (0..n).map(|_| T::init(rng)).collect()
}

/// Freezes or unfreezes every layer of a field, whatever its container.
pub fn set_trainable_all<L: Layer>(layers: &mut [L], trainable: bool) {
    layers.iter_mut().for_each(|l| l.set_trainable(trainable));
}
