//! `sequential!` front end.
//!
//! ```text
//! sequential! {
//!     #[attributes] and /// docs
//!     VIS struct NAME<const H: usize, ..>?: [d1, d2?, d3?] {   // or NAME: Input([d1, ..], dtype = i32)
//!         LAYER, LAYER(args), ...          // trailing comma optional
//!     }
//! }
//! A size parameter (see `sizes.rs`) is written where a number goes: `Dense(H)`, `[H]`.
//! LAYER := Dense | Flatten | Reshape | Activation | Custom  (see macros/src/layers/)
//!        | Lambda(|x| MATH)                  // Keras' Lambda: math on the running value
//! args  := value | key = value, ...        // value: int, -int, "str", ident, true/false, [ints]
//! ```

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Visibility, braced};

use super::{LayerCall, Namer, understand};
use crate::errors::Errors;
use crate::ir::{LayerDef, Model, Node, Op};

/// The raw syntax, before layers are understood.
pub struct Syntax {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    /// After the colon: what `Input(..)` holds (`[784]`, or `[100], dtype = i32`), and all of it.
    input: Option<(TokenStream, TokenStream)>,
    layers: Vec<Item>,
}

/// One entry of the list: a layer, or Keras' `Lambda` written as a closure over math.
enum Item {
    Layer(LayerCall),
    Lambda { param: Ident, body: syn::Expr },
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let fork = input.fork();
        let is_lambda = fork.parse::<Ident>().is_ok_and(|i| i == "Lambda")
            && fork.peek(syn::token::Paren)
            && fork.parse::<TokenTree>().is_ok_and(|t| matches!(&t, TokenTree::Group(g) if g.stream().into_iter().next().is_some_and(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == '|'))));
        if !is_lambda {
            return input.parse().map(Item::Layer);
        }
        input.parse::<Ident>()?;
        let TokenTree::Group(g) = input.parse::<TokenTree>()? else { unreachable!("peeked a group") };
        let closure: syn::ExprClosure = syn::parse2(g.stream())?;
        let param = match closure.inputs.iter().collect::<Vec<_>>()[..] {
            [syn::Pat::Ident(p)] => p.ident.clone(),
            _ => return Err(syn::Error::new(g.span(), "Lambda takes a closure of one value: Lambda(|x| 2.0 * x)")),
        };
        Ok(Item::Lambda { param, body: *closure.body })
    }
}

impl Parse for Syntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let input_shape = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            // `[784]`, or `Input([100], dtype = i32)` as in Keras' `Sequential([Input(..), ..])`.
            let mut whole = TokenStream::new();
            while !input.is_empty() && !input.peek(syn::token::Brace) {
                whole.extend([input.parse::<TokenTree>()?]);
            }
            let mut trees = whole.clone().into_iter();
            let decl = match (trees.next(), trees.next(), trees.next()) {
                (Some(TokenTree::Ident(i)), Some(TokenTree::Group(g)), None)
                    if i == "Input" && g.delimiter() == Delimiter::Parenthesis =>
                {
                    g.stream()
                }
                _ => whole.clone(),
            };
            Some((decl, whole))
        } else {
            None
        };
        let content;
        braced!(content in input);
        let layers = Punctuated::<Item, Token![,]>::parse_terminated(&content)?.into_iter().collect();
        Ok(Syntax { attrs, vis, name, input: input_shape, layers })
    }
}

impl Syntax {
    /// The model's name and visibility, for the fallback emitted beside errors.
    pub fn header(&self) -> (Ident, Visibility) {
        (self.name.clone(), self.vis.clone())
    }
}

