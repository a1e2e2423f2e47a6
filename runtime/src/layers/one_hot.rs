//! Keras' `ops.one_hot`: token ids as rows of zeros and a one.

use super::math::{MathBuffers, math_buffers};
use super::{BackwardOpts, Ctx, Layer, Param, Shareable, sized};

/// Keras' `ops.one_hot(ids, classes)` in a `call` body: each token id of a sample becomes a row of
/// `classes` values, 1 at the id and 0 elsewhere (an id out of range, which the model's input
/// check refuses first, gives a row of zeros, as Keras does). Ids have no gradient.
#[derive(Clone, Debug)]
pub struct OneHot {
    classes: usize,
    buf: MathBuffers,
}

impl OneHot {
    /// Rows of `classes` values.
    pub fn new(classes: usize) -> Self {
        OneHot { classes, buf: MathBuffers::default() }
    }
}

impl Layer for OneHot {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, c) = (xs[0], self.classes);
        let out = sized(&mut self.buf.out, x.len() * c);
        out.fill(0.0);
        for (row, &id) in out.chunks_exact_mut(c).zip(x) {
            if id >= 0.0 && (id as usize) < c {
                row[id as usize] = 1.0;
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            sized(&mut self.buf.dx, xs[0].len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

math_buffers!(OneHot);

/// One row of `width` values per sample of `x` (`rows` samples): at each value's column (if
/// any), 1, or with `count` how many values fall there.
fn fill_rows(out: &mut Vec<f32>, x: &[f32], (rows, width): (usize, usize), count: bool, column: impl Fn(f32) -> Option<usize>) {
    let per = (x.len() / rows.max(1)).max(1);
    let out = sized(out, rows * width);
    out.fill(0.0);
    for (row, values) in out.chunks_exact_mut(width).zip(x.chunks_exact(per)) {
        for c in values.iter().filter_map(|&v| column(v)) {
            row[c] = if count { row[c] + 1.0 } else { 1.0 };
        }
    }
}

/// Keras' `CategoryEncoding(num_tokens, output_mode)` inside a model: the integer ids of a sample
/// (checked against `num_tokens` where the model's input reads them) as one row of `num_tokens`
/// values — 1 at each id that occurs (`one_hot` of one id, `multi_hot`), or how many times it
/// occurs (`count`). Ids have no gradient.
#[derive(Clone, Debug)]
pub struct CategoryEncode {
    num_tokens: usize,
    count: bool,
    buf: MathBuffers,
}

impl CategoryEncode {
    /// Rows of `num_tokens` values: counts with `count`, else ones where an id occurs.
    pub fn new(num_tokens: usize, count: bool) -> Self {
        CategoryEncode { num_tokens, count, buf: MathBuffers::default() }
    }
}

impl Layer for CategoryEncode {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let c = self.num_tokens;
        // An id out of range, which the model's input check refuses first, marks nothing.
        let column = |id: f32| (id >= 0.0 && (id as usize) < c).then_some(id as usize);
        fill_rows(&mut self.buf.out, xs[0], (ctx.n, c), self.count, column);
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            sized(&mut self.buf.dx, xs[0].len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

math_buffers!(CategoryEncode);

/// Keras' `Discretization` inside a model: each value of a sample to its bucket among the
/// layer's `bin_boundaries` (bucket `i` holds `boundaries[i - 1] <= x < boundaries[i]`, as
/// Keras'), given as ids (`one_hot == None`) or as one row of `num_bins` values — one-hot,
/// multi-hot or counts. The boundaries are non-trainable state, saved with the weights:
/// given, or learned by `Model::adapt` (NaN until then, which `fit` and `predict` refuse).
#[derive(Clone, Debug)]
pub struct Discretize {
    boundaries: Param,
    /// `None`: bucket ids; `Some(count)`: rows of `num_bins` (counts or ones).
    rows: Option<bool>,
    buf: MathBuffers,
}

impl Discretize {
    /// A layer of `num_bins` buckets: `boundaries` (`num_bins - 1` of them, increasing), or
    /// NaN ones to be adapted; ids, or rows (`Some(count)`).
    pub fn new(num_bins: usize, boundaries: Option<&[f32]>, rows: Option<bool>) -> Self {
        let mut p = Param::state(&[num_bins.saturating_sub(1)], f32::NAN).increasing();
        if let Some(b) = boundaries {
            p.value.copy_from_slice(b);
        }
        Discretize { boundaries: p, rows, buf: MathBuffers::default() }
    }
}

impl Layer for Discretize {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let x = xs[0];
        let bins = self.boundaries.value.len() + 1;
        match self.rows {
            None => {
                let out = sized(&mut self.buf.out, x.len());
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = self.boundaries.value.partition_point(|b| *b <= v) as f32;
                }
            }
            Some(count) => {
                let b = &self.boundaries.value;
                fill_rows(&mut self.buf.out, x, (ctx.n, bins), count, |v| Some(b.partition_point(|b| *b <= v)));
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            // Buckets are flat almost everywhere: no gradient.
            sized(&mut self.buf.dx, xs[0].len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("bin_boundaries", &self.boundaries);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.boundaries);
    }
}

math_buffers!(Discretize);

/// Keras' `IntegerLookup(max_tokens, num_oov_indices, output_mode = one_hot | multi_hot |
/// count)` inside a model: the integers of a sample as one row of `max_tokens` values over its
/// vocabulary — the out-of-vocabulary columns first (a value not in the vocabulary takes column
/// `value mod num_oov_indices`, as Keras), then the learned values. The vocabulary is
/// non-trainable state (`-1`, Keras' out-of-vocabulary token, in the unused places), saved with
/// the weights and learned by `Model::adapt`.
#[derive(Clone, Debug)]
pub struct IntLookup {
    vocabulary: Param,
    num_oov: usize,
    count: bool,
    buf: MathBuffers,
    /// The vocabulary sorted, with each value's column, rebuilt when the vocabulary changes.
    sorted: Vec<(f32, usize)>,
    seen: Vec<f32>,
}

impl IntLookup {
    /// Rows of `max_tokens` values, `num_oov` (at least 1) out-of-vocabulary columns first.
    pub fn new(max_tokens: usize, num_oov: usize, count: bool) -> Self {
        let vocabulary = Param::state(&[max_tokens.saturating_sub(num_oov)], -1.0);
        IntLookup { vocabulary, num_oov: num_oov.max(1), count, buf: MathBuffers::default(), sorted: vec![], seen: vec![] }
    }

}

impl Layer for IntLookup {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        if self.seen != self.vocabulary.value {
            self.seen.clone_from(&self.vocabulary.value);
            let oov = self.num_oov;
            self.sorted =
                self.seen.iter().enumerate().filter(|(_, v)| **v != -1.0).map(|(i, &v)| (v, oov + i)).collect();
            self.sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let (sorted, oov) = (&self.sorted, self.num_oov as i64);
        // A value out of the vocabulary takes its floor modulo among the out-of-vocabulary ids.
        let column = |v: f32| match sorted.binary_search_by(|(x, _)| x.total_cmp(&v)) {
            Ok(i) => Some(sorted[i].1),
            Err(_) => Some((v as i64).rem_euclid(oov) as usize),
        };
        let width = self.num_oov + self.vocabulary.value.len();
        fill_rows(&mut self.buf.out, xs[0], (ctx.n, width), self.count, column);
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            sized(&mut self.buf.dx, xs[0].len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("vocabulary", &self.vocabulary);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.vocabulary);
    }
}

math_buffers!(IntLookup);
