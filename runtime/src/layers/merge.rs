//! Keras' merge layers: several inputs of compatible shapes, one output, no weights. They are
//! layers like any other, with several inputs.
//!
//! The model macros check the shapes at compile time (same shape for the element-wise merges; all
//! dimensions but the axis for `Concatenate`); the types here receive the resulting widths.

use super::{BackwardOpts, Ctx, Layer, sized};

/// Writes `Σ parts` into `buf`: the gradient of a value read by several layers.
pub fn accumulate<'a>(buf: &'a mut Vec<f32>, parts: &[&[f32]]) -> &'a [f32] {
    let out = sized(buf, parts[0].len());
    out.copy_from_slice(parts[0]);
    for p in &parts[1..] {
        for (o, v) in out.iter_mut().zip(p.iter()) {
            *o += v;
        }
    }
    out
}

#[derive(Clone, Debug, Default)]
struct Bufs {
    out: Vec<f32>,
    dx: Vec<Vec<f32>>,
}

/// `k` input-gradient buffers of `len` values each.
fn grads(dx: &mut Vec<Vec<f32>>, k: usize, len: usize) -> &mut [Vec<f32>] {
    if dx.len() != k {
        dx.resize(k, Vec::new());
    }
    for d in dx.iter_mut() {
        sized(d, len);
    }
    dx
}

macro_rules! elementwise {
    ($(#[$doc:meta])* $name:ident, |$a:ident, $b:ident| $f:expr, $first:expr, |$xs:ident, $i:ident, $j:ident, $y:ident, $dy:ident, $k:ident| $df:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default)]
        pub struct $name {
            buf: Bufs,
        }

        impl $name {
            /// A new layer.
            pub fn new() -> Self {
                Self::default()
            }
        }

        impl Layer for $name {
            fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
                let out = sized(&mut self.buf.out, xs[0].len());
                out.copy_from_slice(xs[0]);
                for x in &xs[1..] {
                    for (o, v) in out.iter_mut().zip(x.iter()) {
                        let ($a, $b) = (*o, *v);
                        *o = $f;
                    }
                }
                let finish: fn(&mut [f32], usize) = $first;
                finish(out, xs.len());
            }

            fn backward(&mut self, $xs: &[&[f32]], $dy: &[f32], _ctx: &mut Ctx<'_>, _opts: BackwardOpts) {
                let $y = &self.buf.out;
                let grads = grads(&mut self.buf.dx, $xs.len(), $dy.len());
                let $k = $xs.len();
                for ($i, g) in grads.iter_mut().enumerate() {
                    for ($j, d) in g.iter_mut().enumerate() {
                        *d = $df;
                    }
                }
            }

            fn output(&self) -> &[f32] {
                &self.buf.out
            }

            fn input_grad(&self, i: usize) -> &[f32] {
                &self.buf.dx[i]
            }
        }
    };
}

elementwise!(
    /// Keras' `Add()`: the element-wise sum of its inputs.
    Add, |a, b| a + b, |_, _| {}, |xs, i, j, y, dy, k| { let _ = (xs, i, y, k); dy[j] }
);
elementwise!(
    /// Keras' `Subtract()`: its first input minus its second.
    Subtract, |a, b| a - b, |_, _| {}, |xs, i, j, y, dy, k| { let _ = (xs, y, k); if i == 0 { dy[j] } else { -dy[j] } }
);
elementwise!(
    /// Keras' `Multiply()`: the element-wise product of its inputs.
    Multiply, |a, b| a * b, |_, _| {},
    |xs, i, j, y, dy, k| { let _ = (y, k); dy[j] * xs.iter().enumerate().filter(|(m, _)| *m != i).map(|(_, x)| x[j]).product::<f32>() }
);
elementwise!(
    /// Keras' `Average()`: the element-wise mean of its inputs.
    Average, |a, b| a + b, |out, k| { let inv = 1.0 / k as f32; out.iter_mut().for_each(|v| *v *= inv) },
    |xs, i, j, y, dy, k| { let _ = (xs, i, y); dy[j] / k as f32 }
);
elementwise!(
    /// Keras' `Maximum()`: the element-wise maximum; the gradient goes to the first input that attains it.
    Maximum, |a, b| a.max(b), |_, _| {},
    |xs, i, j, y, dy, k| { let _ = k; if xs.iter().position(|x| x[j] == y[j]) == Some(i) { dy[j] } else { 0.0 } }
);
elementwise!(
    /// Keras' `Minimum()`: the element-wise minimum; the gradient goes to the first input that attains it.
    Minimum, |a, b| a.min(b), |_, _| {},
    |xs, i, j, y, dy, k| { let _ = k; if xs.iter().position(|x| x[j] == y[j]) == Some(i) { dy[j] } else { 0.0 } }
);

/// Keras' `Concatenate(axis)`. Each row of each input is `outer` blocks of `width[i]` values
/// (the concatenated axis times everything after it); the output interleaves the blocks.
#[derive(Clone, Debug)]
pub struct Concatenate {
    outer: usize,
    widths: Vec<usize>,
    buf: Bufs,
}

impl Concatenate {
    /// A layer joining inputs whose rows are `outer` blocks of `widths[i]` values each.
    pub fn new(outer: usize, widths: &[usize]) -> Self {
        Concatenate { outer, widths: widths.to_vec(), buf: Bufs::default() }
    }

    fn row_width(&self) -> usize {
        self.outer * self.widths.iter().sum::<usize>()
    }
}

impl Layer for Concatenate {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let n = ctx.n;
        let total = self.row_width();
        let out = sized(&mut self.buf.out, n * total);
        let mut at = 0;
        for r in 0..n * self.outer {
            for (x, &w) in xs.iter().zip(&self.widths) {
                out[at..at + w].copy_from_slice(&x[r * w..(r + 1) * w]);
                at += w;
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, _opts: BackwardOpts) {
        let n = ctx.n;
        if self.buf.dx.len() != xs.len() {
            self.buf.dx.resize(xs.len(), Vec::new());
        }
        for (d, x) in self.buf.dx.iter_mut().zip(xs) {
            sized(d, x.len());
        }
        let mut at = 0;
        for r in 0..n * self.outer {
            for (d, &w) in self.buf.dx.iter_mut().zip(&self.widths) {
                d[r * w..(r + 1) * w].copy_from_slice(&dy[at..at + w]);
                at += w;
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        &self.buf.dx[i]
    }
}

/// Keras' `Dot(axes=1)` on two vectors per row: `y = Σ a·b`, one value per row.
#[derive(Clone, Debug)]
pub struct Dot {
    width: usize,
    buf: Bufs,
}

impl Dot {
    /// A layer taking the dot product of two inputs `width` wide.
    pub fn new(width: usize) -> Self {
        Dot { width, buf: Bufs::default() }
    }
}

impl Layer for Dot {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (w, n) = (self.width, ctx.n);
        let out = sized(&mut self.buf.out, n);
        for (r, o) in out.iter_mut().enumerate() {
            *o = xs[0][r * w..(r + 1) * w].iter().zip(&xs[1][r * w..(r + 1) * w]).map(|(a, b)| a * b).sum();
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, _opts: BackwardOpts) {
        let (w, n) = (self.width, ctx.n);
        let grads = grads(&mut self.buf.dx, 2, n * w);
        for (i, g) in grads.iter_mut().enumerate() {
            let other = xs[1 - i];
            for r in 0..n {
                for j in 0..w {
                    g[r * w + j] = dy[r] * other[r * w + j];
                }
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        &self.buf.dx[i]
    }
}
