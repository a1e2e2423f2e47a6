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

/// Writes `v` in decimal into `buf` at `at`; returns the new position.
const fn put_usize(buf: &mut [u8; 160], mut at: usize, v: usize) -> usize {
    let mut digits = [0u8; 20];
    let (mut n, mut len) = (v, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while len > 0 && at < buf.len() {
        len -= 1;
        buf[at] = digits[len];
        at += 1;
    }
    at
}

const fn put_str(buf: &mut [u8; 160], mut at: usize, s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && at < buf.len() {
        buf[at] = b[i];
        at += 1;
        i += 1;
    }
    at
}

/// Compile-time shape check of one layer call in a `call` body: panics (a compile error) with
/// "`what` expects an input of shape [expected], got [got]" when they differ.
pub const fn expect_width(what: &str, expected: usize, got: usize) {
    if expected == got {
        return;
    }
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " expects an input of shape [");
    at = put_usize(&mut buf, at, expected);
    at = put_str(&mut buf, at, "], got [");
    at = put_usize(&mut buf, at, got);
    at = put_str(&mut buf, at, "]");
    let (msg, _) = buf.split_at(at);
    match core::str::from_utf8(msg) {
        Ok(s) => panic!("{}", s),
        Err(_) => panic!("shape mismatch"),
    }
}

const fn put_shape(buf: &mut [u8; 160], mut at: usize, s: &[usize]) -> usize {
    at = put_str(buf, at, "[");
    let mut i = 0;
    while i < s.len() {
        if i > 0 {
            at = put_str(buf, at, ", ");
        }
        at = put_usize(buf, at, s[i]);
        i += 1;
    }
    put_str(buf, at, "]")
}

const fn fail(buf: &[u8; 160], at: usize) -> ! {
    let (msg, _) = buf.split_at(at);
    match core::str::from_utf8(msg) {
        Ok(s) => panic!("{}", s),
        Err(_) => panic!("shape mismatch"),
    }
}

/// Compile-time shape check of a user layer in `sequential!` / `functional!`: the layer's type
/// says its input's last axis is `expected` wide; `got` is the input the model gives it.
/// Panics (a compile error) with "`what` expects an input whose last axis is E, got [..]".
pub const fn expect_shape(what: &str, expected: usize, got: &[usize]) {
    if !got.is_empty() && got[got.len() - 1] == expected {
        return;
    }
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " expects an input whose last axis is ");
    at = put_usize(&mut buf, at, expected);
    at = put_str(&mut buf, at, ", got ");
    at = put_shape(&mut buf, at, got);
    fail(&buf, at)
}

/// Compile-time check that a user layer's output (its type's `OUT`) is as wide as the model
/// declares it (`declared`, the last axis of the shape the next layer receives).
pub const fn same_shape(what: &str, declared: usize, ty_out: usize) {
    if declared == ty_out {
        return;
    }
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " writes outputs whose last axis is ");
    at = put_usize(&mut buf, at, ty_out);
    at = put_str(&mut buf, at, ", but the model declares ");
    at = put_usize(&mut buf, at, declared);
    at = put_str(&mut buf, at, ": give `output = ");
    at = put_usize(&mut buf, at, ty_out);
    at = put_str(&mut buf, at, "`");
    fail(&buf, at)
}

/// Whether two shapes are equal, in a const context.
pub const fn shape_eq(a: &[usize], b: &[usize]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Compile-time check that the inputs of a merge (`+`, `add`, `dot`, ...) have the same shape.
pub const fn expect_same(what: &str, a: usize, b: usize) {
    if a == b {
        return;
    }
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " needs inputs of the same shape, got [");
    at = put_usize(&mut buf, at, a);
    at = put_str(&mut buf, at, "] and [");
    at = put_usize(&mut buf, at, b);
    at = put_str(&mut buf, at, "]");
    let (msg, _) = buf.split_at(at);
    match core::str::from_utf8(msg) {
        Ok(s) => panic!("{}", s),
        Err(_) => panic!("shape mismatch"),
    }
}

/// Compile-time check of a shape in a `call` body against the one its signature declares.
/// Panics (a compile error) with "`what` expects an input of shape [..], got [..]".
pub const fn expect_dims(what: &str, expected: &[usize], got: &[usize]) {
    if shape_eq(expected, got) {
        return;
    }
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " expects an input of shape ");
    at = put_shape(&mut buf, at, expected);
    at = put_str(&mut buf, at, ", got ");
    at = put_shape(&mut buf, at, got);
    fail(&buf, at)
}