/// Understands the layers, names them as Keras does (`dense`, `dense_1`, ...) and chains them
/// from the one input.
pub fn lower(syntax: Syntax) -> Result<Model, syn::Error> {
    let mut errors = Errors::default();
    let mut input_shape = Vec::new();
    let mut int_input = false;
    let mut text = None;
    let mut items = &syntax.layers[..];
    match &syntax.input {
        None => errors.at(
            syntax.name.span(),
            format!(
                "sequential! needs the input shape after the name, e.g. `struct {}: [784] {{ .. }}` (the batch dimension is left out)",
                syntax.name
            ),
        ),
        Some((decl, _)) if super::text::is_text_input(decl, &mut errors) => {
            // The TextVectorization first, outside the graph: the graph reads its token ids.
            let head = match items.first() {
                Some(Item::Layer(call)) => super::text::head(call, &mut errors),
                _ => {
                    errors.at(syntax.name.span(), "a text input is read by a TextVectorization(..) layer first");
                    None
                }
            };
            if let Some(h) = head {
                (input_shape, int_input, text) = (vec![h.length], h.ids, Some((0, h.options, h.class)));
            }
            items = items.get(1..).unwrap_or_default();
        }
        Some((decl, whole)) => {
            if let Some((d, int)) = crate::parse::input_args(decl.clone(), whole, &mut errors) {
                input_shape = d;
                int_input = int;
            }
        }
    }
    if items.is_empty() {
        errors.at(syntax.name.span(), "a sequential model needs at least one layer");
    }
    let mut nodes = vec![Node {
        op: Op::Input(0),
        inputs: vec![],
        tokens: TokenStream::new(),
        output_shape: input_shape,
        input_shapes: vec![],
        dims: None,
    }];
    let mut layers: Vec<LayerDef> = Vec::new();
    let mut namer = Namer::default();
    for item in items {
        let call = match item {
            Item::Layer(call) => call,
            Item::Lambda { param, body } => {
                let input = nodes.len() - 1;
                let parts = super::functional::Parts {
                    layers: &mut layers,
                    nodes: &mut nodes,
                    namer: &mut namer,
                    errors: &mut errors,
                };
                if let Some(out) = super::functional::lower_math(param, body, input, parts) {
                    // The lambda's value continues the chain (a copy's node when it is its input).
                    if out != nodes.len() - 1 {
                        errors
                            .at(param.span(), "a Lambda computes a new value from its input, e.g. Lambda(|x| 2.0 * x)");
                    }
                }
                continue;
            }
        };
        let Some(u) = understand(call, false, &mut errors) else { continue };
        let Some(name) = namer.name(&u.kind.auto_name(), u.name, call.ident.span(), &mut errors) else { continue };
        let node = nodes.len();
        layers.push(LayerDef { name, kind: u.kind, tokens: call.tokens.clone(), apps: vec![node], place: None });
        nodes.push(Node {
            op: Op::Apply(layers.len() - 1),
            inputs: vec![node - 1],
            tokens: call.tokens.clone(),
            output_shape: vec![],
            input_shapes: vec![],
            dims: None,
        });
    }
    errors.finish()?;
    let outputs = vec![nodes.len() - 1];
    Ok(Model {
        attrs: syntax.attrs,
        vis: syntax.vis,
        name: syntax.name,
        layers,
        nodes,
        inputs: vec![("input".to_string(), 0)],
        int_inputs: vec![int_input],
        text,
        outputs,
        functional: false,
        invocation: None,
        generics: syn::Generics::default(),
    })
}

/// The most dimensions a sample may have.
const MAX_RANK: usize = 6;

/// An input shape: 1 to 6 positive dimensions.
pub fn check_dims(dims: &[i64], span: Span, errors: &mut Errors) -> Option<Vec<usize>> {
    if dims.is_empty() || dims.len() > MAX_RANK {
        errors.at(
            span,
            format!(
                "the input shape must have 1 to {MAX_RANK} dimensions (the batch dimension is left out), got {}",
                dims.len()
            ),
        );
        None
    } else if let Some(d) = dims.iter().find(|d| **d <= 0) {
        errors.at(span, format!("input dimensions must be positive, got {d}"));
        None
    } else {
        Some(dims.iter().map(|d| *d as usize).collect())
    }
}
