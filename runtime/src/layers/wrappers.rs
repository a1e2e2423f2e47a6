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
/// order, then the two are merged.
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
}

impl LayerBuffers for BidirectionalBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Bidirectional {
    /// The two directions, built by the caller (the backward one reads the other way).
    pub fn new(forward: Recurrent, backward: Recurrent, mode: MergeMode) -> Self {
        Bidirectional { forward, backward: backward.reversed(), mode, buf: BidirectionalBuffers::default() }
    }

    /// Output rows per sample: the steps, or 1 for the last state.
    fn steps(&self) -> usize {
        let cfg = self.forward.config();
        if cfg.return_sequences { cfg.steps } else { 1 }
    }
}

/// The backward direction's row for output row `r` (its steps run the other way).
fn backward_row(r: usize, t: usize) -> usize {
    let (i, s) = (r / t, r % t);
    i * t + (t - 1 - s)
}

impl Layer for Bidirectional {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.forward.forward(xs, ctx);
        self.backward.forward(xs, ctx);
        let u = self.forward.config().units;
        let w = if self.mode == MergeMode::Concat { 2 * u } else { u };
        let (a, b) = (self.forward.output(), self.backward.output());
        let t = self.steps();
        let out = sized(&mut self.buf.out, a.len() / u * w);
        for r in 0..ctx.n * t {
            let (fr, br) = (r, backward_row(r, t));
            let (af, bf, o) = (&a[fr * u..(fr + 1) * u], &b[br * u..(br + 1) * u], &mut out[r * w..(r + 1) * w]);
            match self.mode {
                MergeMode::Concat => {
                    o[..u].copy_from_slice(af);
                    o[u..].copy_from_slice(bf);
                }
                MergeMode::Sum => o.iter_mut().zip(af.iter().zip(bf)).for_each(|(o, (x, y))| *o = x + y),
                MergeMode::Mul => o.iter_mut().zip(af.iter().zip(bf)).for_each(|(o, (x, y))| *o = x * y),
                MergeMode::Ave => o.iter_mut().zip(af.iter().zip(bf)).for_each(|(o, (x, y))| *o = (x + y) * 0.5),
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let u = self.forward.config().units;
        let w = if self.mode == MergeMode::Concat { 2 * u } else { u };
        let len = dy.len() / w * u;
        let t = self.steps();
        {
            let b = &mut self.buf;
            let (dyf, dyb) = (sized(&mut b.dyf, len), sized(&mut b.dyb, len));
            let (a, bo) = (self.forward.output(), self.backward.output());
            for r in 0..len / u {
                let (fr, br) = (r, backward_row(r, t));
                let d = &dy[r * w..(r + 1) * w];
                let (df, db) = (&mut dyf[fr * u..(fr + 1) * u], &mut dyb[br * u..(br + 1) * u]);
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
                        let (af, bf) = (&a[fr * u..(fr + 1) * u], &bo[br * u..(br + 1) * u]);
                        df.iter_mut().zip(d.iter().zip(bf)).for_each(|(o, (v, y))| *o = v * y);
                        db.iter_mut().zip(d.iter().zip(af)).for_each(|(o, (v, x))| *o = v * x);
                    }
                }
            }
        }
        self.forward.backward(xs, &self.buf.dyf, ctx, opts);
        self.backward.backward(xs, &self.buf.dyb, ctx, opts);
        if opts.input_grad {
            let (f, b) = (self.forward.input_grad(0), self.backward.input_grad(0));
            let dx = sized(&mut self.buf.dx, f.len());
            dx.iter_mut().zip(f.iter().zip(b)).for_each(|(o, (x, y))| *o = x + y);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
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
