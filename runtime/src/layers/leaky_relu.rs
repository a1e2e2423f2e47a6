use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};

/// Keras' `LeakyReLU(negative_slope=0.3)` layer: `x` where `x > 0`, `negative_slope · x` elsewhere,
/// on inputs of any shape. The slope is a run-time value (an `f32` cannot be a const generic).
#[derive(Clone, Debug)]
pub struct LeakyReLU {
    slope: f32,
    buf: LeakyReluBuffers,
}

/// What one application of a [`LeakyReLU`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct LeakyReluBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LeakyReLU {
    /// A layer with the given slope below zero.
    pub fn new(negative_slope: f32) -> Self {
        LeakyReLU { slope: negative_slope, buf: LeakyReluBuffers::default() }
    }

    /// The slope below zero.
    pub fn negative_slope(&self) -> f32 {
        self.slope
    }
}

impl Layer for LeakyReLU {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        for (o, &x) in out.iter_mut().zip(xs[0]) {
            *o = if x > 0.0 { x } else { self.slope * x };
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let dx = sized(&mut self.buf.dx, dy.len());
        for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(xs[0]) {
            *d = if x > 0.0 { g } else { self.slope * g };
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl LayerBuffers for LeakyReluBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Shareable for LeakyReLU {
    type Buffers = LeakyReluBuffers;
    fn buffers_mut(&mut self) -> &mut LeakyReluBuffers {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_below_zero_and_its_gradient() {
        let mut l = LeakyReLU::new(0.3);
        let mut s = crate::random::Stream::new(0);
        let x = [-2.0f32, 0.0, 1.5];
        l.forward(&[&x], &mut Ctx::new(1, true, &mut s));
        assert_eq!(l.output(), &[-0.6, 0.0, 1.5]);
        let opts = BackwardOpts { input_grad: true, ..BackwardOpts::default() };
        l.backward(&[&x], &[1.0, 1.0, 1.0], &mut Ctx::new(1, true, &mut s), opts);
        assert_eq!(l.input_grad(0), &[0.3, 0.3, 1.0]);
    }
}
