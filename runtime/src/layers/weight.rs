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

/// How a [`Matrix`] starts: Keras' initializer names.
pub trait MatrixInit: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// A `[rows, cols]` parameter at its initial values.
    fn init(rows: usize, cols: usize, rng: &mut StdRng) -> Param;
}

/// Starts at `glorot_uniform` values (Keras' default for `add_weight` and Dense kernels).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlorotUniform;

impl MatrixInit for GlorotUniform {
    fn init(rows: usize, cols: usize, rng: &mut StdRng) -> Param {
        Param::glorot_uniform(rows, cols, rng)
    }
}

impl MatrixInit for Zeros {
    fn init(rows: usize, cols: usize, _rng: &mut StdRng) -> Param {
        Param::zeros(&[rows, cols])
    }
}

impl MatrixInit for Ones {
    fn init(rows: usize, cols: usize, _rng: &mut StdRng) -> Param {
        let mut p = Param::zeros(&[rows, cols]);
        p.value.fill(1.0);
        p
    }
}

/// A trainable `[R, C]` matrix of a `#[kiln::model]` struct's own (Keras'
/// `self.add_weight(shape = (R, C))`), multiplied in `call` as `matmul(x, self.w)`: the last
/// axis of `x`, `R` wide, becomes `C` wide (`[.., R]` → `[.., C]`), one product over every row
/// of the batch. Its parameter is `<field>.value`; it starts as `I` says (`glorot_uniform`).
#[derive(Clone, Debug)]
pub struct Matrix<const R: usize, const C: usize, I: MatrixInit = GlorotUniform> {
    product: super::Dense<R, C, super::Linear>,
    _init: PhantomData<I>,
}

impl<const R: usize, const C: usize, I: MatrixInit> Matrix<R, C, I> {
    /// A matrix at its initializer's values, drawn from `rng`.
    pub fn new(rng: &mut StdRng) -> Self {
        let mut product = super::Dense::new(false, rng);
        product.kernel = I::init(R, C, rng);
        Matrix { product, _init: PhantomData }
    }
}

impl<const R: usize, const C: usize, I: MatrixInit> Layer for Matrix<R, C, I> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.product.forward(xs, ctx);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        self.product.backward(xs, dy, ctx, opts);
    }

    fn output(&self) -> &[f32] {
        self.product.output()
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        self.product.input_grad(i)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("value", &self.product.kernel);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.product.kernel);
    }
}

impl<const R: usize, const C: usize, I: MatrixInit> Shareable for Matrix<R, C, I> {
    type Buffers = super::DenseBuffers;
    fn buffers_mut(&mut self) -> &mut super::DenseBuffers {
        self.product.buffers_mut()
    }
}

impl<const R: usize, const C: usize, I: MatrixInit> Init for Matrix<R, C, I> {
    fn init(rng: &mut StdRng) -> Self {
        Self::new(rng)
    }
}

impl<const R: usize, const C: usize, I: MatrixInit> Shaped for Matrix<R, C, I> {
    const IN: usize = R;
    const OUT: usize = C;
    const KIND: &'static str = "Matrix";
    const PARAMS: usize = R * C;
    const PARAM_SHAPES: Option<&'static [(&'static str, &'static [usize])]> = Some(&[("value", &[R, C])]);
    const MATRIX: bool = true;
}
