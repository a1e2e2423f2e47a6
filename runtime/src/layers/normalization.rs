//! Keras' `Normalization()` layer: each feature of the last axis shifted by its mean and divided
//! by its standard deviation, statistics that [`Model::adapt`](crate::Model::adapt) computes
//! from data (Keras' `layer.adapt(x)`).

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};

/// The floor of the standard deviation, Keras' `epsilon()`.
const EPSILON: f32 = 1e-7;

/// `(x - mean) / max(sqrt(variance), 1e-7)` over the last axis of `features`. `mean`,
/// `variance` and `count` are non-trainable state, initially 0, 1 and 0, as in Keras (whose
/// `adapt` sets the first two; `count` is kept for its weight layout).
#[derive(Clone, Debug)]
pub struct Normalization {
    /// `[features]`.
    pub mean: Param,
    /// `[features]`.
    pub variance: Param,
    /// `[]`: Keras' third weight, which its `adapt` leaves at 0.
    pub count: Param,
    buf: NormalizationBuffers,
}

/// What one application of a [`Normalization`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct NormalizationBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
    /// Per feature: `1 / max(sqrt(variance), 1e-7)`.
    inv: Vec<f32>,
}

impl LayerBuffers for NormalizationBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Normalization {
    /// A layer over `features` features, with Keras' initial state.
    pub fn new(features: usize) -> Self {
        Normalization {
            mean: Param::state(&[features], 0.0),
            variance: Param::state(&[features], 1.0).non_negative(),
            count: Param::state(&[], 0.0),
            buf: NormalizationBuffers::default(),
        }
    }
}

impl Layer for Normalization {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let f = self.mean.value.len();
        let b = &mut self.buf;
        let inv = sized(&mut b.inv, f);
        inv.iter_mut().zip(&self.variance.value).for_each(|(i, v)| *i = 1.0 / v.sqrt().max(EPSILON));
        let out = sized(&mut b.out, xs[0].len());
        for (o, x) in out.chunks_exact_mut(f).zip(xs[0].chunks_exact(f)) {
            for (((o, x), m), i) in o.iter_mut().zip(x).zip(&self.mean.value).zip(b.inv.iter()) {
                *o = (x - m) * i;
            }
        }
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let f = self.mean.value.len();
        let b = &mut self.buf;
        let dx = sized(&mut b.dx, dy.len());
        for (d, g) in dx.chunks_exact_mut(f).zip(dy.chunks_exact(f)) {
            d.iter_mut().zip(g).zip(&b.inv).for_each(|((d, g), i)| *d = g * i);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("mean", &self.mean);
        f("variance", &self.variance);
        f("count", &self.count);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.mean);
        f(&mut self.variance);
        f(&mut self.count);
    }
}

impl Shareable for Normalization {
    type Buffers = NormalizationBuffers;
    fn buffers_mut(&mut self) -> &mut NormalizationBuffers {
        &mut self.buf
    }
}
