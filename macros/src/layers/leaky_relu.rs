//! `LeakyReLU(negative_slope = 0.3)`: `x` for `x > 0`, `negative_slope · x` below, any shape.
//! Keras' layer default slope is 0.3 (the `leaky_relu` activation's is 0.2).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt};
use crate::errors::Errors;

pub const KIND: Kind = Kind { class: "LeakyReLU", args: &["negative_slope"], arity: Arity::One, build };

struct LeakyRelu {
    slope: f32,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let valid: fn(f64) -> bool = |v| v.is_finite() && v >= 0.0;
    let slope = args.number("negative_slope", 0.3, (valid, "a finite number >= 0"), errors)?;
    Some(Rc::new(LeakyRelu { slope: slope as f32 }))
}

impl Spec for LeakyRelu {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        "LeakyReLU"
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::LeakyRelu { slope: self.slope })
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::LeakyReLU)
    }

    fn constructor(&self, _: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, slope) = (rt(), self.slope);
        quote!(#rt::LeakyReLU::new(#slope))
    }
}

/// `PReLU(shared_axes = [..])`: `alpha · x` below zero with `alpha` learnt, one per position of a
/// sample (1-based `shared_axes` share one along those axes), initialised with zeros.
pub const PRELU: Kind =
    Kind { class: "PReLU", args: &["alpha_initializer", "shared_axes"], arity: Arity::One, build: prelu };

struct PRelu {
    /// 0-based sample axes sharing one slope.
    shared: Vec<usize>,
}

fn prelu(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("alpha_initializer") {
        None => {}
        Some(super::call::Value::Ident(i)) if i == "zeros" => {}
        Some(super::call::Value::Str(s, _)) if s == "zeros" => {}
        Some(v) => {
            errors.at(v.span(), "kiln's PReLU starts its slopes at zeros (Keras' default)");
            return None;
        }
    }
    let shared = match args.get("shared_axes") {
        None => vec![],
        Some(super::call::Value::Int(i, _)) if *i >= 1 => vec![*i as usize - 1],
        Some(super::call::Value::List(l, _)) if l.iter().all(|&a| a >= 1) => {
            l.iter().map(|&a| a as usize - 1).collect()
        }
        Some(v) => {
            errors.at(v.span(), "PReLU's shared_axes are 1-based sample axes, e.g. shared_axes = [1, 2]");
            return None;
        }
    };
    Some(Rc::new(PRelu { shared }))
}

impl PRelu {
    /// `alpha`'s shape on a sample of `shape`.
    fn alpha(&self, shape: &[usize]) -> Vec<usize> {
        shape.iter().enumerate().map(|(k, &d)| if self.shared.contains(&k) { 1 } else { d }).collect()
    }
}

impl Spec for PRelu {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        "PReLU"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.is_empty() || input.len() > 3 {
            return Err(format!("kiln's PReLU takes samples of rank 1 to 3, got {}", super::show(input)));
        }
        if let Some(a) = self.shared.iter().find(|&&a| a >= input.len()) {
            return Err(format!(
                "PReLU shares axis {} of an input {} with {} axes",
                a + 1,
                super::show(input),
                input.len()
            ));
        }
        Ok(input.clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::PReLU)
    }

    fn constructor(&self, _: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, shape, shared) = (rt(), &shapes[0], &self.shared);
        quote!(#rt::PReLU::new(&[#(#shape),*], &[#(#shared),*]))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![("alpha", self.alpha(&ins[0]))])
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::PRelu { shape: ins[0].clone(), shared: self.shared.clone() })
    }
}
