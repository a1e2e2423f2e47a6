use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};
use crate::kernels::conv::Window;
use crate::kernels::parallel;

/// Values from which pooling splits a batch's samples over the threads.
const PARALLEL_VALUES: usize = 1 << 16;

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value; the gradient goes to it (the first one, on ties).
    Max,
    /// The mean over the window's positions inside the input (padding is not counted, as in
    /// Keras).
    Average,
}

/// Keras' `MaxPooling1D/2D` and `AveragePooling1D/2D` (`channels_last`): each channel pooled over
/// windows of `pool_size` with `strides` and `padding`. Max pooling's backward finds each
/// maximum's position again (the first in the window, on ties); average pooling divides by the
/// number of positions inside the input.
#[derive(Clone, Debug)]
pub struct Pool {
    geom: Window,
    kind: PoolKind,
    buf: PoolBuffers,
}

/// What one application of a [`Pool`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct PoolBuffers {
    out: Vec<f32>,
    /// Global max: the input offset of each output's maximum.
    argmax: Vec<u32>,
    dx: Vec<f32>,
}

impl LayerBuffers for PoolBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Pool {
    /// A pooling layer over windows `geom`.
    pub fn new(geom: Window, kind: PoolKind) -> Self {
        Pool { geom, kind, buf: PoolBuffers::default() }
    }

    /// Moves the windows onto another input (a `#[kiln::model]` field learns its input here).
    pub fn set_window(&mut self, geom: Window) {
        self.geom = geom;
    }
}

