//! User math on a sample's axes in a `#[kiln::call]` body: `softmax(x, axis)` and
//! `log_softmax(x, axis)`, `slice(x, axis, start, end)`, `matmul(a, b)` with either operand
//! transposed. Runtime layers in `runtime/src/layers/tensor.rs`.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Arity, Dim, Spec, rt};

/// `softmax` / `log_softmax` along Keras' axis `axis` (1.. within a sample, negative from the
/// end), resolved against the input's rank.
struct SoftmaxAxis {
    log: bool,
    axis: i64,
}

/// Softmax (or its logarithm) along Keras' axis `axis` of a sample.
pub fn softmax_axis(log: bool, axis: i64) -> Rc<dyn Spec> {
    Rc::new(SoftmaxAxis { log, axis })
}

impl Spec for SoftmaxAxis {
    fn class(&self) -> &'static str {
        if self.log { "LogSoftmax" } else { "Softmax" }
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        super::math::sample_axis(self.axis, ins[0].len())
            .map(|_| ins[0].clone())
            .ok_or_else(|| super::math::missing_axis(self.class(), self.axis, &ins[0]))
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::SoftmaxAxis)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let axis = super::math::sample_axis(self.axis, ins[0].len()).unwrap_or(0);
        let (rt, log, dims) = (rt(), self.log, &ins[0]);
        quote!(#rt::SoftmaxAxis::new(#log, &[#(#dims),*], #axis))
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (len, inner) = super::math::middle(&ins[0], self.axis)?;
        Some(crate::ir::Static::SoftmaxAxis { log: self.log, len, inner })
    }
}

/// Positions `start..end` of Keras' axis `axis` of a sample (1.., negative from the end).
struct Slice {
    axis: i64,
    start: usize,
    end: usize,
}

/// `slice(x, axis, start, end)`, with Keras' `axis`.
pub fn slice(axis: i64, start: usize, end: usize) -> Rc<dyn Spec> {
    Rc::new(Slice { axis, start, end })
}

impl Spec for Slice {
    fn class(&self) -> &'static str {
        "Slice"
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let axis = super::math::sample_axis(self.axis, ins[0].len())
            .ok_or_else(|| super::math::missing_axis("slice", self.axis, &ins[0]))?;
        let mut out = ins[0].clone();
        match out.get_mut(axis) {
            Some(d) if self.end <= *d => *d = self.end - self.start,
            _ => return Err(format!("slice {}..{} is outside the sample's shape {:?}", self.start, self.end, ins[0])),
        }
        Ok(out)
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Slice)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let axis = super::math::sample_axis(self.axis, ins[0].len()).unwrap_or(0);
        let (rt, start, end, dims) = (rt(), self.start, self.end, &ins[0]);
        quote!(#rt::Slice::new(&[#(#dims),*], #axis, #start, #end))
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (len, inner) = super::math::middle(&ins[0], self.axis)?;
        Some(crate::ir::Static::Slice { len, inner, start: self.start, end: self.end })
    }
}

/// `matmul(a, b, transpose_a, transpose_b)` over the last two axes.
struct MatMul {
    ta: bool,
    tb: bool,
}

/// The product of the last two axes, batched over the leading ones.
pub fn matmul(ta: bool, tb: bool) -> Rc<dyn Spec> {
    Rc::new(MatMul { ta, tb })
}

/// The output shape of `matmul` on samples of shapes `a` and `b` (generic over numbers and
/// constant expressions): the leading axes broadcast as NumPy does (aligned from the last, a
/// missing one counting as 1; `lead` gives the result's extent from the two), then `a`'s rows and
/// `b`'s columns.
pub fn matmul_shape<T: Clone>(
    a: &[T],
    b: &[T],
    ta: bool,
    tb: bool,
    lead: impl Fn(Option<&T>, Option<&T>) -> T,
) -> Vec<T> {
    let (ra, rb) = (a.len(), b.len());
    let rows = if ta { a[ra - 1].clone() } else { a[ra - 2].clone() };
    let cols = if tb { b[rb - 2].clone() } else { b[rb - 1].clone() };
    let (la, lb) = (&a[..ra - 2], &b[..rb - 2]);
    let n = la.len().max(lb.len());
    (0..n).map(|i| lead(lead_at(la, i, n), lead_at(lb, i, n))).chain([rows, cols]).collect()
}

/// Leading axis `i` of `n` aligned from the last: `s`'s own, or `None` where `s` has fewer.
fn lead_at<T>(s: &[T], i: usize, n: usize) -> Option<&T> {
    (i + s.len()).checked_sub(n).map(|j| &s[j])
}

impl Spec for MatMul {
    fn class(&self) -> &'static str {
        "Matmul"
    }
    fn arity(&self) -> Arity {
        Arity::Two
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let (a, b) = (&ins[0], &ins[1]);
        let (ra, rb) = (a.len(), b.len());
        let fits = |x: Option<&usize>, y: Option<&usize>| {
            matches!((x, y), (None, _) | (_, None) | (Some(1), _) | (_, Some(1))) || x == y
        };
        let (la, lb) = (&a[..ra.max(2) - 2], &b[..rb.max(2) - 2]);
        let n = la.len().max(lb.len());
        if ra < 2 || rb < 2 || (0..n).any(|i| !fits(lead_at(la, i, n), lead_at(lb, i, n))) {
            return Err(format!(
                "matmul needs operands of rank 2 or more whose leading axes broadcast, got {a:?} and {b:?}"
            ));
        }
        let inner_a = if self.ta { a[ra - 2] } else { a[ra - 1] };
        let inner_b = if self.tb { b[rb - 1] } else { b[rb - 2] };
        if inner_a != inner_b {
            return Err(format!("matmul's inner sizes differ: {a:?} by {b:?}"));
        }
        Ok(matmul_shape(a, b, self.ta, self.tb, |x, y| (*x.unwrap_or(&1)).max(*y.unwrap_or(&1))))
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::MatMul)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, ta, tb, a, b) = (rt(), self.ta, self.tb, &ins[0], &ins[1]);
        quote!(#rt::MatMul::new(&[#(#a),*], &[#(#b),*], #ta, #tb))
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::MatMul { a: ins[0].clone(), b: ins[1].clone(), ta: self.ta, tb: self.tb })
    }
}

/// `gather(x, ids)`: per sample, the rows of `x` its ids name (`tf.gather(x, ids, axis = 1,
/// batch_dims = 1)`). `bound` is the extent of `x`'s first axis as code, in a `call` body.
struct Gather {
    bound: Option<TokenStream>,
}

/// `gather(x, ids)`, its ids bound by `bound` in a `call` body (known from the shapes elsewhere).
pub fn gather(bound: Option<TokenStream>) -> Rc<dyn Spec> {
    Rc::new(Gather { bound })
}

impl Spec for Gather {
    fn class(&self) -> &'static str {
        "Gather"
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let (x, ids) = (&ins[0], &ins[1]);
        if ids.len() != 1 {
            return Err(format!("gather takes one axis of ids per sample, got ids of shape {ids:?}"));
        }
        Ok([&ids[..], &x[1..]].concat())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Gather)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, dims) = (rt(), &ins[0]);
        quote!(#rt::Gather::new(&[#(#dims),*]))
    }
    fn reads_ids(&self, i: usize) -> bool {
        i == 1
    }
    fn id_bound_for(&self, ins: &[Vec<usize>]) -> Option<usize> {
        ins.first().and_then(|x| x.first()).copied()
    }
    fn id_bound_dims(&self) -> Option<TokenStream> {
        self.bound.clone()
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Gather { rows: *ins[0].first()? })
    }
}
