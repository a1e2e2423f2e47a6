//! `Embedding(input_dim, output_dim, embeddings_initializer = "uniform", mask_zero = false)`:
//! integer token ids `[.., T]` → vectors `[.., T, output_dim]`.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

pub const KIND: Kind = Kind {
    class: "Embedding",
    args: &[
        "input_dim",
        "output_dim",
        "embeddings_initializer",
        "embeddings_regularizer",
        "embeddings_constraint",
        "mask_zero",
    ],
    arity: Arity::One,
    build,
};

/// Ids travel as `f32`, exact up to 2²⁴.
const MAX_VOCAB: usize = 1 << 24;

struct Embedding {
    input_dim: usize,
    output_dim: usize,
    mask_zero: bool,
    weights: super::init::WeightOpts,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let mut required = |key: &str, example: &str| match args.positive(key, "Embedding", example, errors) {
        Some(Some(v)) => Some(v),
        Some(None) => {
            errors.over(args.call, format!("Embedding needs its {key}, e.g. {example}"));
            None
        }
        None => None,
    };
    let input_dim = required("input_dim", "Embedding(10000, 64)");
    let output_dim = required("output_dim", "Embedding(10000, 64)");
    if let (Some(v), Some(d)) = (args.get("input_dim"), input_dim)
        && d > MAX_VOCAB
    {
        errors.at(v.span(), format!("kiln's Embedding takes at most {MAX_VOCAB} ids (input_dim), got {d}"));
        return None;
    }
    let mask_zero = args.boolean("mask_zero", false, errors);
    let weights = super::init::parse_weights(args, &[("embeddings", "embeddings")], errors);
    Some(Rc::new(Embedding {
        input_dim: input_dim?,
        output_dim: output_dim?,
        mask_zero: mask_zero?,
        weights: weights?,
    }))
}

impl Spec for Embedding {
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let steps = ins[0].iter().product();
        Some(crate::ir::Static::Embedding { dim: self.output_dim, mask: self.mask_zero.then_some(steps) })
    }

    fn class(&self) -> &'static str {
        "Embedding"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].len() >= 6 {
            return Err(format!("Embedding adds an axis: its input may have at most 5 axes, got {}", show(&ins[0])));
        }
        let mut out = ins[0].clone();
        out.push(self.output_dim);
        Ok(out)
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Embedding)
    }

    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, v, d, m) = (rt(), self.input_dim, self.output_dim, self.mask_zero);
        let build = if m {
            quote!(#rt::Embedding::new(#v, #d, &mut rng).with_mask_zero(true))
        } else {
            quote!(#rt::Embedding::new(#v, #d, &mut rng))
        };
        self.weights.wrap(build)
    }

    fn params(&self, _ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![("embeddings", vec![self.input_dim, self.output_dim])])
    }

    fn id_bound(&self) -> Option<usize> {
        Some(self.input_dim)
    }

    fn makes_mask(&self) -> bool {
        self.mask_zero
    }
}
