//! Keras' layer wrappers: `TimeDistributed(layer)` (the layer applied to every step) and
//! `Bidirectional(rnn, merge_mode)` (a recurrent layer read forwards and backwards).

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Recurrent, Regularizer, Shareable, sized};

/// Keras' `TimeDistributed(layer)`: `layer` applied to each of the `steps` slices of every
/// sample. On row-major data the slices of a batch are one batch of `n · steps` samples, so the
/// wrapper runs the layer once on that.
#[derive(Clone, Debug)]
pub struct TimeDistributed<L> {
    /// The wrapped layer.
    pub layer: L,
    steps: usize,
}

impl<L: Layer> TimeDistributed<L> {
    /// `layer` over `steps` steps per sample.
    pub fn new(layer: L, steps: usize) -> Self {
        TimeDistributed { layer, steps }
    }

    fn inner<'c>(&self, ctx: &'c mut Ctx<'_>) -> Ctx<'c> {
        Ctx { n: ctx.n * self.steps, training: ctx.training, rng: &mut *ctx.rng, masks: [None; 3] }
    }
}

impl<L: Layer> Layer for TimeDistributed<L> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let mut inner = self.inner(ctx);
        self.layer.forward(xs, &mut inner);
    }
    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let mut inner = self.inner(ctx);
        self.layer.backward(xs, dy, &mut inner, opts);
    }
    fn output(&self) -> &[f32] {
        self.layer.output()
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        self.layer.input_grad(i)
    }
    fn set_activity_regularizer(&mut self, regularizer: Option<Regularizer>) -> bool {
        self.layer.set_activity_regularizer(regularizer)
    }
    fn penalty(&self) -> f64 {
        self.layer.penalty()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        self.layer.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.layer.visit_params_mut(f)
    }
    fn set_trainable(&mut self, trainable: bool) {
        self.layer.set_trainable(trainable)
    }
}

impl<L: Shareable> Shareable for TimeDistributed<L> {
    type Buffers = L::Buffers;
    fn buffers_mut(&mut self) -> &mut L::Buffers {
        self.layer.buffers_mut()
    }
}

pub use crate::infer::MergeMode;

/// Keras' `Bidirectional(rnn)`: the layer reads the sequence forwards, a copy of it (weights of
/// its own) reads it backwards; with `return_sequences` the backward outputs are put back in time
/// order, then the two are merged. With `return_state`, each sample's merged output is followed
/// by the forward direction's final states, then the backward one's (Keras' order).
#[derive(Clone, Debug)]
pub struct Bidirectional {
    /// The forward direction.
    pub forward: Recurrent,
    /// The backward direction (`go_backwards` flipped).
    pub backward: Recurrent,
    mode: MergeMode,
    buf: BidirectionalBuffers,
}

/// What one application of a [`Bidirectional`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct BidirectionalBuffers {
    out: Vec<f32>,
    dyf: Vec<f32>,
    dyb: Vec<f32>,
    dx: Vec<f32>,
    /// With Keras' `initial_state`, the gradients of the states given (the forward direction's,
    /// then the backward one's), one after the other, `state` values each.
    dstates: Vec<f32>,
    state: usize,
}

impl LayerBuffers for BidirectionalBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        match i {
            0 => &self.dx,
            _ => self.dstates.get((i - 1) * self.state..i * self.state).unwrap_or_default(),
        }
    }
}

impl Bidirectional {
    /// The two directions, built by the caller (the backward one reads the other way).
    pub fn new(forward: Recurrent, backward: Recurrent, mode: MergeMode) -> Self {
        Bidirectional { forward, backward: backward.reversed(), mode, buf: BidirectionalBuffers::default() }
    }

    /// Per sample: the merged rows (the steps, or 1 for the last state), the final states each
    /// direction appends (Keras' `return_state`), the width of a merged row, and the values of
    /// one sample's output: the merged rows, then the forward direction's states, then the
    /// backward one's (Keras' `[out, h_fwd, c_fwd, h_bwd, c_bwd]`).
    fn layout(&self) -> (usize, usize, usize, usize) {
        let cfg = self.forward.config();
        let u = cfg.units;
        let t = if cfg.return_sequences { cfg.steps } else { 1 };
        let w = if self.mode == MergeMode::Concat { 2 * u } else { u };
        let k = cfg.states();
        (t, k, w, t * w + 2 * k * u)
    }
}

/// Each direction's inputs: the sequence, then its half of Keras' `initial_state` (the forward
/// direction's states come first).
fn directions<'a>(xs: &[&'a [f32]]) -> ([&'a [f32]; 3], [&'a [f32]; 3], usize) {
    let k = (xs.len() - 1) / 2;
    let (mut f, mut b) = ([xs[0]; 3], [xs[0]; 3]);
    for j in 0..k.min(2) {
        f[1 + j] = xs[1 + j];
        b[1 + j] = xs[1 + k + j];
    }
    (f, b, 1 + k.min(2))
}

