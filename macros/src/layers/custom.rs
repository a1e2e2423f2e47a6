//! A user's own layer type in `sequential!` / `functional!`: `Custom(Scale<16>)`, or
//! `Custom(Project<16, 8>, output = 8)` when it changes the width of the last axis; and a field of
//! a `#[kiln::model]` struct. Only rustc knows these types, so their shape rule (the runtime
//! `Shaped` trait: `IN` → `OUT` on the last axis) is checked by constants rustc evaluates, with
//! the same wording as the macro's own errors.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, rt, show, snake_case as snake};
use crate::errors::Errors;

pub const KIND: Kind = Kind { class: "Custom", args: &["layer", "output", "inputs"], arity: Arity::One, build };

struct Custom {
    ty: syn::Type,
    output: Option<usize>,
    /// A kiln model of several inputs, applied as `layer(a, b)` (`inputs = 2`).
    inputs: usize,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let ty = match args.get("layer") {
        Some(Value::Type(t)) => Some(t.clone()),
        Some(Value::Ident(i)) => Some(syn::parse_quote!(#i)),
        Some(v) => {
            errors.at(v.span(), "Custom takes your layer's type, e.g. Custom(Scale<16>)");
            None
        }
        None => {
            errors.over(args.call, "Custom needs your layer's type, e.g. Custom(Scale<16>)");
            None
        }
    };
    let output = args.positive("output", "Custom", "Custom(Project<16, 8>, output = 8)", errors)?;
    let inputs = args.positive("inputs", "Custom", "Custom(Pair, inputs = 2)", errors)?.unwrap_or(1);
    Some(Rc::new(Custom { ty: ty?, output, inputs }))
}

impl Spec for Custom {
    fn class(&self) -> &'static str {
        "Custom"
    }

    fn arity(&self) -> Arity {
        if self.inputs > 1 { Arity::AtLeastTwo } else { Arity::One }
    }

    fn call_args(&self) -> bool {
        self.inputs > 1
    }

    fn auto_name(&self) -> String {
        // Named after the type, as Keras names a layer after its class: `Scale<16>` → `scale`.
        match &self.ty {
            syn::Type::Path(p) => {
                p.path.segments.last().map_or_else(|| "custom".into(), |s| snake(&s.ident.to_string()))
            }
            _ => "custom".into(),
        }
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let mut out = ins[0].clone();
        match (out.last_mut(), self.output) {
            (Some(d), Some(o)) => *d = o,
            (Some(_), None) => {}
            (None, _) => return Err(format!("a custom layer needs an input of rank 1 or more, got {}", show(&ins[0]))),
        }
        Ok(out)
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let ty = &self.ty;
        quote!(#ty)
    }

    fn params(&self, _: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        None
    }

    fn user_scope(&self) -> bool {
        true
    }

    fn summary_kind(&self) -> TokenStream {
        let (rt, ty) = (rt(), &self.ty);
        quote!(<#ty as #rt::Shaped>::KIND)
    }

    fn param_count(&self, _: &[Vec<usize>]) -> TokenStream {
        let (rt, ty) = (rt(), &self.ty);
        quote!(<#ty as #rt::Shaped>::PARAMS)
    }

    fn const_checks(&self, what: &str, ins: &[Vec<usize>], out: &[usize], at: &TokenStream) -> TokenStream {
        let ty = &self.ty;
        // The layer's first token: spans do not join on stable Rust.
        let span = at.clone().into_iter().next().map_or_else(|| at.span(), |t| t.span());
        let input = &ins[0];
        let out_last = out.last().copied().unwrap_or(0);
        // The path is written here, not interpolated, so that every token of the call carries the
        // layer's span and rustc's error underlines the layer.
        if self.inputs > 1 {
            // A model of several inputs: each input's shape against the model's declared ones.
            let (n, all) = (self.inputs, ins.iter().map(|s| quote!(&[#(#s),*])));
            let inputs = super::const_check(
                span,
                quote_spanned!(span=> ::kiln::__private::expect_model_inputs(#what, <#ty as ::kiln::__private::Model>::INPUTS, &[#(#all),*], #n)),
            );
            let custom = super::const_check(
                span,
                quote_spanned!(span=> ::kiln::__private::expect_custom(#what, ::kiln::__private::field_rule::<#ty>(), &[#(#input),*], #out_last)),
            );
            return quote!(#inputs #custom);
        }
        super::const_check(
            span,
            quote_spanned!(span=> ::kiln::__private::expect_custom(#what, ::kiln::__private::field_rule::<#ty>(), &[#(#input),*], #out_last)),
        )
    }
}

/// A field of a `#[kiln::model]` struct, applied in its `call` body: its type is the user's, and
/// its shape rule is its type's `Shaped` constants, read through the alias the struct macro made.
pub struct Field {
    pub key: String,
    /// The type alias the struct macro emitted for the field's (element) type, with the model's
    /// size parameters (`__KilnFieldMlp_hidden<H>`).
    pub alias: TokenStream,
}

impl Spec for Field {
    fn class(&self) -> &'static str {
        "Field"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let a = &self.alias;
        quote!(#a)
    }

    fn field_key(&self) -> Option<&str> {
        Some(&self.key)
    }

    /// A field's activation is a constant rustc knows: the model's `OUTPUT_ACTIVATIONS` carries
    /// it, and the loss fuses only when it is softmax.
    fn softmax_output(&self, _: &[usize]) -> bool {
        true
    }
}

/// A field of a `#[kiln::model]` struct as ONNX export sees it: the layer of the other styles its
/// type is (`Dense<10, 64, Relu>` is `Dense(64, activation = relu)`), whose weights it holds
/// under `prefix` (`dense1`, `blocks.0`).
pub struct Exported {
    pub inner: Rc<dyn Spec>,
    pub prefix: String,
    /// A weight the field's type names otherwise (a `Matrix`'s `value` is Dense's `kernel`).
    pub rename: Option<(&'static str, &'static str)>,
}

impl Spec for Exported {
    fn class(&self) -> &'static str {
        self.inner.class()
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        self.inner.output_shape(ins)
    }

    fn runtime_type(&self, ins: &[Vec<Dim>]) -> TokenStream {
        self.inner.runtime_type(ins)
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        self.inner.params(ins)
    }

    fn onnx(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        self.inner.onnx(ins, out)
    }

    fn weight_prefix(&self) -> Option<&str> {
        Some(&self.prefix)
    }

    fn weight_path(&self, name: &str) -> Option<String> {
        let name = match self.rename {
            Some((from, to)) if from == name => to,
            _ => name,
        };
        Some(format!("{}.{name}", self.prefix))
    }
}

/// A `Weight<D>` field read as a tensor in `call` (`x * self.gamma`), for ONNX export: its
/// `value`, the same for every sample (the node reads the model's input for the batch only).
pub struct WeightRead;

impl Spec for WeightRead {
    fn class(&self) -> &'static str {
        "Weight"
    }

    fn output_shape(&self, _: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Err("a weight's shape is its type's".into())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        TokenStream::new()
    }

    fn onnx(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::WeightRead)
    }
}
