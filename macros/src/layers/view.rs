//! `Flatten` and `Reshape(target_shape)`: views. On row-major data they change no value, so they
//! have no runtime type; the code generator reads the input buffer under the new shape.

use std::rc::Rc;

use proc_macro2::TokenStream;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, show};
use crate::errors::Errors;

pub const FLATTEN: Kind = Kind { class: "Flatten", args: &[], arity: Arity::One, build: build_flatten };
pub const RESHAPE: Kind = Kind { class: "Reshape", args: &["target_shape"], arity: Arity::One, build: reshape };

struct Flatten;

/// `Flatten`, for the subclass style's `flatten(x)`.
pub fn flatten() -> Rc<dyn Spec> {
    Rc::new(Flatten)
}

fn build_flatten(_: &Args<'_>, _: &mut Errors) -> Option<Rc<dyn Spec>> {
    Some(flatten())
}

impl Spec for Flatten {
    fn class(&self) -> &'static str {
        "Flatten"
    }
    fn is_view(&self) -> bool {
        true
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(vec![ins[0].iter().product()])
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        TokenStream::new()
    }
}

struct Reshape {
    target: Vec<i64>,
}

fn reshape(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("target_shape") {
        Some(Value::List(dims, _)) => Some(Rc::new(Reshape { target: dims.clone() })),
        Some(v) => {
            errors.at(v.span(), "Reshape takes the target shape as a list, e.g. Reshape([8, 8])");
            None
        }
        None => {
            errors.over(args.call, "Reshape needs a target shape, e.g. Reshape([8, 8])");
            None
        }
    }
}

impl Spec for Reshape {
    fn class(&self) -> &'static str {
        "Reshape"
    }
    fn is_view(&self) -> bool {
        true
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let (input, target) = (&ins[0], &self.target);
        let total: usize = input.iter().product();
        let unknown = target.iter().filter(|d| **d == -1).count();
        let known: i64 = target.iter().filter(|d| **d != -1).product();
        let t: Vec<String> = target.iter().map(|d| d.to_string()).collect();
        if unknown > 1 || target.iter().any(|d| *d == 0 || *d < -1) || target.is_empty() {
            Err("Reshape's target dimensions must be positive, with at most one -1".into())
        } else if (unknown == 0 && known as usize != total) || (unknown == 1 && !total.is_multiple_of(known as usize)) {
            Err(format!("Reshape cannot turn {} ({total} values) into [{}]", show(input), t.join(", ")))
        } else {
            Ok(target.iter().map(|&d| if d == -1 { total / known as usize } else { d as usize }).collect())
        }
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        TokenStream::new()
    }
}

/// A view in a `#[kiln::call]` body (`reshape`, `expand_dims`, `squeeze`): the values as they
/// are, under a shape the lowering computes as constants for rustc (the macro does not know the
/// numbers, so it has no numeric shape rule).
struct CallView {
    class: &'static str,
}

/// The view `class` of a `call` body.
pub fn call_view(class: &'static str) -> Rc<dyn Spec> {
    Rc::new(CallView { class })
}

impl Spec for CallView {
    fn class(&self) -> &'static str {
        self.class
    }
    fn is_view(&self) -> bool {
        true
    }
    fn output_shape(&self, _: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Err(format!("{}'s shape is computed by rustc in a `call` body", self.class))
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        TokenStream::new()
    }
}
