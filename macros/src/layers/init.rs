//! `kernel_initializer`, `bias_initializer`, `kernel_regularizer`, `bias_regularizer`,
//! `kernel_constraint` and `bias_constraint` on the layers with a kernel and a bias, checked here
//! (unknown names and bad numbers are compile errors) and applied by `kiln::configure` when the
//! model is built.

use proc_macro2::TokenStream;
use quote::quote;

use super::call::Value;
use super::{Args, rt};
use crate::errors::Errors;
use crate::errors::suggestion;

/// What to apply to one weight.
#[derive(Clone, Default)]
struct Weight {
    init: Option<TokenStream>,
    reg: Option<TokenStream>,
    constraint: Option<TokenStream>,
}

/// The options of a layer's `kernel` and `bias`, and its `activity_regularizer`.
#[derive(Clone, Default)]
pub struct WeightOpts {
    weights: Vec<(&'static str, Weight)>,
    activity: Option<TokenStream>,
}

const INITIALIZERS: [&str; 13] = [
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "random_uniform",
    "random_normal",
];
const REGULARIZERS: [&str; 3] = ["l1", "l2", "l1_l2"];
const CONSTRAINTS: [&str; 3] = ["max_norm", "non_neg", "unit_norm"];

/// A name, with numbers when written as a call.
fn named(v: &Value) -> Option<(String, Vec<f64>)> {
    match v {
        Value::Str(s, _) => Some((s.clone(), Vec::new())),
        Value::Ident(i) => Some((i.to_string(), Vec::new())),
        Value::Call(i, n, _) => Some((i.to_string(), n.clone())),
        _ => None,
    }
}

fn unknown(what: &str, name: &str, valid: &[&str]) -> String {
    format!("unknown {what} `{name}`{}; kiln's {what}s are: {}", suggestion(name, valid), valid.join(", "))
}

/// Up to `max` numbers, each defaulting; `None` (reported) when there are too many.
fn numbers(v: &Value, name: &str, defaults: &[f64], errors: &mut Errors) -> Option<Vec<f64>> {
    let given = named(v)?.1;
    if given.len() > defaults.len() {
        errors.at(v.span(), format!("`{name}` takes at most {} number(s), got {}", defaults.len(), given.len()));
        return None;
    }
    let mut out = defaults.to_vec();
    out[..given.len()].copy_from_slice(&given);
    if out.iter().any(|x| !x.is_finite()) {
        errors.at(v.span(), format!("`{name}` needs finite numbers"));
        return None;
    }
    Some(out)
}

fn initializer(v: &Value, errors: &mut Errors) -> Option<TokenStream> {
    let rt = rt();
    let Some((name, _)) = named(v) else {
        errors.at(v.span(), "expected an initializer name, e.g. \"he_normal\"");
        return None;
    };
    let f = |x: f64| x as f32;
    Some(match name.as_str() {
        "glorot_uniform" => quote!(#rt::Initializer::GlorotUniform),
        "glorot_normal" => quote!(#rt::Initializer::GlorotNormal),
        "he_normal" => quote!(#rt::Initializer::HeNormal),
        "he_uniform" => quote!(#rt::Initializer::HeUniform),
        "lecun_normal" => quote!(#rt::Initializer::LecunNormal),
        "lecun_uniform" => quote!(#rt::Initializer::LecunUniform),
        "zeros" => quote!(#rt::Initializer::Zeros),
        "ones" => quote!(#rt::Initializer::Ones),
        "orthogonal" => {
            let g = f(numbers(v, "orthogonal", &[1.0], errors)?[0]);
            quote!(#rt::Initializer::Orthogonal(#g))
        }
        "constant" => {
            let c = f(numbers(v, "constant", &[0.0], errors)?[0]);
            quote!(#rt::Initializer::Constant(#c))
        }
        "uniform" | "random_uniform" => {
            let n = numbers(v, &name, &[-0.05, 0.05], errors)?;
            let (lo, hi) = (f(n[0]), f(n[1]));
            quote!(#rt::Initializer::RandomUniform(#lo, #hi))
        }
        "random_normal" => {
            let n = numbers(v, "random_normal", &[0.0, 0.05], errors)?;
            let (m, sd) = (f(n[0]), f(n[1]));
            quote!(#rt::Initializer::RandomNormal(#m, #sd))
        }
        _ => {
            errors.at(v.span(), unknown("initializer", &name, &INITIALIZERS));
            return None;
        }
    })
}

fn regularizer(v: &Value, errors: &mut Errors) -> Option<TokenStream> {
    let rt = rt();
    let Some((name, _)) = named(v) else {
        errors.at(v.span(), "expected a regularizer, e.g. l2(0.01)");
        return None;
    };
    // Keras' defaults: l1 and l2 of 0.01; L1L2 of 0 and 0.
    let (l1, l2) = match name.as_str() {
        "l1" => (numbers(v, "l1", &[0.01], errors)?[0], 0.0),
        "l2" => (0.0, numbers(v, "l2", &[0.01], errors)?[0]),
        "l1_l2" => {
            let n = numbers(v, "l1_l2", &[0.0, 0.0], errors)?;
            (n[0], n[1])
        }
        _ => {
            errors.at(v.span(), unknown("regularizer", &name, &REGULARIZERS));
            return None;
        }
    };
    if l1 < 0.0 || l2 < 0.0 {
        errors.at(v.span(), format!("`{name}` factors must be >= 0"));
        return None;
    }
    let (l1, l2) = (l1 as f32, l2 as f32);
    Some(quote!(#rt::Regularizer { l1: #l1, l2: #l2 }))
}

fn constraint(v: &Value, errors: &mut Errors) -> Option<TokenStream> {
    let rt = rt();
    let Some((name, _)) = named(v) else {
        errors.at(v.span(), "expected a constraint, e.g. max_norm(3)");
        return None;
    };
    Some(match name.as_str() {
        "max_norm" => {
            let m = numbers(v, "max_norm", &[2.0], errors)?[0];
            if m <= 0.0 {
                errors.at(v.span(), format!("max_norm must be > 0, got {m}"));
                return None;
            }
            let m = m as f32;
            quote!(#rt::Constraint::MaxNorm(#m))
        }
        "non_neg" => quote!(#rt::Constraint::NonNeg),
        "unit_norm" => quote!(#rt::Constraint::UnitNorm),
        _ => {
            errors.at(v.span(), unknown("constraint", &name, &CONSTRAINTS));
            return None;
        }
    })
}

/// Reads the six arguments; `use_bias = false` with a bias option is an error.
pub fn parse(args: &Args<'_>, use_bias: bool, errors: &mut Errors) -> Option<WeightOpts> {
    let weights: &[(&str, &'static str)] =
        if use_bias { &[("kernel", "kernel"), ("bias", "bias")] } else { &[("kernel", "kernel")] };
    let opts = parse_weights(args, weights, errors);
    let stray = ["bias_initializer", "bias_regularizer", "bias_constraint"].into_iter().find(|k| args.get(k).is_some());
    if let (false, Some(key)) = (use_bias, stray) {
        let v = args.get(key)?;
        errors.at(v.span(), format!("{key} needs a bias: remove it, or set use_bias = true"));
        return None;
    }
    opts
}

/// Reads `{prefix}_initializer`, `{prefix}_regularizer` and `{prefix}_constraint` for each
/// `(prefix, weight name)` (`("recurrent", "recurrent_kernel")`), and `activity_regularizer`.
pub fn parse_weights(args: &Args<'_>, weights: &[(&str, &'static str)], errors: &mut Errors) -> Option<WeightOpts> {
    let mut opts = WeightOpts::default();
    let mut ok = true;
    for &(prefix, weight) in weights {
        let mut w = Weight::default();
        let mut get = |suffix: &str, f: fn(&Value, &mut Errors) -> Option<TokenStream>| {
            let v = args.get(&format!("{prefix}_{suffix}"))?;
            let r = f(v, errors);
            ok &= r.is_some();
            r
        };
        w.init = get("initializer", initializer);
        w.reg = get("regularizer", regularizer);
        w.constraint = get("constraint", constraint);
        if w.init.is_some() || w.reg.is_some() || w.constraint.is_some() {
            opts.weights.push((weight, w));
        }
    }
    if let Some(v) = args.get("activity_regularizer") {
        opts.activity = regularizer(v, errors);
        ok &= opts.activity.is_some();
    }
    ok.then_some(opts)
}

impl WeightOpts {
    /// Statements applying the options to the field `target` of type `ty` (a `#[kiln::model]`
    /// field): each weight named must be one the type states (`Shaped::PARAM_SHAPES`), checked
    /// when the model compiles.
    pub fn apply_to(&self, target: &TokenStream, ty: &syn::Type, field: &str) -> TokenStream {
        let rt = rt();
        let stmts = self.weights.iter().map(|(name, w)| {
            let opt = |t: &Option<TokenStream>| match t {
                Some(t) => quote!(Some(#t)),
                None => quote!(None),
            };
            let (i, r, c) = (opt(&w.init), opt(&w.reg), opt(&w.constraint));
            let msg = format!("#[layer(..)] on field `{field}` configures its `{name}`, which its type does not have");
            quote! {
                const { assert!(#rt::states_param(<#ty as #rt::Shaped>::PARAM_SHAPES, #name), #msg) };
                #rt::configure(&mut #target, #name, #i, #r, #c, &mut rng);
            }
        });
        let activity = self.activity.as_ref().map(|r| {
            let msg = format!("#[layer(activity_regularizer = ..)] on field `{field}`: only Dense layers take one");
            quote! {
                const { assert!(#rt::same_str(<#ty as #rt::Shaped>::KIND, "Dense"), #msg) };
                #rt::Layer::set_activity_regularizer(&mut #target, Some(#r));
            }
        });
        quote!(#(#stmts)* #activity)
    }

    /// The layer's constructor, followed by the options (nothing when none is given, so models
    /// without them expand as before).
    pub fn wrap(&self, constructor: TokenStream) -> TokenStream {
        if self.weights.is_empty() && self.activity.is_none() {
            return constructor;
        }
        let rt = rt();
        let activity =
            self.activity.as_ref().map(|r| quote!(#rt::Layer::set_activity_regularizer(&mut layer, Some(#r));));
        let calls = self.weights.iter().map(|(name, w)| {
            let opt = |t: &Option<TokenStream>| match t {
                Some(t) => quote!(Some(#t)),
                None => quote!(None),
            };
            let (i, r, c) = (opt(&w.init), opt(&w.reg), opt(&w.constraint));
            quote!(#rt::configure(&mut layer, #name, #i, #r, #c, &mut rng);)
        });
        quote!({
            let mut layer = #constructor;
            #(#calls)*
            #activity
            layer
        })
    }
}