impl Layer for Pool {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let g = self.geom;
        let (x, c) = (xs[0], g.c);
        let n = x.len() / g.in_len();
        let out = sized(&mut self.buf.out, n * g.out_positions() * c);
        let kind = self.kind;
        // Runs of samples on the threads (each sample alone, so the same bits either way).
        let parts = if x.len() >= PARALLEL_VALUES { parallel::threads() } else { 1 };
        parallel::for_runs(n, parts, [(out, g.out_positions() * c)], |s0, ns, [out]| {
            pool_forward(&g, kind, &x[s0 * g.in_len()..(s0 + ns) * g.in_len()], out)
        });
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let g = self.geom;
        let c = g.c;
        let n = xs[0].len() / g.in_len();
        let dx = sized(&mut self.buf.dx, n * g.in_len());
        let (kind, out) = (self.kind, &self.buf.out[..]);
        let parts = if dx.len() >= PARALLEL_VALUES { parallel::threads() } else { 1 };
        parallel::for_runs(n, parts, [(dx, g.in_len())], |s0, ns, [dx]| {
            let (x, at) = (&xs[0][s0 * g.in_len()..(s0 + ns) * g.in_len()], s0 * g.out_positions() * c);
            let len = ns * g.out_positions() * c;
            pool_backward(&g, kind, x, (&out[at..at + len], &dy[at..at + len]), dx)
        });
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl Shareable for Pool {
    type Buffers = PoolBuffers;
    fn buffers_mut(&mut self) -> &mut PoolBuffers {
        &mut self.buf
    }
}

/// Keras' `GlobalMaxPooling1D/2D` and `GlobalAveragePooling1D/2D`: each channel pooled over every
/// position of a sample, `[.., positions, channels] → [channels]`.
#[derive(Clone, Debug)]
pub struct GlobalPool {
    positions: usize,
    channels: usize,
    kind: PoolKind,
    buf: PoolBuffers,
}

impl GlobalPool {
    /// Pools `positions` positions of `channels` channels per sample.
    pub fn new(positions: usize, channels: usize, kind: PoolKind) -> Self {
        GlobalPool { positions, channels, kind, buf: PoolBuffers::default() }
    }
}

impl Layer for GlobalPool {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (p, c) = (self.positions, self.channels);
        let n = xs[0].len() / (p * c);
        let out = sized(&mut self.buf.out, n * c);
        if self.kind == PoolKind::Max && self.buf.argmax.len() != out.len() {
            self.buf.argmax.resize(out.len(), 0);
        }
        for s in 0..n {
            let o = &mut out[s * c..(s + 1) * c];
            let sample = &xs[0][s * p * c..(s + 1) * p * c];
            match self.kind {
                PoolKind::Max => {
                    o.fill(f32::NEG_INFINITY);
                    let arg = &mut self.buf.argmax[s * c..(s + 1) * c];
                    for (pos, row) in sample.chunks_exact(c).enumerate() {
                        for ch in 0..c {
                            if row[ch] > o[ch] {
                                o[ch] = row[ch];
                                arg[ch] = (s * p * c + pos * c + ch) as u32;
                            }
                        }
                    }
                }
                PoolKind::Average => {
                    // With a mask (Keras' masked mean) only the real steps count; a sample of
                    // padding alone averages to 0 (Keras divides 0 by 0).
                    let mask = ctx.masks[0].map(|m| &m[s * p..(s + 1) * p]);
                    o.fill(0.0);
                    for (pos, row) in sample.chunks_exact(c).enumerate() {
                        if mask.is_none_or(|m| m[pos] != 0.0) {
                            o.iter_mut().zip(row).for_each(|(o, v)| *o += v);
                        }
                    }
                    let count = mask.map_or(p as f32, |m| m.iter().sum::<f32>().max(1.0));
                    let inv = 1.0 / count;
                    o.iter_mut().for_each(|v| *v *= inv);
                }
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (p, c) = (self.positions, self.channels);
        let dx = sized(&mut self.buf.dx, xs[0].len());
        match self.kind {
            PoolKind::Max => {
                dx.fill(0.0);
                for (&i, &d) in self.buf.argmax.iter().zip(dy) {
                    dx[i as usize] += d;
                }
            }
            PoolKind::Average => {
                for (s, d) in dx.chunks_exact_mut(p * c).enumerate() {
                    let mask = ctx.masks[0].map(|m| &m[s * p..(s + 1) * p]);
                    let inv = 1.0 / mask.map_or(p as f32, |m| m.iter().sum::<f32>().max(1.0));
                    for (pos, row) in d.chunks_exact_mut(c).enumerate() {
                        let w = if mask.is_none_or(|m| m[pos] != 0.0) { inv } else { 0.0 };
                        row.iter_mut().zip(&dy[s * c..(s + 1) * c]).for_each(|(d, g)| *d = g * w);
                    }
                }
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl Shareable for GlobalPool {
    type Buffers = PoolBuffers;
    fn buffers_mut(&mut self) -> &mut PoolBuffers {
        &mut self.buf
    }
}

/// Pooling over whole samples `x` into their outputs `out`.
fn pool_forward(g: &Window, kind: PoolKind, x: &[f32], out: &mut [f32]) {
    let c = g.c;
    for (s, sample) in x.chunks_exact(g.in_len()).enumerate() {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let at = ((s * g.oh + oy) * g.ow + ox) * c;
                let o = &mut out[at..at + c];
                match kind {
                    PoolKind::Max => {
                        // A branch-free maximum per channel vectorises; backward finds where
                        // each maximum came from (as TensorFlow's MaxPoolGrad does).
                        o.fill(f32::NEG_INFINITY);
                        g.taps(oy, ox, |off| {
                            for (o, &v) in o.iter_mut().zip(&sample[off..off + c]) {
                                *o = if v > *o { v } else { *o };
                            }
                        });
                    }
                    PoolKind::Average => {
                        o.fill(0.0);
                        let mut count = 0;
                        g.taps(oy, ox, |off| {
                            count += 1;
                            o.iter_mut().zip(&sample[off..off + c]).for_each(|(o, v)| *o += v);
                        });
                        let inv = 1.0 / count.max(1) as f32;
                        o.iter_mut().for_each(|v| *v *= inv);
                    }
                }
            }
        }
    }
}

/// Pooling's backward over whole samples `x`, given their outputs and output gradients: the
/// input gradient `dx`.
fn pool_backward(g: &Window, kind: PoolKind, x: &[f32], (out, dy): (&[f32], &[f32]), dx: &mut [f32]) {
    let c = g.c;
    // Windows that tile the input exactly (a 2×2 pool with stride 2 on an even size, say) reach
    // every input once: max pooling then writes every value of `dx` and needs no zeros first.
    let tiles = (g.sh, g.sw, g.dh, g.dw, g.ph, g.pw) == (g.kh, g.kw, 1, 1, 0, 0) && g.oh * g.sh == g.h && g.ow * g.sw == g.w;
    if !(tiles && kind == PoolKind::Max) {
        dx.fill(0.0);
    }
    let samples = x.chunks_exact(g.in_len()).zip(dx.chunks_exact_mut(g.in_len())).enumerate();
    match kind {
        PoolKind::Max => {
            // The gradient goes to the first position in the window holding the maximum: `rest`
            // is what is still to place, per channel (in blocks of 64), in a branch-free pass
            // per tap.
            let mut rest = [0.0f32; 64];
            for (s, (sample, dxs)) in samples {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let at = ((s * g.oh + oy) * g.ow + ox) * c;
                        for c0 in (0..c).step_by(64) {
                            let w = (c - c0).min(64);
                            let (o, rest) = (&out[at + c0..at + c0 + w], &mut rest[..w]);
                            rest.copy_from_slice(&dy[at + c0..at + c0 + w]);
                            g.taps(oy, ox, |off| {
                                let off = off + c0;
                                route(&sample[off..off + w], o, rest, &mut dxs[off..off + w], tiles)
                            });
                        }
                    }
                }
            }
        }
        PoolKind::Average => {
            for (s, (_, dxs)) in samples {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let at = ((s * g.oh + oy) * g.ow + ox) * c;
                        let mut count = 0;
                        g.taps(oy, ox, |_| count += 1);
                        let inv = 1.0 / count.max(1) as f32;
                        g.taps(oy, ox, |off| {
                            dxs[off..off + c].iter_mut().zip(&dy[at..at + c]).for_each(|(d, g)| *d += g * inv);
                        });
                    }
                }
            }
        }
    }
}

crate::kernels::simd::multiversion! {
    /// One tap of max pooling's backward: where the input equals the window's maximum (the same
    /// bits: the maximum is one of the inputs), the gradient still to place goes to it.
    /// Branch-free on integer masks, so it vectorises. `dx` is added to, or (where this tap is
    /// the only one to reach it) overwritten.
    fn route(x: &[f32], max: &[f32], rest: &mut [f32], dx: &mut [f32], overwrite: bool) {
        let all = rest.iter_mut().zip(dx.iter_mut()).zip(x).zip(max);
        if overwrite {
            for (((r, d), x), m) in all {
                let mask = 0u32.wrapping_sub((x.to_bits() == m.to_bits()) as u32);
                let bits = r.to_bits();
                *d = f32::from_bits(bits & mask);
                *r = f32::from_bits(bits & !mask);
            }
            return;
        }
        for (((r, d), x), m) in all {
            let mask = 0u32.wrapping_sub((x.to_bits() == m.to_bits()) as u32);
            let bits = r.to_bits();
            *d += f32::from_bits(bits & mask);
            *r = f32::from_bits(bits & !mask);
        }
    }
}
