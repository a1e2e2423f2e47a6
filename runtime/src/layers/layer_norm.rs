use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};

/// Keras' `LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True)`: each position's
/// last axis normalised to zero mean and unit (biased) variance, then scaled by `gamma` and
/// shifted by `beta`. The same in training and inference: no state, no batch statistics.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// `[features]`, the learned scale (`scale=True`).
    pub gamma: Option<Param>,
    /// `[features]`, the learned offset (`center=True`).
    pub beta: Option<Param>,
    features: usize,
    epsilon: f32,
    buf: LayerNormBuffers,
}

/// What one application of a [`LayerNorm`] writes.
#[derive(Clone, Debug, Default)]
pub struct LayerNormBuffers {
    out: Vec<f32>,
    /// The normalised input, and per row `1 / sqrt(var + eps)`.
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for LayerNormBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl LayerNorm {
    /// A layer over a last axis of `features`, with Keras' initial values (gamma ones, beta zeros).
    pub fn new(features: usize, epsilon: f32, center: bool, scale: bool) -> Self {
        let mut gamma = Param::zeros(&[features]);
        gamma.value.fill(1.0);
        LayerNorm {
            gamma: scale.then_some(gamma),
            beta: center.then(|| Param::zeros(&[features])),
            features,
            epsilon,
            buf: LayerNormBuffers::default(),
        }
    }
}

impl Layer for LayerNorm {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, f) = (xs[0], self.features);
        let rows = x.len() / f;
        let b = &mut self.buf;
        sized(&mut b.out, x.len());
        sized(&mut b.xhat, x.len());
        sized(&mut b.inv_std, rows);
        let gamma = self.gamma.as_ref().map(|g| &g.value[..]);
        let beta = self.beta.as_ref().map(|b| &b.value[..]);
        for r in 0..rows {
            let xr = &x[r * f..(r + 1) * f];
            let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / f as f64;
            let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / f as f64;
            let inv = (1.0 / (var + self.epsilon as f64).sqrt()) as f32;
            b.inv_std[r] = inv;
            let (xh, out) = (&mut b.xhat[r * f..(r + 1) * f], &mut b.out[r * f..(r + 1) * f]);
            let m = mean as f32;
            xh.iter_mut().zip(xr).for_each(|(h, &x)| *h = (x - m) * inv);
            match gamma {
                Some(g) => out.iter_mut().zip(xh.iter().zip(g)).for_each(|(o, (h, g))| *o = h * g),
                None => out.copy_from_slice(xh),
            }
            if let Some(be) = beta {
                out.iter_mut().zip(be).for_each(|(o, b)| *o += b);
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let f = self.features;
        let rows = xs[0].len() / f;
        let b = &mut self.buf;
        let keep = if opts.accumulate { 1.0 } else { 0.0 };
        if let Some(g) = &mut self.gamma {
            g.grad.iter_mut().for_each(|v| *v *= keep);
            for r in 0..rows {
                for j in 0..f {
                    g.grad[j] += dy[r * f + j] * b.xhat[r * f + j];
                }
            }
        }
        if let Some(be) = &mut self.beta {
            be.grad.iter_mut().for_each(|v| *v *= keep);
            for r in 0..rows {
                for j in 0..f {
                    be.grad[j] += dy[r * f + j];
                }
            }
        }
        if opts.input_grad {
            let dx = sized(&mut b.dx, rows * f);
            let gamma = self.gamma.as_ref().map(|g| &g.value[..]);
            for r in 0..rows {
                // dxhat = dy · gamma; dx = inv_std · (dxhat - mean(dxhat) - xhat · mean(dxhat · xhat)).
                let (dyr, xh) = (&dy[r * f..(r + 1) * f], &b.xhat[r * f..(r + 1) * f]);
                let dxr = &mut dx[r * f..(r + 1) * f];
                match gamma {
                    Some(g) => dxr.iter_mut().zip(dyr.iter().zip(g)).for_each(|(d, (y, g))| *d = y * g),
                    None => dxr.copy_from_slice(dyr),
                }
                let s: f64 = dxr.iter().map(|&d| d as f64).sum();
                let sx: f64 = dxr.iter().zip(xh).map(|(&d, &h)| (d * h) as f64).sum();
                let (ms, msx) = ((s / f as f64) as f32, (sx / f as f64) as f32);
                let inv = b.inv_std[r];
                dxr.iter_mut().zip(xh).for_each(|(d, &h)| *d = inv * (*d - ms - h * msx));
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
        if let Some(g) = &self.gamma {
            f("gamma", g);
        }
        if let Some(b) = &self.beta {
            f("beta", b);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        if let Some(g) = &mut self.gamma {
            f(g);
        }
        if let Some(b) = &mut self.beta {
            f(b);
        }
    }
}

impl Shareable for LayerNorm {
    type Buffers = LayerNormBuffers;
    fn buffers_mut(&mut self) -> &mut LayerNormBuffers {
        &mut self.buf
    }
}
