//! Keras' merge layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` (inputs of
//! one shape, any rank), `Concatenate(axis = -1)` and `Dot(axes = 1)` (two vectors per sample).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, product, rt, show_all};
use crate::errors::Errors;

macro_rules! elementwise_kinds {
    ($($konst:ident => $class:literal, $arity:ident;)*) => {$(
        pub const $konst: Kind = Kind {
            class: $class,
            args: &[],
            arity: Arity::$arity,
            build: |_, _| Some(elementwise($class)),
        };
    )*};
}

elementwise_kinds! {
    ADD => "Add", AtLeastTwo;
    SUBTRACT => "Subtract", Two;
    MULTIPLY => "Multiply", AtLeastTwo;
    AVERAGE => "Average", AtLeastTwo;
    MAXIMUM => "Maximum", AtLeastTwo;
    MINIMUM => "Minimum", AtLeastTwo;
}

pub const CONCATENATE: Kind = Kind { class: "Concatenate", args: &["axis"], arity: Arity::AtLeastTwo, build: concat };
pub const DOT: Kind = Kind { class: "Dot", args: &["axes"], arity: Arity::Two, build: dot_kind };

/// Checks the number of inputs against the kind's arity.
fn count(class: &str, arity: Arity, ins: &[Vec<usize>]) -> Result<(), String> {
    let two = arity == Arity::Two;
    if ins.len() < 2 || (two && ins.len() != 2) {
        return Err(format!(
            "{class} takes {} inputs, got {}",
            if two { "exactly 2" } else { "at least 2" },
            ins.len()
        ));
    }
    Ok(())
}

struct Elementwise {
    class: &'static str,
}

/// An element-wise merge by Keras class name (`Add`).
pub fn elementwise(class: &'static str) -> Rc<dyn Spec> {
    Rc::new(Elementwise { class })
}

impl Spec for Elementwise {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        self.class
    }
    fn arity(&self) -> Arity {
        if self.class == "Subtract" { Arity::Two } else { Arity::AtLeastTwo }
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        count(self.class, self.arity(), ins)?;
        if ins.iter().any(|s| s != &ins[0]) {
            return Err(format!("{} needs inputs of the same shape, got {}", self.class, show_all(ins)));
        }
        Ok(ins[0].clone())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let (rt, c) = (rt(), format_ident!("{}", self.class));
        quote!(#rt::#c)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let ty = self.runtime_type(ins);
        quote!(<#ty>::new())
    }
    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Merge { op: self.class })
    }
}

struct Concatenate {
    axis: i64,
    /// The join of `stack` (its inputs given an axis of 1 there first), for its error's words.
    stacked: bool,
}

/// `Concatenate(axis)`, Keras' axis convention (0 is the batch, -1 the last).
pub fn concatenate(axis: i64) -> Rc<dyn Spec> {
    Rc::new(Concatenate { axis, stacked: false })
}

/// The join of `stack([a, b], axis)`, its inputs each given an axis of extent 1 at `axis`.
pub fn stack_join(axis: i64) -> Rc<dyn Spec> {
    Rc::new(Concatenate { axis, stacked: true })
}

fn concat(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("axis") {
        Some(Value::Int(a, _)) => Some(concatenate(*a)),
        Some(v) => {
            errors.at(v.span(), "Concatenate's axis must be an integer, e.g. Concatenate(axis = -1)");
            None
        }
        None => Some(concatenate(-1)),
    }
}

impl Concatenate {
    /// The axis as an index into a sample's shape of rank `rank`, if it is one.
    fn index(&self, rank: usize) -> Option<usize> {
        let rank = rank as i64;
        let a = if self.axis < 0 { rank + 1 + self.axis } else { self.axis };
        (1..=rank).contains(&a).then(|| (a - 1) as usize)
    }
}

impl Spec for Concatenate {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        "Concatenate"
    }
    fn arity(&self) -> Arity {
        Arity::AtLeastTwo
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        count("Concatenate", Arity::AtLeastTwo, ins)?;
        let rank = ins[0].len();
        let Some(a) = self.index(rank) else {
            return Err(format!(
                "Concatenate's axis {} is outside the inputs' axes 1..={rank} (axis 0 is the batch)",
                self.axis
            ));
        };
        let fits = ins
            .iter()
            .all(|s| s.len() == rank && s.iter().zip(&ins[0]).enumerate().all(|(i, (x, y))| i == a || x == y));
        if !fits && self.stacked {
            let unstacked: Vec<Vec<usize>> =
                ins.iter().map(|s| s.iter().enumerate().filter(|&(i, _)| i != a).map(|(_, &d)| d).collect()).collect();
            return Err(format!("stack needs tensors of one shape, got {}", show_all(&unstacked)));
        }
        if !fits {
            return Err(format!(
                "Concatenate on axis {} needs inputs whose other dimensions match, got {}",
                self.axis,
                show_all(ins)
            ));
        }
        let mut out = ins[0].clone();
        out[a] = ins.iter().map(|s| s[a]).sum();
        Ok(out)
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Concatenate)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let a = self.index(ins[0].len()).unwrap_or(0);
        let outer = product(&ins[0][..a]);
        let widths = ins.iter().map(|s| product(&s[a..]));
        let rt = rt();
        quote!(#rt::Concatenate::new(#outer, &[#(#widths),*]))
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let a = self.index(ins[0].len())?;
        let outer = ins[0][..a].iter().product();
        let widths = ins.iter().map(|s| s[a..].iter().product()).collect();
        Some(crate::ir::Static::Concat { outer, widths })
    }
}

struct Dot;

/// `Dot(axes = 1)` of two vectors per sample.
pub fn dot() -> Rc<dyn Spec> {
    Rc::new(Dot)
}

fn dot_kind(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("axes") {
        Some(Value::Int(1 | -1, _)) | None => Some(dot()),
        Some(v) => {
            errors.at(v.span(), "kiln's Dot takes the dot product of two vectors per sample: axes must be 1 (or -1)");
            None
        }
    }
}

impl Spec for Dot {
    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Dot)
    }

    fn class(&self) -> &'static str {
        "Dot"
    }
    fn arity(&self) -> Arity {
        Arity::Two
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        count("Dot", Arity::Two, ins)?;
        if ins[0].len() != 1 || ins[0] != ins[1] {
            return Err(format!("Dot needs two vectors of the same width, got {}", show_all(ins)));
        }
        Ok(vec![1])
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Dot)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, w) = (rt(), product(&ins[0]));
        quote!(#rt::Dot::new(#w))
    }
}
