//! Keras' `ops.one_hot`: token ids as rows of zeros and a one.

use super::math::{MathBuffers, math_buffers};
use super::{BackwardOpts, Ctx, Layer, Shareable, sized};

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
        let (x, c, rows) = (xs[0], self.num_tokens, ctx.n);
        let out = sized(&mut self.buf.out, rows * c);
        out.fill(0.0);
        let per = x.len() / rows.max(1);
        for (row, ids) in out.chunks_exact_mut(c).zip(x.chunks_exact(per.max(1))) {
            for &id in ids {
                if id >= 0.0 && (id as usize) < c {
                    let v = &mut row[id as usize];
                    *v = if self.count { *v + 1.0 } else { 1.0 };
                }
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

math_buffers!(CategoryEncode);
