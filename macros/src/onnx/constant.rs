//! A constant tensor of the file that the model combines with a computed value (a per-channel
//! bias added after a convolution, a scale): kiln's `Weight` layer, whose value is the same for
//! every sample, under the shape the value is broadcast from. It is a weight like any other, so
//! fine-tuning trains it (a bias stays a bias).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use crate::layers::{Dim, Spec, rt};

/// A tensor of `shape` (one sample's), read as kiln's `Weight<D>`; its one input only tells the
/// batch size.
struct Constant {
    shape: Vec<usize>,
}

/// The spec of a constant of `shape`.
pub fn constant(shape: Vec<usize>) -> Rc<dyn Spec> {
    Rc::new(Constant { shape })
}

impl Spec for Constant {
    fn class(&self) -> &'static str {
        "Weight"
    }

    fn auto_name(&self) -> String {
        "constant".into()
    }

    fn output_shape(&self, _: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(self.shape.clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let (rt, d) = (rt(), self.shape.iter().product::<usize>());
        quote!(#rt::Weight<#d, #rt::Zeros>)
    }

    fn params(&self, _: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![("value", vec![self.shape.iter().product()])])
    }
}
