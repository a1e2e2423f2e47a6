//! `sequential!` front end.
//!
//! ```text
//! sequential! {
//!     #[attributes] and /// docs
//!     VIS struct NAME: [d1, d2?, d3?] {
//!         LAYER, LAYER(args), ...          // trailing comma optional
//!     }
//! }
//! LAYER := Dense | Flatten | Reshape | Activation
//! args  := value | key = value, ...        // value: int, -int, "str", ident, true/false, [ints]
//! ```

use std::collections::HashMap;

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Visibility, braced};

use super::{Errors, LayerCall, Value, understand};
use crate::ir::{Model, Node};

/// The raw syntax, before layers are understood.
pub struct Syntax {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    input: Option<(Value, Span)>,
    layers: Vec<LayerCall>,
}

impl Parse for Syntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let input_shape = if input.peek(Token![:]) {
            let colon: Token![:] = input.parse()?;
            let v: Value = input.parse()?;
            Some((v, colon.span))
        } else {
            None
        };
        let content;
        braced!(content in input);
        let layers = Punctuated::<LayerCall, Token![,]>::parse_terminated(&content)?.into_iter().collect();
        Ok(Syntax { attrs, vis, name, input: input_shape, layers })
    }
}

impl Syntax {
    /// The model's name and visibility, for the fallback emitted beside errors.
    pub fn header(&self) -> (Ident, Visibility) {
        (self.name.clone(), self.vis.clone())
    }
}

/// Understands the layers and names them as Keras does (`dense`, `dense_1`, ...).
pub fn lower(syntax: Syntax) -> Result<Model, syn::Error> {
    let mut errors = Errors::default();
    let mut input_shape = Vec::new();
    match &syntax.input {
        None => errors.at(
            syntax.name.span(),
            format!(
                "sequential! needs the input shape after the name, e.g. `struct {}: [784] {{ .. }}` (the batch dimension is left out)",
                syntax.name
            ),
        ),
        Some((Value::List(dims, span), _)) => {
            if dims.is_empty() || dims.len() > 3 {
                errors.at(*span, format!("the input shape must have 1 to 3 dimensions (the batch dimension is left out), got {}", dims.len()));
            } else if let Some(d) = dims.iter().find(|d| **d <= 0) {
                errors.at(*span, format!("input dimensions must be positive, got {d}"));
            } else {
                input_shape = dims.iter().map(|d| *d as usize).collect();
            }
        }
        Some((other, _)) => errors.at(other.span(), "the input shape is a list of dimensions, e.g. `[8, 8, 1]`"),
    }
    if syntax.layers.is_empty() {
        errors.at(syntax.name.span(), "a sequential model needs at least one layer");
    }
    let mut nodes = Vec::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut taken: HashMap<String, Span> = HashMap::new();
    for call in &syntax.layers {
        let Some(u) = understand(call, &mut errors) else { continue };
        let class = u.kind.class();
        let name = match u.name {
            Some((n, span)) => {
                if syn::parse_str::<Ident>(&n).is_err() || n.starts_with("__") {
                    errors.at(span, format!("layer name \"{n}\" must be a Rust identifier, e.g. \"hidden_1\""));
                    continue;
                }
                (n, span)
            }
            None => {
                let base = class.to_ascii_lowercase();
                let c = counts.entry(class).or_insert(0);
                let n = if *c == 0 { base.clone() } else { format!("{base}_{c}") };
                *c += 1;
                (n, call.ident.span())
            }
        };
        if let Some(_first) = taken.insert(name.0.clone(), name.1) {
            errors.at(name.1, format!("two layers are named `{}`: layer names must be unique", name.0));
            continue;
        }
        let inputs = if nodes.is_empty() { vec![] } else { vec![nodes.len() - 1] };
        nodes.push(Node {
            name: Ident::new(&name.0, call.ident.span()),
            kind: u.kind,
            tokens: call.tokens.clone(),
            inputs,
            input_shape: vec![],
            output_shape: vec![],
        });
    }
    errors.finish()?;
    Ok(Model { attrs: syntax.attrs, vis: syntax.vis, name: syntax.name, input_shape, nodes })
}
