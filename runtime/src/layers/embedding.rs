use rand::Rng;

use super::{BackwardOpts, Ctx, Initializer, Layer, LayerBuffers, Param, Shareable, sized};

/// Keras' `Embedding(input_dim, output_dim)`: each integer token id `t` in `0..input_dim` becomes
/// row `t` of the `embeddings` table `[input_dim, output_dim]`, so `[.., T]` ids give
/// `[.., T, output_dim]` vectors. Ids are checked against `input_dim` when the data enter the
/// model (`fit`, `evaluate`, `predict`), so the layer never reads outside its table; an id that
/// reaches it out of range anyway (a custom loop on unchecked data) reads as a zero vector.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[input_dim, output_dim]`, Keras' `uniform` initialiser: U(-0.05, 0.05).
    pub embeddings: Param,
    input_dim: usize,
    output_dim: usize,
    mask_zero: bool,
    buf: EmbeddingBuffers,
}

/// What one application of an [`Embedding`] writes.
#[derive(Clone, Debug, Default)]
pub struct EmbeddingBuffers {
    out: Vec<f32>,
    /// Zeros: token ids have no gradient.
    dx: Vec<f32>,
    /// With `mask_zero`, 1 where the id is not 0.
    mask: Vec<f32>,
}

impl LayerBuffers for EmbeddingBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl Embedding {
    /// A table of `input_dim` vectors of `output_dim` values, drawn as Keras does.
    pub fn new(input_dim: usize, output_dim: usize, rng: &mut impl Rng) -> Self {
        let mut embeddings = Param::zeros(&[input_dim, output_dim]);
        Initializer::RandomUniform(-0.05, 0.05).fill(&mut embeddings, rng);
        Embedding { embeddings, input_dim, output_dim, mask_zero: false, buf: EmbeddingBuffers::default() }
    }

    /// Keras' `mask_zero`: id 0 is padding, and its `MaskSource::mask` says where it is.
    pub fn with_mask_zero(mut self, mask_zero: bool) -> Self {
        self.mask_zero = mask_zero;
        self
    }
}

/// With `mask_zero`, the mask of the last forward pass: per id, 1 (a token) or 0 (padding).
impl super::MaskSource for Embedding {
    fn mask(&self) -> &[f32] {
        &self.buf.mask
    }
}

/// The table row of id `v` in a table of `rows`, if it is one.
fn row(v: f32, rows: usize) -> Option<usize> {
    (v >= 0.0 && (v as usize) < rows).then_some(v as usize)
}

impl Layer for Embedding {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let d = self.output_dim;
        sized(&mut self.buf.out, xs[0].len() * d);
        for (k, &id) in xs[0].iter().enumerate() {
            let dst = &mut self.buf.out[k * d..(k + 1) * d];
            match row(id, self.input_dim) {
                Some(r) => dst.copy_from_slice(&self.embeddings.value[r * d..(r + 1) * d]),
                None => dst.fill(0.0),
            }
        }
        if self.mask_zero {
            let mask = sized(&mut self.buf.mask, xs[0].len());
            mask.iter_mut().zip(xs[0]).for_each(|(m, &id)| *m = (id != 0.0) as u8 as f32);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let d = self.output_dim;
        if !opts.accumulate {
            self.embeddings.grad.fill(0.0);
        }
        for (k, &id) in xs[0].iter().enumerate() {
            if let Some(r) = row(id, self.input_dim) {
                let g = &mut self.embeddings.grad[r * d..(r + 1) * d];
                g.iter_mut().zip(&dy[k * d..(k + 1) * d]).for_each(|(g, &v)| *g += v);
            }
        }
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
        f("embeddings", &self.embeddings);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.embeddings);
    }
}

impl Shareable for Embedding {
    type Buffers = EmbeddingBuffers;
    fn buffers_mut(&mut self) -> &mut EmbeddingBuffers {
        &mut self.buf
    }
}
