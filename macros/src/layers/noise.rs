//! `Dropout(rate)` and `GaussianNoise(stddev)`, active in training only, and `Rescaling(scale,
//! offset = 0.0)`: layers of any shape that keep it; and `Masking(mask_value = 0.0)`.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

pub const DROPOUT: Kind = Kind { class: "Dropout", args: &["rate"], arity: Arity::One, build: dropout };
pub const GAUSSIAN_NOISE: Kind = Kind { class: "GaussianNoise", args: &["stddev"], arity: Arity::One, build: noise };
pub const SPATIAL_DROPOUT1D: Kind =
    Kind { class: "SpatialDropout1D", args: &["rate"], arity: Arity::One, build: |a, e| spatial(a, e, 2) };
pub const SPATIAL_DROPOUT2D: Kind =
    Kind { class: "SpatialDropout2D", args: &["rate"], arity: Arity::One, build: |a, e| spatial(a, e, 3) };
pub const RESCALING: Kind =
    Kind { class: "Rescaling", args: &["scale", "offset"], arity: Arity::One, build: rescaling };

/// A shape-keeping layer and the runtime expression that builds it.
struct Keep {
    class: &'static str,
    build: TokenStream,
    /// Rescaling's scale and offset (the other kinds pass their input on at inference).
    affine: Option<(f32, f32)>,
}

fn keep(class: &'static str, build: TokenStream) -> Rc<dyn Spec> {
    Rc::new(Keep { class, build, affine: None })
}

fn dropout(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if args.get("rate").is_none() {
        errors.over(args.call, "Dropout needs its rate, e.g. Dropout(0.5)");
        return None;
    }
    let valid: fn(f64) -> bool = |v| (0.0..1.0).contains(&v);
    let rate = args.number("rate", 0.0, (valid, "in [0, 1)"), errors)? as f32;
    Some(dropout_spec(rate))
}

/// `Dropout(rate)` for a rate already checked (the subclass style's `dropout(x, rate)`).
pub fn dropout_spec(rate: f32) -> Rc<dyn Spec> {
    let rt = rt();
    keep("Dropout", quote!(#rt::Dropout::new(#rate)))
}

/// `SpatialDropout1D/2D`: whole channels dropped, on inputs of rank 2 or 3.
struct Spatial {
    rate: f32,
    rank: usize,
}

fn spatial(args: &Args<'_>, errors: &mut Errors, rank: usize) -> Option<Rc<dyn Spec>> {
    if args.get("rate").is_none() {
        errors.over(args.call, format!("{} needs its rate, e.g. (0.2)", args.class));
        return None;
    }
    let valid: fn(f64) -> bool = |v| (0.0..1.0).contains(&v);
    let rate = args.number("rate", 0.0, (valid, "in [0, 1)"), errors)? as f32;
    Some(Rc::new(Spatial { rate, rank }))
}

impl Spec for Spatial {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        if self.rank == 2 { "SpatialDropout1D" } else { "SpatialDropout2D" }
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].len() != self.rank {
            let form = if self.rank == 2 { "[steps, channels]" } else { "[height, width, channels]" };
            return Err(format!(
                "{} expects an input of rank {} {form}, got {}",
                self.class(),
                self.rank,
                super::show(&ins[0])
            ));
        }
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::SpatialDropout)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _: &[Vec<usize>]) -> TokenStream {
        let (rt, rate, c) = (rt(), self.rate, super::last(&ins[0]));
        quote!(#rt::SpatialDropout::new(#rate, #c))
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Identity)
    }
}

fn noise(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if args.get("stddev").is_none() {
        errors.over(args.call, "GaussianNoise needs its stddev, e.g. GaussianNoise(0.1)");
        return None;
    }
    let valid: fn(f64) -> bool = |v| v.is_finite() && v >= 0.0;
    let stddev = args.number("stddev", 0.0, (valid, "a finite number >= 0"), errors)? as f32;
    let rt = rt();
    Some(keep("GaussianNoise", quote!(#rt::GaussianNoise::new(#stddev))))
}

fn rescaling(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if args.get("scale").is_none() {
        errors.over(args.call, "Rescaling needs its scale, e.g. Rescaling(1.0 / 255.0) or Rescaling(0.0039)");
        return None;
    }
    let finite: fn(f64) -> bool = f64::is_finite;
    let scale = args.number("scale", 1.0, (finite, "a finite number"), errors);
    let offset = args.number("offset", 0.0, (finite, "a finite number"), errors);
    let (scale, offset) = (scale? as f32, offset? as f32);
    let rt = rt();
    Some(Rc::new(Keep {
        class: "Rescaling",
        build: quote!(#rt::Rescaling::new(#scale, #offset)),
        affine: Some((scale, offset)),
    }))
}

impl Spec for Keep {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        let ty = quote::format_ident!("{}", self.class);
        quote!(#rt::#ty)
    }

    fn constructor(&self, _: &[Vec<Dim>], _: &[Vec<usize>]) -> TokenStream {
        self.build.clone()
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(match self.affine {
            Some((scale, offset)) => crate::ir::Static::Rescaling { scale, offset },
            None => crate::ir::Static::Identity,
        })
    }
}

/// `Masking(mask_value = 0.0)`: steps whose features all equal `mask_value` are padding.
pub const MASKING: Kind = Kind { class: "Masking", args: &["mask_value"], arity: Arity::One, build: masking };

struct Masking {
    value: f32,
}

fn masking(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let finite: fn(f64) -> bool = f64::is_finite;
    let value = args.number("mask_value", 0.0, (finite, "a finite number"), errors)?;
    Some(Rc::new(Masking { value: value as f32 }))
}

impl Spec for Masking {
    fn class(&self) -> &'static str {
        "Masking"
    }

    fn makes_mask(&self) -> bool {
        true
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let features = *ins[0].last()?;
        let rows = ins[0].iter().product::<usize>() / features.max(1);
        Some(crate::ir::Static::Masking { value: self.value, features, rows })
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].len() < 2 {
            return Err(format!(
                "Masking masks steps: it expects [timesteps, features] per sample, got {}",
                show(&ins[0])
            ));
        }
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Masking)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _: &[Vec<usize>]) -> TokenStream {
        let (rt, v, f) = (rt(), self.value, super::last(&ins[0]));
        quote!(#rt::Masking::new(#v, #f))
    }
}
