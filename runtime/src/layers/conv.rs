use std::marker::PhantomData;

use rand::Rng;

use super::{ActivationFn, BackwardOpts, Ctx, Layer, LayerBuffers, Linear, Param, Shareable, sized};
use crate::kernels::activation::{ActKind, act_backward, bias_act};
use crate::kernels::conv::{Epilogue, SMALL_PATCH, Window, small_grad_patch, small_patch_forward, small_patch_grad};
use crate::kernels::matmul::{Mat, PARALLEL_FLOPS, column_sums, gemm, gemm_rows, transpose};
use crate::kernels::parallel;
use super::chunks::{MAX_CHUNKS, chunks, cut};

/// Keras' `Conv2D` and `Conv1D` (`channels_last`): `filters` kernels of `kernel_size` slid over
/// the input with `strides`, `padding` and `dilation_rate`, plus a bias, then the activation.
///
/// The geometry is fixed when the model compiles ([`Window`]); the layer turns each batch into one
/// matrix product: im2col writes every window as a row, and `[positions, patch] · [patch,
/// filters]` gives the `channels_last` output directly. Backward is two products and col2im.
/// The kernel is `[kh, kw, channels, filters]` (`[k, channels, filters]` for Conv1D), Keras'
/// layout, initialised with `glorot_uniform`; the bias with zeros.
#[derive(Clone, Debug)]
pub struct Conv<A: ActivationFn = Linear> {
    /// `[kh, kw, channels, filters]`, or `[k, channels, filters]` for a 1-D convolution.
    pub kernel: Param,
    /// `[filters]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    geom: Window,
    filters: usize,
    /// Channel groups: group `g` reads input channels `g·c/groups..` and writes filters
    /// `g·f/groups..` (Keras' `groups`).
    groups: usize,
    /// Keras' `activity_regularizer`, on the output.
    activity: super::Activity,
    buf: ConvBuffers,
    _act: PhantomData<A>,
}

/// What one application of a [`Conv`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct ConvBuffers {
    /// The im2col matrix of the last forward pass.
    cols: Vec<f32>,
    out: Vec<f32>,
    pre: Vec<f32>,
    dz: Vec<f32>,
    dcols: Vec<f32>,
    dx: Vec<f32>,
    /// The kernel transposed `[filters, patch]`, for the input gradient.
    wt: Vec<f32>,
    /// Grouped convolutions: one group's kernel, output, output gradient and kernel gradient.
    kg: Vec<f32>,
    outg: Vec<f32>,
    dzg: Vec<f32>,
    dkg: Vec<f32>,
    /// Each chunk of samples' share of the kernel and bias gradients (`[kernel | bias]`), summed
    /// in chunk order, and each chunk's partial sums of its blocks of rows.
    dkp: Vec<f32>,
    stacks: Vec<Vec<f32>>,
}

/// Rows (samples × output positions) per block of a kernel gradient's sum: each block's product
/// is one pass of the product kernel, the blocks are summed pairwise.
const GRAD_ROWS: usize = 256;

impl LayerBuffers for ConvBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<A: ActivationFn> Conv<A> {
    /// A layer over windows `geom` with `filters` outputs, initialised as Keras does from `rng`;
    /// `one_d` gives the kernel Conv1D's shape `[k, channels, filters]`.
    pub fn new(geom: Window, filters: usize, use_bias: bool, one_d: bool, rng: &mut impl Rng) -> Self {
        Self::grouped(geom, filters, 1, use_bias, one_d, rng)
    }

    /// A convolution of `groups` channel groups (the macros check that both the channels and the
    /// filters divide by it); the kernel is `[kh, kw, channels / groups, filters]`.
    pub fn grouped(
        geom: Window,
        filters: usize,
        groups: usize,
        use_bias: bool,
        one_d: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let cg = geom.c / groups.max(1);
        let shape: Vec<usize> = if one_d { vec![geom.kw, cg, filters] } else { vec![geom.kh, geom.kw, cg, filters] };
        let field = geom.kh * geom.kw;
        Conv {
            kernel: Param::glorot_uniform_shaped(&shape, field * cg, field * filters, rng),
            bias: use_bias.then(|| Param::zeros(&[filters])),
            geom,
            filters,
            groups: groups.max(1),
            activity: super::Activity::default(),
            buf: ConvBuffers::default(),
            _act: PhantomData,
        }
    }

