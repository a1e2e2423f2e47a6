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

/// `reshape(x, [4, -1])` in `functional!` math: Keras' Reshape layer.
pub fn reshape_spec(target: Vec<i64>) -> Rc<dyn Spec> {
    Rc::new(Reshape { target })
}

/// A view that adds an axis of extent 1 (`expand_dims`), removes one (`squeeze`), or merges an
/// axis with the next (the last step of `repeat`), at a Keras axis of the sample: the values as
/// they are, under the shape its numeric rule gives (`functional!` math).
struct AxisView {
    class: &'static str,
    axis: i64,
}

/// `expand_dims(x, axis)`: a new axis of extent 1 at Keras' `axis` of the result.
pub fn expand_dims(axis: i64) -> Rc<dyn Spec> {
    Rc::new(AxisView { class: "ExpandDims", axis })
}

/// `squeeze(x, axis)`: Keras' `axis`, whose extent must be 1, removed.
pub fn squeeze(axis: i64) -> Rc<dyn Spec> {
    Rc::new(AxisView { class: "Squeeze", axis })
}

/// Sample axis `axis` (0-based) merged with the one after it: `[.., d, n, ..]` → `[.., d·n, ..]`.
pub fn merge_axes(axis: usize) -> Rc<dyn Spec> {
    Rc::new(AxisView { class: "Reshape", axis: axis as i64 })
}

impl Spec for AxisView {
    fn class(&self) -> &'static str {
        self.class
    }
    fn is_view(&self) -> bool {
        true
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let mut shape = ins[0].clone();
        match self.class {
            "ExpandDims" => {
                // The new axis is counted in the result, so it may be one past the last.
                let rank = shape.len() + 1;
                let a = super::math::sample_axis(self.axis, rank).ok_or_else(|| {
                    format!(
                        "expand_dims at axis {} of a tensor of shape {}: the new axis is one of 1..={rank} (or \
                         -{rank}..=-1); axis 0 is the batch",
                        self.axis,
                        show(&shape)
                    )
                })?;
                shape.insert(a, 1);
            }
            "Squeeze" => {
                let a = super::math::sample_axis(self.axis, shape.len())
                    .ok_or_else(|| super::math::missing_axis("squeeze", self.axis, &shape))?;
                if shape[a] != 1 {
                    return Err(format!(
                        "squeeze removes an axis of extent 1, but axis {} of {} has extent {}",
                        self.axis,
                        show(&shape),
                        shape[a]
                    ));
                }
                shape.remove(a);
            }
            _ => {
                let a = self.axis as usize;
                let n = shape.remove(a + 1);
                shape[a] *= n;
            }
        }
        Ok(shape)
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        TokenStream::new()
    }
}
