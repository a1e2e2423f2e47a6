//! A trainable tensor of a `#[kiln::model]` struct's own (Keras' `self.add_weight(..)` in a
//! layer's `build`): a field `gamma: Weight<64, Ones>` is read in `call` as the tensor
//! `self.gamma`, the same for every sample, and combined with others by user math
//! (`x * self.gamma + self.beta`). Its gradient is the sum over the batch of what reaches it.

use std::marker::PhantomData;

use rand::rngs::StdRng;

use super::{BackwardOpts, Ctx, Init, Layer, LayerBuffers, Param, Shaped, Shareable, sized};

/// How a [`Weight`] starts: Keras' initializer names.
pub trait WeightInit: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The value every element starts at.
    const FILL: f32;
}

/// Starts at zeros (Keras' `"zeros"`, a bias's or a shift's initializer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Zeros;

/// Starts at ones (Keras' `"ones"`, a scale's initializer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ones;

impl WeightInit for Zeros {
    const FILL: f32 = 0.0;
}

impl WeightInit for Ones {
    const FILL: f32 = 1.0;
}

/// A trainable vector of `D` values, read in `call` as `self.<field>`: a tensor of shape `[D]`
/// for every sample (broadcast against others by user math). Its parameter is `<field>.value`.
#[derive(Clone, Debug)]
pub struct Weight<const D: usize, I: WeightInit = Zeros> {
    value: Param,
    buf: WeightBuffers,
    _init: PhantomData<I>,
}

/// What one read of a [`Weight`] writes: the value once per sample, and the (zero) gradient
/// with respect to the input the graph hands it to know the batch size.
#[derive(Clone, Debug, Default)]
pub struct WeightBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl<const D: usize, I: WeightInit> Weight<D, I> {
    /// A weight at its initializer's value.
    pub fn new() -> Self {
        let mut value = Param::zeros(&[D]);
        value.value.fill(I::FILL);
        Weight { value, buf: WeightBuffers::default(), _init: PhantomData }
    }
}

impl<const D: usize, I: WeightInit> Default for Weight<D, I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const D: usize, I: WeightInit> Layer for Weight<D, I> {
    fn forward(&mut self, _xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, ctx.n * D);
        out.chunks_exact_mut(D).for_each(|row| row.copy_from_slice(&self.value.value));
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.accumulate {
            self.value.grad.fill(0.0);
        }
        for row in dy.chunks_exact(D) {
            self.value.grad.iter_mut().zip(row).for_each(|(g, d)| *g += d);
        }
        if opts.input_grad {
            // The input only tells the batch size: nothing flows back to it.
            sized(&mut self.buf.dx, xs.first().map_or(0, |x| x.len())).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("value", &self.value);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.value);
    }
}

impl LayerBuffers for WeightBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<const D: usize, I: WeightInit> Shareable for Weight<D, I> {
    type Buffers = WeightBuffers;
    fn buffers_mut(&mut self) -> &mut WeightBuffers {
        &mut self.buf
    }
}

impl<const D: usize, I: WeightInit> Init for Weight<D, I> {
    fn init(_rng: &mut StdRng) -> Self {
        Self::new()
    }
}

impl<const D: usize, I: WeightInit> Shaped for Weight<D, I> {
    const IN: usize = D;
    const OUT: usize = D;
    const KIND: &'static str = "Weight";
    const PARAMS: usize = D;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[("value", &[D])]);
    const TENSOR: bool = true;
}