    /// Moves the kernel onto windows of another input with the same window, channels and
    /// filters (a `#[kiln::model]` field learns its input here).
    pub fn set_window(&mut self, geom: Window) {
        debug_assert!(geom.kh == self.geom.kh && geom.kw == self.geom.kw && geom.c == self.geom.c);
        self.geom = geom;
    }

    /// Forward of a grouped convolution: per group, im2col of its channels, one product with its
    /// block of filters, and the result written into its output columns.
    fn forward_grouped(&mut self, x: &[f32], n: usize) {
        let (g, f, groups) = (self.geom, self.filters, self.groups);
        let (cg, fg) = (g.c / groups, f / groups);
        let (rows, patch) = (n * g.out_positions(), g.kh * g.kw * cg);
        let b = &mut self.buf;
        let cols = sized(&mut b.cols, groups * rows * patch);
        let out = sized(&mut b.out, rows * f);
        for gi in 0..groups {
            let colsg = &mut cols[gi * rows * patch..(gi + 1) * rows * patch];
            g.im2col_group(x, n, gi * cg, cg, colsg);
            let kg = sized(&mut b.kg, patch * fg);
            for (p, row) in kg.chunks_exact_mut(fg).enumerate() {
                row.copy_from_slice(&self.kernel.value[p * f + gi * fg..][..fg]);
            }
            let outg = sized(&mut b.outg, rows * fg);
            gemm(rows, patch, fg, Mat::n(colsg), Mat::n(&b.kg), outg, 0.0);
            for (o, v) in out.chunks_exact_mut(f).zip(b.outg.chunks_exact(fg)) {
                o[gi * fg..(gi + 1) * fg].copy_from_slice(v);
            }
        }
    }

    /// Kernel and input gradients of a grouped convolution, from `self.buf.dz`.
    fn backward_grouped(&mut self, n: usize, accumulate: bool, input_grad: bool) {
        let (g, f, groups) = (self.geom, self.filters, self.groups);
        let (cg, fg) = (g.c / groups, f / groups);
        let (rows, patch) = (n * g.out_positions(), g.kh * g.kw * cg);
        let b = &mut self.buf;
        if input_grad {
            sized(&mut b.dx, n * g.in_len()).fill(0.0);
        }
        for gi in 0..groups {
            let colsg = &b.cols[gi * rows * patch..(gi + 1) * rows * patch];
            let dzg = sized(&mut b.dzg, rows * fg);
            for (d, z) in dzg.chunks_exact_mut(fg).zip(b.dz.chunks_exact(f)) {
                d.copy_from_slice(&z[gi * fg..(gi + 1) * fg]);
            }
            let dkg = sized(&mut b.dkg, patch * fg);
            gemm(patch, rows, fg, Mat::t(colsg), Mat::n(&b.dzg), dkg, 0.0);
            for (p, row) in b.dkg.chunks_exact(fg).enumerate() {
                let dst = &mut self.kernel.grad[p * f + gi * fg..][..fg];
                dst.iter_mut().zip(row).for_each(|(d, v)| *d = if accumulate { *d + v } else { *v });
            }
            if input_grad {
                let kg = sized(&mut b.kg, patch * fg);
                for (p, row) in kg.chunks_exact_mut(fg).enumerate() {
                    row.copy_from_slice(&self.kernel.value[p * f + gi * fg..][..fg]);
                }
                let dcols = sized(&mut b.dcols, rows * patch);
                gemm(rows, fg, patch, Mat::n(&b.dzg), Mat::t(&b.kg), dcols, 0.0);
                g.col2im_group_add(&b.dcols, n, gi * cg, cg, &mut b.dx);
            }
        }
    }

    /// The window geometry.
    pub fn window(&self) -> &Window {
        &self.geom
    }
}

