//! `LeakyReLU(negative_slope = 0.3)`: `x` for `x > 0`, `negative_slope · x` below, any shape.
//! Keras' layer default slope is 0.3 (the `leaky_relu` activation's is 0.2).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt};
use crate::parse::Errors;

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

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ship::Static> {
        Some(crate::ship::Static::LeakyRelu { slope: self.slope })
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
