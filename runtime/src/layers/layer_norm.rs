use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::parallel;

/// Values from which a layer's rows are split over the threads.
const PARALLEL_VALUES: usize = 1 << 15;

/// Runs of rows for the threads: one per thread for a large enough layer, else one.
fn parts(rows: usize, f: usize) -> usize {
    if rows * f >= PARALLEL_VALUES { parallel::threads() } else { 1 }
}

/// A sum in eight running parts (so that it vectorises), in f64.
#[inline]
fn sum_f64(values: impl Iterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 8];
    for (k, v) in values.enumerate() {
        acc[k % 8] += v;
    }
    acc.iter().sum()
}

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
        let (x, f, eps) = (xs[0], self.features, self.epsilon as f64);
        let rows = x.len() / f;
        let b = &mut self.buf;
        sized(&mut b.out, x.len());
        sized(&mut b.xhat, x.len());
        sized(&mut b.inv_std, rows);
        let gamma = self.gamma.as_ref().map(|g| &g.value[..]);
        let beta = self.beta.as_ref().map(|b| &b.value[..]);
        // Rows are independent: runs of them on the threads give the same bits as one thread.
        let bufs = [(&mut b.out[..], f), (&mut b.xhat[..], f), (&mut b.inv_std[..], 1)];
        parallel::for_runs(rows, parts(rows, f), bufs, |r0, _, [out, xhat, inv_std]| {
            for (k, inv) in inv_std.iter_mut().enumerate() {
                let r = r0 + k;
                let xr = &x[r * f..(r + 1) * f];
                let mean = sum_f64(xr.iter().map(|&v| v as f64)) / f as f64;
                let var = sum_f64(xr.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean))) / f as f64;
                *inv = (1.0 / (var + eps).sqrt()) as f32;
                let (xh, out) = (&mut xhat[k * f..(k + 1) * f], &mut out[k * f..(k + 1) * f]);
                let (m, inv) = (mean as f32, *inv);
                xh.iter_mut().zip(xr).for_each(|(h, &x)| *h = (x - m) * inv);
                match gamma {
                    Some(g) => out.iter_mut().zip(xh.iter().zip(g)).for_each(|(o, (h, g))| *o = h * g),
                    None => out.copy_from_slice(xh),
                }
                if let Some(be) = beta {
                    out.iter_mut().zip(be).for_each(|(o, b)| *o += b);
                }
            }
        });
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let f = self.features;
        let rows = xs[0].len() / f;
        let b = &mut self.buf;
        let keep = if opts.accumulate { 1.0 } else { 0.0 };
        if let Some(g) = &mut self.gamma {
            g.grad.iter_mut().for_each(|v| *v *= keep);
            for (dyr, xh) in dy.chunks_exact(f).zip(b.xhat.chunks_exact(f)) {
                g.grad.iter_mut().zip(dyr.iter().zip(xh)).for_each(|(g, (d, h))| *g += d * h);
            }
        }
        if let Some(be) = &mut self.beta {
            be.grad.iter_mut().for_each(|v| *v *= keep);
            for dyr in dy.chunks_exact(f) {
                be.grad.iter_mut().zip(dyr).for_each(|(g, d)| *g += d);
            }
        }
        if opts.input_grad {
            sized(&mut b.dx, rows * f);
            let gamma = self.gamma.as_ref().map(|g| &g.value[..]);
            let (xhat, inv_std) = (&b.xhat[..], &b.inv_std[..]);
            parallel::for_runs(rows, parts(rows, f), [(&mut b.dx[..], f)], |r0, _, [dx]| {
                for (k, dxr) in dx.chunks_exact_mut(f).enumerate() {
                    // dxhat = dy · gamma; dx = inv_std · (dxhat - mean(dxhat) - xhat · mean(dxhat · xhat)).
                    let r = r0 + k;
                    let (dyr, xh) = (&dy[r * f..(r + 1) * f], &xhat[r * f..(r + 1) * f]);
                    match gamma {
                        Some(g) => dxr.iter_mut().zip(dyr.iter().zip(g)).for_each(|(d, (y, g))| *d = y * g),
                        None => dxr.copy_from_slice(dyr),
                    }
                    let s = sum_f64(dxr.iter().map(|&d| d as f64));
                    let sx = sum_f64(dxr.iter().zip(xh).map(|(&d, &h)| (d * h) as f64));
                    let (ms, msx) = ((s / f as f64) as f32, (sx / f as f64) as f32);
                    let inv = inv_std[r];
                    dxr.iter_mut().zip(xh).for_each(|(d, &h)| *d = inv * (*d - ms - h * msx));
                }
            });
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