impl<A: ActivationFn> Layer for Conv<A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (g, f) = (&self.geom, self.filters);
        let n = xs[0].len() / g.in_len();
        let rows = n * g.out_positions();
        if self.groups > 1 {
            self.forward_grouped(xs[0], n);
            let out = &mut self.buf.out[..];
            let pre = (ctx.training && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, rows * f));
            bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), f);
            self.activity.forward(&self.buf.out, n);
            return;
        }
        let (patch, pos, inl) = (g.patch(), g.out_positions(), g.in_len());
        let pre_w = if ctx.training && A::KIND.needs_input() { pos * f } else { 0 };
        sized(&mut self.buf.cols, rows * patch);
        sized(&mut self.buf.out, rows * f);
        sized(&mut self.buf.pre, n * pre_w);
        // Runs of samples on the threads, each through im2col, the product, bias and activation
        // while its rows are in cache; every row is computed alone, so the split changes no bits.
        // The small-patch kernel runs at a fraction of sgemm's speed: a quarter of the flops pay
        // for a thread. Larger patches multiply through `gemm_rows` (unpacked with AVX-512):
        // sgemm packed the whole im2col matrix to use each value for a few dozen filters, and ran
        // at half the speed (W5b's `[8192, 288] · [288, 64]`: 50 against 99 GFLOP/s on one core).
        let flops = 2 * rows * patch * f;
        let parts = if patch <= SMALL_PATCH { 4 * flops } else { flops } / PARALLEL_FLOPS;
        let (x, w, bias) = (xs[0], &self.kernel.value[..], self.bias.as_ref().map(|b| &b.value[..]));
        let b = &mut self.buf;
        let bufs = [(&mut b.cols[..], pos * patch), (&mut b.out[..], pos * f), (&mut b.pre[..], pre_w)];
        // A ReLU or no activation (with the bias) is applied by the small-patch kernel as it stores.
        let fused = patch <= SMALL_PATCH && pre_w == 0 && matches!(A::KIND, ActKind::Relu | ActKind::Linear);
        parallel::for_runs(n, parts.min(parallel::threads()), bufs, |s0, ns, [cols, out, pre]| {
            g.im2col(&x[s0 * inl..(s0 + ns) * inl], ns, cols);
            if fused {
                let ep = Epilogue { bias, relu: A::KIND == ActKind::Relu };
                return small_patch_forward(cols, w, patch, f, ep, out);
            }
            if patch <= SMALL_PATCH {
                small_patch_forward(cols, w, patch, f, Epilogue::NONE, out);
            } else {
                gemm_rows(ns * pos, patch, f, cols, (patch, 1), w, f, out, f, 0.0);
            }
            bias_act(A::KIND, out, (pre_w > 0).then_some(pre), bias, f);
        });
        self.activity.forward(&self.buf.out, n);
    }

    fn set_activity_regularizer(&mut self, regularizer: Option<super::Regularizer>) -> bool {
        self.activity.set(regularizer);
        true
    }

    fn penalty(&self) -> f64 {
        self.activity.penalty()
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (g, f) = (self.geom, self.filters);
        let n = xs[0].len() / g.in_len();
        let rows = n * g.out_positions();
        {
            // The activation's backward, runs of rows on the threads (each row alone).
            let b = &mut self.buf;
            sized(&mut b.dz, rows * f);
            let (out, pre, fused) = (&b.out[..], &b.pre[..], opts.fused_output);
            let pre_w = if pre.is_empty() { 0 } else { f };
            let parts = if rows * f >= 1 << 15 { parallel::threads() } else { 1 };
            parallel::for_runs(rows, parts, [(&mut b.dz[..], f)], |r0, nr, [dz]| {
                let dyr = &dy[r0 * f..(r0 + nr) * f];
                if fused {
                    dz.copy_from_slice(dyr);
                } else {
                    let pre = &pre[r0 * pre_w..(r0 + nr) * pre_w];
                    act_backward(A::KIND, &out[r0 * f..(r0 + nr) * f], pre, dyr, dz, f);
                }
            });
        }
        self.activity.backward(A::KIND, &self.buf.out, &self.buf.pre, &mut self.buf.dz, f, n);
        if self.groups > 1 {
            if let Some(b) = &mut self.bias {
                column_sums(&self.buf.dz, f, &mut b.grad, opts.accumulate);
            }
            self.backward_grouped(n, opts.accumulate, opts.input_grad);
            return;
        }
        let (patch, pos, inl) = (g.patch(), g.out_positions(), g.in_len());
        // Per chunk of samples (fixed by the batch size, so the sums do not depend on the
        // threads): its share of d kernel [patch, f] = colsᵀ [patch, rows] · dz [rows, f] and of
        // the bias gradient, and, when asked, d cols = dz · kernelᵀ put back onto its inputs.
        let ch = chunks(n);
        let b = &mut self.buf;
        // Each chunk's [kernel | bias] gradient, its blocks of rows summed pairwise.
        let share = patch * f + f;
        sized(&mut b.dkp, ch.1 * share);
        if b.stacks.len() < ch.1 {
            b.stacks.resize(ch.1, Vec::new());
        }
        let dcols_w = if opts.input_grad { pos * patch } else { 0 };
        sized(&mut b.dcols, n * dcols_w);
        sized(&mut b.dx, if opts.input_grad { n * inl } else { 0 });
        let wt_len = if opts.input_grad { patch * f } else { 0 };
        transpose(&self.kernel.value[..wt_len], wt_len / f.max(1), f, f, sized(&mut b.wt, wt_len));
        {
            let (cols, dz, wt) = (&b.cols[..], &b.dz[..], &b.wt[..]);
            let mut dkp = b.dkp.chunks_mut(share);
            let mut stacks = b.stacks.iter_mut();
            let mut dcols = cut(&mut b.dcols, ch, dcols_w).into_iter();
            let mut dx = cut(&mut b.dx, ch, if opts.input_grad { inl } else { 0 }).into_iter();
            type Share<'a> = (usize, usize, &'a mut [f32], Option<&'a mut Vec<f32>>, &'a mut [f32], &'a mut [f32]);
            let mut items: [Option<Share<'_>>; MAX_CHUNKS] = std::array::from_fn(|c| {
                let (s0, ns) = (ch.0[c], ch.0[c + 1].saturating_sub(ch.0[c]));
                let item = (
                    s0,
                    ns,
                    dkp.next().unwrap_or_default(),
                    stacks.next(),
                    dcols.next().unwrap_or_default(),
                    dx.next().unwrap_or_default(),
                );
                (c < ch.1).then_some(item)
            });
            let parallel = ch.1 > 1 && 2 * rows * patch * f >= PARALLEL_FLOPS;
            parallel::for_each_mut(&mut items[..ch.1], parallel, |item| {
                let Some((s0, ns, dkb, Some(stack), dcols, dx)) = item.take() else { return };
                let r = s0 * pos..(s0 + ns) * pos;
                let (cols, dz) = (&cols[r.start * patch..r.end * patch], &dz[r.start * f..r.end * f]);
                // Blocks of GRAD_ROWS rows, their products summed pairwise (`kernels::pairwise`).
                let blocks = (ns * pos).div_ceil(GRAD_ROWS);
                crate::kernels::pairwise::cascade(blocks, share, stack, dkb, |k, slot| {
                    let rows = k * GRAD_ROWS..((k + 1) * GRAD_ROWS).min(ns * pos);
                    let (cols, dz) = (&cols[rows.start * patch..rows.end * patch], &dz[rows.start * f..rows.end * f]);
                    let (dk, db) = slot.split_at_mut(patch * f);
                    if small_grad_patch(patch) {
                        small_patch_grad(cols, dz, patch, f, dk, db);
                    } else {
                        gemm_rows(patch, rows.len(), f, cols, (1, patch), dz, f, dk, f, 0.0);
                        column_sums(dz, f, db, false);
                    }
                });
                if !dx.is_empty() {
                    gemm_rows(ns * pos, f, patch, dz, (f, 1), wt, patch, dcols, patch, 0.0);
                    g.col2im(dcols, ns, dx);
                }
            });
        }
        let keep = if opts.accumulate { 1.0 } else { 0.0 };
        self.kernel.grad.iter_mut().for_each(|v| *v *= keep);
        for part in b.dkp.chunks_exact(share) {
            self.kernel.grad.iter_mut().zip(&part[..patch * f]).for_each(|(g, p)| *g += p);
        }
        if let Some(bias) = &mut self.bias {
            bias.grad.iter_mut().for_each(|v| *v *= keep);
            for part in b.dkp.chunks_exact(share) {
                bias.grad.iter_mut().zip(&part[patch * f..]).for_each(|(g, p)| *g += p);
            }
        }
    }

    super::kernel_bias_layer!();
}

impl<A: ActivationFn> Shareable for Conv<A> {
    type Buffers = ConvBuffers;
    fn buffers_mut(&mut self) -> &mut ConvBuffers {
        &mut self.buf
    }
}
