//! A layer written outside kiln: a learnable per-feature scale, `y = x · γ` on the last axis
//! (γ starts at ones). It is what a user writes to add a layer of their own: the runtime `Layer`
//! trait (forward, backward, weights), `Shaped` (its static shape rule, checked when a model using
//! it compiles), `Init` (construction from the model's seed) and, to share it between several
//! applications in a functional model, `Shareable`.

use kiln::{BackwardOpts, Ctx, Init, Layer, LayerBuffers, Param, Shaped, Shareable};

/// `Scale<N>`: multiplies each of the `N` features of the last axis by a learned factor.
#[derive(Clone, Debug)]
pub struct Scale<const N: usize> {
    /// `[N]`, one factor per feature.
    pub gamma: Param,
    buf: ScaleBuffers,
}

/// What one application of [`Scale`] writes.
#[derive(Clone, Debug, Default)]
pub struct ScaleBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl<const N: usize> Init for Scale<N> {
    fn init(_rng: &mut kiln::StdRng) -> Self {
        let mut gamma = Param::zeros(&[N]);
        gamma.value.fill(1.0);
        Scale { gamma, buf: ScaleBuffers::default() }
    }
}

impl<const N: usize> Shaped for Scale<N> {
    const IN: usize = N;
    const OUT: usize = N;
    const KIND: &'static str = "Scale";
    const PARAMS: usize = N;
}

impl<const N: usize> Layer for Scale<N> {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let x = xs[0];
        self.buf.out.resize(x.len(), 0.0);
        for (o, (x, g)) in self.buf.out.iter_mut().zip(x.iter().zip(self.gamma.value.iter().cycle())) {
            *o = x * g;
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let x = xs[0];
        if !opts.accumulate {
            self.gamma.grad.fill(0.0);
        }
        for (xr, dr) in x.chunks_exact(N).zip(dy.chunks_exact(N)) {
            for ((g, x), d) in self.gamma.grad.iter_mut().zip(xr).zip(dr) {
                *g += x * d;
            }
        }
        if opts.input_grad {
            self.buf.dx.resize(dy.len(), 0.0);
            for (dx, (d, g)) in self.buf.dx.iter_mut().zip(dy.iter().zip(self.gamma.value.iter().cycle())) {
                *dx = d * g;
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("gamma", &self.gamma);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.gamma);
    }
}

impl LayerBuffers for ScaleBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<const N: usize> Shareable for Scale<N> {
    type Buffers = ScaleBuffers;
    fn buffers_mut(&mut self) -> &mut ScaleBuffers {
        &mut self.buf
    }
}
