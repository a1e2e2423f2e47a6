//! `Dense(units, activation = None, use_bias = True, kernel_initializer, ...)` on the last axis:
//! `[F] → [units]`, `[T, F] → [T, units]`; an input of rank 3 or more (an image) is an error
//! that asks for a Flatten.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::activation::{Act, activation};
use super::{Args, Arity, Dim, Kind, Spec, last, rt, show};
use crate::errors::Errors;

pub const KIND: Kind =
    Kind { class: "Dense", args: with_weight_args!("units", "activation", "use_bias"), arity: Arity::One, build };

struct Dense {
    units: usize,
    act: Act,
    use_bias: bool,
    weights: super::init::WeightOpts,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let units = args.positive("units", "Dense", "Dense(64)", errors);
    let units = match units {
        Some(Some(u)) => Some(u),
        Some(None) => {
            errors.over(args.call, "Dense needs its number of units, e.g. Dense(64)");
            None
        }
        None => None,
    };
    let act = match args.get("activation") {
        Some(v) => activation(v, errors),
        None => Some(Act::LINEAR),
    };
    let use_bias = args.boolean("use_bias", true, errors);
    let weights = super::init::parse(args, use_bias.unwrap_or(true), errors);
    Some(Rc::new(Dense { units: units?, act: act?, use_bias: use_bias?, weights: weights? }))
}

impl Spec for Dense {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        "Dense"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        // Keras would apply Dense to the last axis of an image too, which after a convolution is
        // almost always a forgotten Flatten: the model then predicts a map where a vector was
        // meant, and fails only when it meets its labels. kiln asks for the intent instead.
        if ins[0].len() >= 3 {
            return Err(format!(
                "Dense takes a vector [features] or a sequence [steps, features], got {}: add Flatten() or \
                 GlobalAveragePooling2D() before it (for a Dense at every position, use Conv2D(units, 1))",
                show(&ins[0])
            ));
        }
        let mut out = ins[0].clone();
        match out.last_mut() {
            Some(d) => *d = self.units,
            None => return Err(format!("Dense expects an input of rank 1 or more, got {}", show(&ins[0]))),
        }
        Ok(out)
    }

    fn runtime_type(&self, ins: &[Vec<Dim>]) -> TokenStream {
        let (rt, inp, units, a) = (rt(), last(&ins[0]), self.units, format_ident!("{}", self.act.ty));
        quote!(#rt::Dense<#inp, #units, #rt::#a>)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (ty, b) = (self.runtime_type(ins), self.use_bias);
        self.weights.wrap(quote!(<#ty>::new(#b, &mut rng)))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let inp = *ins[0].last()?;
        let mut p = vec![("kernel", vec![inp, self.units])];
        if self.use_bias {
            p.push(("bias", vec![self.units]));
        }
        Some(p)
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Dense { units: self.units, act: self.act.ty })
    }

    fn activation(&self) -> Option<&'static str> {
        Some(self.act.name)
    }

    fn softmax_output(&self, out: &[usize]) -> bool {
        // Softmax normalises the last axis: over the whole sample only for a vector.
        self.act.is_softmax() && out.len() == 1
    }
}
