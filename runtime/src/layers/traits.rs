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
    const LAYERS: &'static [crate::layers::LayerInfo] = &[];
    /// Its weights by name and shape, in traversal order (`kernel`, `[IN, OUT]`), so that a
    /// `#[weights(..)]` file can be checked against a model holding it when the model compiles;
    /// `None` when the type does not state them (such a model cannot embed checked weights).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = None;
    /// For a layer that reads integer token ids (a model whose input is `dtype = i32`): one more
    /// than the largest id it accepts. `None` for layers that read floats.
    const IDS: Option<usize> = None;
    /// The axes before the last follow a window (a convolution's or pooling's output sizes);
    /// `None` keeps them.
    const WINDOW: Option<WindowRule> = None;
    /// The last axis is kept whatever its width (pooling): `IN` and `OUT` are then unchecked.
    const ANY_WIDTH: bool = false;
    /// Reads vectors `[features]` or sequences `[steps, features]` only (Dense): an image is a
    /// compile error that asks for a flatten, as in the other styles.
    const FLAT: bool = false;
    /// A model whose axes before the last change too: the one input shape it reads and the
    /// output shape it writes (`None`: the rule above).
    const MAP: Option<(&'static [usize], &'static [usize])> = None;
    /// The inputs a call may give after the first (`self.attn(q, v, mask)`).
    const MORE_INPUTS: &'static [InputRule] = &[];
    /// How many inputs, the first included, a call must give.
    const REQUIRED_INPUTS: usize = 1;
    /// A tensor read as `self.field` in `call` (a [`Weight`](crate::layers::Weight)), not a
    /// layer called on one.
    const TENSOR: bool = false;
    /// A matrix multiplied in `call` as `matmul(x, self.w)` (a
    /// [`Matrix`](crate::layers::Matrix)).
    const MATRIX: bool = false;
}

pub use kiln_shapes::{FieldRule, InputRule, WindowRule, field_dim, ids_below, min_usize};

/// The rule of layer type `T`, as the `call` macro reads it: its [`Shaped`] constants in one
/// value.
pub const fn field_rule<T: Shaped + ?Sized>() -> FieldRule {
    FieldRule {
        kind: T::KIND,
        input: T::IN,
        output: T::OUT,
        any_width: T::ANY_WIDTH,
        flat: T::FLAT,
        window: T::WINDOW,
        map: T::MAP,
        more: T::MORE_INPUTS,
        required: T::REQUIRED_INPUTS,
    }
}

/// The runtime window of rule `rule` for one sample of `shape` (`[steps, channels]` or `[height,
/// width, channels]`); a window that does not fit gives one output position (the model's
/// compile-time check reports it first).
pub const fn window_of(rule: WindowRule, shape: &[usize]) -> crate::kernels::conv::Window {
    let r = shape.len();
    let (h, w, c) = if r >= 3 { (shape[r - 3], shape[r - 2], shape[r - 1]) } else if r == 2 { (1, shape[0], shape[1]) } else { (1, 1, 1) };
    let (kh, sh, dh) = if rule.rank == 1 { (1, 1, 1) } else { (rule.kernel, rule.strides, rule.dilation) };
    let (oh, ph) = match crate::kernels::conv::axis(h, kh, sh, dh, rule.same) {
        Some(v) => v,
        None => (1, 0),
    };
    let (ow, pw) = match rule.axis(w) {
        Some(v) => v,
        None => (1, 0),
    };
    let (kw, sw, dw) = (rule.kernel, rule.strides, rule.dilation);
    crate::kernels::conv::Window { h, w, c, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow }
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
    const FLAT: bool = true;
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
    const LAYERS: &'static [crate::layers::LayerInfo] = T::LAYERS;
    /// One element's (the model macro numbers the elements).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = T::PARAM_SHAPES;
    const WINDOW: Option<WindowRule> = T::WINDOW;
    const ANY_WIDTH: bool = T::ANY_WIDTH;
    const FLAT: bool = T::FLAT;
    const MAP: Option<(&'static [usize], &'static [usize])> = T::MAP;
    const MORE_INPUTS: &'static [InputRule] = T::MORE_INPUTS;
    const REQUIRED_INPUTS: usize = T::REQUIRED_INPUTS;
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
    const LAYERS: &'static [crate::layers::LayerInfo] = T::LAYERS;
    /// One element's (the model macro numbers the elements).
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = T::PARAM_SHAPES;
    const WINDOW: Option<WindowRule> = T::WINDOW;
    const ANY_WIDTH: bool = T::ANY_WIDTH;
    const FLAT: bool = T::FLAT;
    const MAP: Option<(&'static [usize], &'static [usize])> = T::MAP;
    const MORE_INPUTS: &'static [InputRule] = T::MORE_INPUTS;
    const REQUIRED_INPUTS: usize = T::REQUIRED_INPUTS;
}

/// `n` layers built one after the other from `rng` (a `Vec` field with `#[layer(len = n)]`).
pub fn init_vec<T: Init>(n: usize, rng: &mut StdRng) -> Vec<T> {
    (0..n).map(|_| T::init(rng)).collect()
}

/// Freezes or unfreezes every layer of a field, whatever its container.
pub fn set_trainable_all<L: Layer>(layers: &mut [L], trainable: bool) {
    layers.iter_mut().for_each(|l| l.set_trainable(trainable));
}
