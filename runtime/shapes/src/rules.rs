//! A layer type's shape rule as a value, and Keras' window geometry.

/// Output size and padding before, as Keras computes them, for one axis; `None` when the window
/// does not fit (`valid` with a window larger than the input) or a stride or dilation is 0.
pub const fn axis(size: usize, k: usize, stride: usize, dilation: usize, same: bool) -> Option<(usize, usize)> {
    if stride == 0 || dilation == 0 || k == 0 || size == 0 {
        return None;
    }
    let span = (k - 1) * dilation + 1;
    if same {
        let out = size.div_ceil(stride);
        let needed = (out - 1) * stride + span;
        let pad = needed.saturating_sub(size);
        Some((out, pad / 2))
    } else if span > size {
        None
    } else {
        Some(((size - span) / stride + 1, 0))
    }
}

/// The shape rule of a field's input after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRule {
    /// A sequence `[steps, width]` of any length (attention's value).
    Steps(usize),
    /// Keras' `attention_mask`: `[query steps, value steps]` (the first input's steps, and the
    /// second's, or the first's again when the second is this mask).
    Mask,
    /// A vector `[width]`: a recurrent layer's `initial_state`.
    State(usize),
}

/// The window over the spatial axes of a layer's input (all axes but the last): a square window
/// of `kernel` with `strides` and `dilation` on each of `rank` axes, padded (`same`) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowRule {
    /// The Keras class, for messages.
    pub class: &'static str,
    /// Spatial axes: 1 (`[steps, channels]`) or 2 (`[height, width, channels]`).
    pub rank: usize,
    /// Window size on each spatial axis.
    pub kernel: usize,
    /// Stride on each spatial axis.
    pub strides: usize,
    /// Dilation on each spatial axis.
    pub dilation: usize,
    /// Keras' `padding = "same"`.
    pub same: bool,
}

impl WindowRule {
    /// Output size and padding before on one spatial axis of `size`, or `None` when the window
    /// does not fit (Keras' rule; the runtime's `kernels::conv::axis`).
    pub const fn axis(&self, size: usize) -> Option<(usize, usize)> {
        axis(size, self.kernel, self.strides, self.dilation, self.same)
    }
}

/// What the `call` macro reads of a field's type: its `Shaped` constants (kiln-runtime's layer
/// trait) in one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRule {
    /// The Keras class.
    pub kind: &'static str,
    /// `Shaped::IN`.
    pub input: usize,
    /// `Shaped::OUT`.
    pub output: usize,
    /// `Shaped::ANY_WIDTH`.
    pub any_width: bool,
    /// `Shaped::FLAT`.
    pub flat: bool,
    /// `Shaped::WINDOW`.
    pub window: Option<WindowRule>,
    /// `Shaped::MAP`.
    pub map: Option<(&'static [usize], &'static [usize])>,
    /// `Shaped::MORE_INPUTS`.
    pub more: &'static [InputRule],
    /// `Shaped::REQUIRED_INPUTS`.
    pub required: usize,
}

/// Axis `axis` of the output of a field with rule `rule` applied to one sample of `shape`: the
/// window's output size on a spatial axis, `OUT` (or the input's width) on the last, the input's
/// size elsewhere. Never panics: the model's compile-time check ([`expect_field`](crate::expect_field))
/// reports a shape the rule cannot take.
pub const fn field_dim(rule: FieldRule, shape: &[usize], axis: usize) -> usize {
    if let Some((_, out)) = rule.map {
        return if axis < out.len() { out[axis] } else { 1 };
    }
    let r = shape.len();
    if axis + 1 == r {
        return if rule.any_width { shape[axis] } else { rule.output };
    }
    match rule.window {
        Some(w) if axis + 1 + w.rank >= r => match w.axis(shape[axis]) {
            Some((out, _)) => out,
            None => 1,
        },
        _ => shape[axis],
    }
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
