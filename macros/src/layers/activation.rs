//! `Activation(name)`, and the activations every layer's `activation =` argument accepts.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, last, rt};
use crate::errors::{Errors, suggestion};

/// The activations kiln knows, by Keras name, with the runtime type each selects.
pub const ACTIVATIONS: &[(&str, &str)] = &[
    ("linear", "Linear"),
    ("relu", "Relu"),
    ("sigmoid", "Sigmoid"),
    ("tanh", "Tanh"),
    ("softmax", "Softmax"),
    ("gelu", "Gelu"),
    ("elu", "Elu"),
    ("selu", "Selu"),
    ("leaky_relu", "LeakyRelu"),
    ("softplus", "Softplus"),
    ("swish", "Swish"),
    ("silu", "Swish"),
    ("gelu_approximate", "GeluApproximate"),
];

/// An activation as the user named it.
#[derive(Clone, Copy)]
pub struct Act {
    /// Keras name (`relu`).
    pub name: &'static str,
    /// Runtime type name (`Relu`).
    pub ty: &'static str,
}

impl Act {
    pub const LINEAR: Act = Act { name: "linear", ty: "Linear" };

    pub fn is_softmax(&self) -> bool {
        self.ty == "Softmax"
    }

    /// The activation called `name`, if kiln has it.
    pub fn named(name: &str) -> Option<Act> {
        ACTIVATIONS.iter().find(|(n, _)| *n == name).map(|(name, ty)| Act { name, ty })
    }
}

/// An `activation = ..` argument.
pub fn activation(v: &Value, errors: &mut Errors) -> Option<Act> {
    let (name, span) = match v {
        Value::Ident(i) => (i.to_string(), i.span()),
        Value::Str(s, sp) => (s.clone(), *sp),
        other => {
            errors.at(other.span(), "expected an activation name, e.g. `relu` or \"relu\"");
            return None;
        }
    };
    Act::named(&name).or_else(|| {
        let names: Vec<_> = ACTIVATIONS.iter().map(|(n, _)| *n).collect();
        errors.at(
            span,
            format!(
                "unknown activation `{name}`{}; kiln's activations are: {}",
                suggestion(&name, &names),
                names.join(", ")
            ),
        );
        None
    })
}

pub const KIND: Kind = Kind { class: "Activation", args: &["activation"], arity: Arity::One, build };

pub struct Activation {
    pub act: Act,
    /// The Keras class: `Activation`, or the layer named for its function (`ReLU`, `Softmax`,
    /// `ELU`).
    pub class: &'static str,
}

impl Activation {
    /// `Activation(act)`.
    pub fn new(act: Act) -> Self {
        Activation { act, class: "Activation" }
    }
}

/// Keras' `ReLU()`, `Softmax()` and `ELU()` layers: their function with Keras' defaults; an
/// argument that would change it (`ReLU(max_value = 6)`, `Softmax(axis = 1)`) is refused.
pub const RELU: Kind =
    Kind { class: "ReLU", args: &["max_value", "negative_slope", "threshold"], arity: Arity::One, build: relu };
pub const SOFTMAX: Kind = Kind { class: "Softmax", args: &["axis"], arity: Arity::One, build: softmax };
pub const ELU: Kind = Kind { class: "ELU", args: &["alpha"], arity: Arity::One, build: elu };

fn named_layer(class: &'static str, name: &str) -> Option<Rc<dyn Spec>> {
    Some(Rc::new(Activation { act: Act::named(name)?, class }))
}

fn relu(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if let Some(v) = args.get("max_value") {
        errors.at(v.span(), "kiln's ReLU has no max_value yet: it is Keras' ReLU() with its defaults");
        return None;
    }
    let zero: fn(f64) -> bool = |v| v == 0.0;
    args.number("negative_slope", 0.0, (zero, "0 (LeakyReLU(negative_slope) has a slope)"), errors)?;
    args.number("threshold", 0.0, (zero, "0"), errors)?;
    named_layer("ReLU", "relu")
}

fn softmax(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    args.number("axis", -1.0, (|v| v == -1.0, "-1 (the last axis)"), errors)?;
    named_layer("Softmax", "softmax")
}

fn elu(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    args.number("alpha", 1.0, (|v| v == 1.0, "1.0"), errors)?;
    named_layer("ELU", "elu")
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("activation") {
        Some(v) => Some(Rc::new(Activation::new(activation(v, errors)?))),
        None => {
            errors.over(args.call, "Activation needs an activation name, e.g. Activation(relu)");
            None
        }
    }
}

impl Spec for Activation {
    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Activation { act: self.act.ty })
    }

    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }

    /// Typed with its width where that is a number; a width rustc computes (a field's, which
    /// may use the model's size parameters) is given when the layer is built instead, since a
    /// type cannot take a computed constant that depends on a generic parameter.
    fn runtime_type(&self, ins: &[Vec<Dim>]) -> TokenStream {
        let (rt, a, w) = (rt(), format_ident!("{}", self.act.ty), last(&ins[0]));
        match syn::parse2::<syn::LitInt>(w.clone()) {
            Ok(_) => quote!(#rt::Activation<#rt::#a, { #w }>),
            Err(_) => quote!(#rt::Activation<#rt::#a, 0>),
        }
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (ty, w) = (self.runtime_type(ins), last(&ins[0]));
        quote!(<#ty>::with_width(#w))
    }

    fn activation(&self) -> Option<&'static str> {
        Some(self.act.name)
    }

    fn softmax_output(&self, out: &[usize]) -> bool {
        self.act.is_softmax() && out.len() == 1
    }
}