impl Layer for Bidirectional {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (fx, bx, len) = directions(xs);
        self.forward.forward(&fx[..len], ctx);
        self.backward.forward(&bx[..len], ctx);
        let u = self.forward.config().units;
        let (t, k, w, per) = self.layout();
        // Each direction's sample: its rows (the backward one's in reverse time), then its states.
        let inner = (t + k) * u;
        let (a, b) = (self.forward.output(), self.backward.output());
        let out = sized(&mut self.buf.out, ctx.n * per);
        for i in 0..ctx.n {
            let (ai, bi) = (&a[i * inner..(i + 1) * inner], &b[i * inner..(i + 1) * inner]);
            let oi = &mut out[i * per..(i + 1) * per];
            for s in 0..t {
                let (af, bf) = (&ai[s * u..(s + 1) * u], &bi[(t - 1 - s) * u..(t - s) * u]);
                self.mode.merge(af, bf, &mut oi[s * w..(s + 1) * w]);
            }
            let (fwd, bwd) = oi[t * w..].split_at_mut(k * u);
            fwd.copy_from_slice(&ai[t * u..]);
            bwd.copy_from_slice(&bi[t * u..]);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let u = self.forward.config().units;
        let (t, k, w, per) = self.layout();
        let inner = (t + k) * u;
        {
            let b = &mut self.buf;
            let (dyf, dyb) = (sized(&mut b.dyf, ctx.n * inner), sized(&mut b.dyb, ctx.n * inner));
            let (a, bo) = (self.forward.output(), self.backward.output());
            for i in 0..ctx.n {
                let di = &dy[i * per..(i + 1) * per];
                let (dfi, dbi) = (&mut dyf[i * inner..(i + 1) * inner], &mut dyb[i * inner..(i + 1) * inner]);
                for s in 0..t {
                    let (fr, br) = (i * inner + s * u, i * inner + (t - 1 - s) * u);
                    let d = &di[s * w..(s + 1) * w];
                    let (df, db) = (&mut dfi[s * u..(s + 1) * u], &mut dbi[(t - 1 - s) * u..(t - s) * u]);
                    match self.mode {
                        MergeMode::Concat => {
                            df.copy_from_slice(&d[..u]);
                            db.copy_from_slice(&d[u..]);
                        }
                        MergeMode::Sum => {
                            df.copy_from_slice(d);
                            db.copy_from_slice(d);
                        }
                        MergeMode::Ave => {
                            df.iter_mut().zip(d).for_each(|(o, v)| *o = v * 0.5);
                            db.iter_mut().zip(d).for_each(|(o, v)| *o = v * 0.5);
                        }
                        MergeMode::Mul => {
                            let (af, bf) = (&a[fr..fr + u], &bo[br..br + u]);
                            df.iter_mut().zip(d.iter().zip(bf)).for_each(|(o, (v, y))| *o = v * y);
                            db.iter_mut().zip(d.iter().zip(af)).for_each(|(o, (v, x))| *o = v * x);
                        }
                    }
                }
                // The final states' gradients go to the direction that wrote them.
                dfi[t * u..].copy_from_slice(&di[t * w..t * w + k * u]);
                dbi[t * u..].copy_from_slice(&di[t * w + k * u..]);
            }
        }
        let (fx, bx, len) = directions(xs);
        self.forward.backward(&fx[..len], &self.buf.dyf, ctx, opts);
        self.backward.backward(&bx[..len], &self.buf.dyb, ctx, opts);
        if opts.input_grad {
            let (f, b) = (self.forward.input_grad(0), self.backward.input_grad(0));
            let dx = sized(&mut self.buf.dx, f.len());
            dx.iter_mut().zip(f.iter().zip(b)).for_each(|(o, (x, y))| *o = x + y);
            // The initial states' gradients, each direction's in its order.
            let state = ctx.n * u;
            let given = len - 1;
            let ds = sized(&mut self.buf.dstates, 2 * given * state);
            for j in 0..given {
                ds[j * state..(j + 1) * state].copy_from_slice(self.forward.input_grad(1 + j));
                ds[(given + j) * state..(given + j + 1) * state].copy_from_slice(self.backward.input_grad(1 + j));
            }
            self.buf.state = state;
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    /// Input 0 is the sequence; with Keras' `initial_state`, the states given follow (the
    /// forward direction's, then the backward one's).
    fn input_grad(&self, i: usize) -> &[f32] {
        self.buf.input_grad(i)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        self.forward.visit_params(&mut |name, p| f(prefixed("forward", name), p));
        self.backward.visit_params(&mut |name, p| f(prefixed("backward", name), p));
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.forward.visit_params_mut(f);
        self.backward.visit_params_mut(f);
    }
}

/// `forward_kernel`, `backward_recurrent_kernel`, ...: a direction's weight names, without
/// building strings.
fn prefixed(direction: &str, name: &str) -> &'static str {
    match (direction, name) {
        ("forward", "kernel") => "forward_kernel",
        ("forward", "recurrent_kernel") => "forward_recurrent_kernel",
        ("forward", _) => "forward_bias",
        (_, "kernel") => "backward_kernel",
        (_, "recurrent_kernel") => "backward_recurrent_kernel",
        _ => "backward_bias",
    }
}

impl Shareable for Bidirectional {
    type Buffers = BidirectionalBuffers;
    fn buffers_mut(&mut self) -> &mut BidirectionalBuffers {
        &mut self.buf
    }
}