/// Compile-time check that the inputs of an element-wise merge have the same shape.
pub const fn expect_same_dims(what: &str, a: &[usize], b: &[usize]) {
    if shape_eq(a, b) {
        return;
    }
    same_dims_error(what, a, b)
}

/// Compile-time check that tensors concatenated on the last axis agree on every other axis.
pub const fn expect_same_lead(what: &str, a: &[usize], b: &[usize]) {
    if a.len() == b.len() && !a.is_empty() {
        let (a_lead, _) = a.split_at(a.len() - 1);
        let (b_lead, _) = b.split_at(b.len() - 1);
        if shape_eq(a_lead, b_lead) {
            return;
        }
    }
    same_dims_error(what, a, b)
}

const fn same_dims_error(what: &str, a: &[usize], b: &[usize]) -> ! {
    let mut buf = [b' '; 160];
    let mut at = put_str(&mut buf, 0, what);
    at = put_str(&mut buf, at, " needs inputs of the same shape, got ");
    at = put_shape(&mut buf, at, a);
    at = put_str(&mut buf, at, " and ");
    at = put_shape(&mut buf, at, b);
    fail(&buf, at)
}

/// The output shape of field `key` in a `#[kiln::model]` struct's summary: the one its `call`
/// body computes (`shapes`, written by `#[kiln::call]`), or `[out]` for a field `call` does not
/// use.
pub const fn field_shape(
    shapes: &'static [(&'static str, &'static [usize])],
    key: &str,
    out: &'static [usize],
) -> &'static [usize] {
    let mut i = 0;
    while i < shapes.len() {
        let (name, shape) = shapes[i];
        if str_eq(name, key) {
            return shape;
        }
        i += 1;
    }
    out
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Compile-time check of a `#[weights(..)]` file against one field (or one element of an array
/// field) of a `#[kiln::model]` struct: `declared` is the field type's `PARAM_SHAPES`, `file` the
/// tensors the file holds under the field's prefix (read by the macro). Panics (a compile error)
/// naming the first tensor that is missing, extra or of another shape.
pub const fn expect_params(what: &str, declared: Option<&[(&str, &[usize])]>, file: &[(&str, &[usize])]) {
    let mut buf = [b' '; 160];
    let Some(declared) = declared else {
        let mut at = put_str(&mut buf, 0, "embedded weights: the type of `");
        at = put_str(&mut buf, at, what);
        at = put_str(&mut buf, at, "` does not state its weights (Shaped::PARAM_SHAPES)");
        fail(&buf, at)
    };
    let mut i = 0;
    while i < declared.len() {
        let (name, shape) = declared[i];
        let mut j = 0;
        let mut found = false;
        while j < file.len() {
            if str_eq(file[j].0, name) {
                found = true;
                if !shape_eq(file[j].1, shape) {
                    let mut at = put_str(&mut buf, 0, "embedded weights: `");
                    at = put_str(&mut buf, at, what);
                    at = put_str(&mut buf, at, ".");
                    at = put_str(&mut buf, at, name);
                    at = put_str(&mut buf, at, "` has shape ");
                    at = put_shape(&mut buf, at, file[j].1);
                    at = put_str(&mut buf, at, " in the file, but the model's is ");
                    at = put_shape(&mut buf, at, shape);
                    fail(&buf, at)
                }
            }
            j += 1;
        }
        if !found {
            let mut at = put_str(&mut buf, 0, "embedded weights: tensor `");
            at = put_str(&mut buf, at, what);
            at = put_str(&mut buf, at, ".");
            at = put_str(&mut buf, at, name);
            at = put_str(&mut buf, at, "` (shape ");
            at = put_shape(&mut buf, at, shape);
            at = put_str(&mut buf, at, ") is missing from the file");
            fail(&buf, at)
        }
        i += 1;
    }
    if file.len() != declared.len() {
        // Every declared tensor was found, so one in the file is not the model's.
        let mut j = 0;
        while j < file.len() {
            let mut k = 0;
            let mut known = false;
            while k < declared.len() {
                known = known || str_eq(file[j].0, declared[k].0);
                k += 1;
            }
            if !known {
                let mut at = put_str(&mut buf, 0, "embedded weights: tensor `");
                at = put_str(&mut buf, at, what);
                at = put_str(&mut buf, at, ".");
                at = put_str(&mut buf, at, file[j].0);
                at = put_str(&mut buf, at, "` in the file is not a weight of the model");
                fail(&buf, at)
            }
            j += 1;
        }
    }
}
