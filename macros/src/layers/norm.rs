//! `BatchNormalization(axis = -1, momentum = 0.99, epsilon = 0.001, center = true, scale = true)` and
//! `LayerNormalization(axis = -1, epsilon = 0.001, center = true, scale = true)`.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, last, rt, show};
use crate::errors::Errors;

pub const KIND: Kind = Kind {
    class: "BatchNormalization",
    args: &["axis", "momentum", "epsilon", "center", "scale"],
    arity: Arity::One,
    build,
};

struct BatchNorm {
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if let Some(v) = args.get("axis").filter(|v| !matches!(v, Value::Int(-1, _))) {
        errors.at(v.span(), "kiln's BatchNormalization normalises the last axis: axis must be -1 (channels_last)");
    }
    let fraction: fn(f64) -> bool = |v| (0.0..=1.0).contains(&v);
    let positive: fn(f64) -> bool = |v| v.is_finite() && v > 0.0;
    let momentum = args.number("momentum", 0.99, (fraction, "in [0, 1]"), errors);
    let epsilon = args.number("epsilon", 1e-3, (positive, "a finite number > 0"), errors);
    let center = args.boolean("center", true, errors);
    let scale = args.boolean("scale", true, errors);
    Some(Rc::new(BatchNorm { momentum: momentum? as f32, epsilon: epsilon? as f32, center: center?, scale: scale? }))
}

impl Spec for BatchNorm {
    fn class(&self) -> &'static str {
        "BatchNormalization"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].is_empty() {
            return Err(format!("BatchNormalization needs an input with a channel axis, got {}", show(&ins[0])));
        }
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::BatchNorm)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, c) = (rt(), last(&ins[0]));
        let BatchNorm { momentum, epsilon, center, scale } = *self;
        quote!(#rt::BatchNorm::new(#c, #momentum, #epsilon, #center, #scale))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let c = *ins[0].last()?;
        let mut p = Vec::new();
        if self.scale {
            p.push(("gamma", vec![c]));
        }
        if self.center {
            p.push(("beta", vec![c]));
        }
        p.extend([("moving_mean", vec![c]), ("moving_variance", vec![c])]);
        Some(p)
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let BatchNorm { epsilon, center, scale, .. } = *self;
        Some(crate::ir::Static::BatchNorm { epsilon, center, scale })
    }
}

/// `LayerNormalization(axis = -1, epsilon = 0.001, center = true, scale = true)`.
pub const LAYER_NORM: Kind = Kind {
    class: "LayerNormalization",
    args: &["axis", "epsilon", "center", "scale"],
    arity: Arity::One,
    build: layer_norm,
};

struct LayerNorm {
    epsilon: f32,
    center: bool,
    scale: bool,
}

fn layer_norm(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if let Some(v) = args.get("axis").filter(|v| !matches!(v, Value::Int(-1, _))) {
        errors.at(v.span(), "kiln's LayerNormalization normalises the last axis: axis must be -1");
    }
    let positive: fn(f64) -> bool = |v| v.is_finite() && v > 0.0;
    let epsilon = args.number("epsilon", 1e-3, (positive, "a finite number > 0"), errors);
    let center = args.boolean("center", true, errors);
    let scale = args.boolean("scale", true, errors);
    Some(Rc::new(LayerNorm { epsilon: epsilon? as f32, center: center?, scale: scale? }))
}

impl Spec for LayerNorm {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let LayerNorm { epsilon, center, scale } = *self;
        Some(crate::ir::Static::LayerNorm { epsilon, center, scale })
    }

    fn class(&self) -> &'static str {
        "LayerNormalization"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].is_empty() {
            return Err(format!("LayerNormalization needs an input with a feature axis, got {}", show(&ins[0])));
        }
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::LayerNorm)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, f) = (rt(), last(&ins[0]));
        let LayerNorm { epsilon, center, scale } = *self;
        quote!(#rt::LayerNorm::new(#f, #epsilon, #center, #scale))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let f = *ins[0].last()?;
        let mut p = Vec::new();
        if self.scale {
            p.push(("gamma", vec![f]));
        }
        if self.center {
            p.push(("beta", vec![f]));
        }
        Some(p)
    }
}

/// `Normalization(axis = -1)`: `(x - mean) / max(sqrt(variance), 1e-7)` per feature of the last
/// axis, its statistics non-trainable state set by `model.adapt("normalization", &x)` (Keras'
/// `layer.adapt(x)`).
pub const NORMALIZATION: Kind = Kind {
    class: "Normalization",
    args: &["axis", "mean", "variance", "invert"],
    arity: Arity::One,
    build: normalization,
};

struct Normalization;

fn normalization(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let mut ok = true;
    if let Some(v) = args.get("axis").filter(|v| !matches!(v, Value::Int(-1, _))) {
        errors.at(v.span(), "kiln's Normalization normalises the last axis: axis must be -1");
        ok = false;
    }
    for key in ["mean", "variance"] {
        if let Some(v) = args.get(key) {
            errors.at(
                v.span(),
                format!("kiln's Normalization takes its {key} from data: model.adapt(\"normalization\", &x)"),
            );
            ok = false;
        }
    }
    if args.boolean("invert", false, errors)? {
        errors.over(args.call, "kiln's Normalization does not invert yet");
        ok = false;
    }
    ok.then(|| Rc::new(Normalization) as Rc<dyn Spec>)
}

impl Spec for Normalization {
    fn class(&self) -> &'static str {
        "Normalization"
    }

    fn keeps_mask(&self) -> bool {
        true
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].is_empty() {
            return Err(format!("Normalization needs an input with a feature axis, got {}", show(&ins[0])));
        }
        Ok(ins[0].clone())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Normalization)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, f) = (rt(), last(&ins[0]));
        quote!(#rt::Normalization::new(#f))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let f = *ins[0].last()?;
        Some(vec![("mean", vec![f]), ("variance", vec![f]), ("count", vec![])])
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Normalization)
    }
}
