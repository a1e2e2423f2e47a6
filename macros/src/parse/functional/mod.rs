//! `functional!` front end: Keras' Functional API as let-style bindings.
//!
//! ```text
//! functional! {
//!     #[attributes] and /// docs
//!     VIS struct NAME<const H: usize, ..>? {     // size parameters: see `sizes.rs`
//!         a = Input([32]);                      // a model input and its shape
//!         shared = Dense(32, activation = relu); // a layer definition (weights), applied below
//!         ha = shared(a);                       // applying a defined layer
//!         h = Dense(64)(ha);                    // defining and applying in one go
//!         m = Concatenate()([ha, h]);           // merge layers take a list
//!         out = Dense(1)(Add()([h, Dense(64)(m)])); // applications nest
//!         (s, h, c) = LSTM(8, return_sequences = true, return_state = true)(x); // several outputs; `_` skips one
//!         a = MultiHeadAttention(num_heads = 2, key_dim = 8)(s, s, attention_mask = m);
//!         Model([a], [out])                     // inputs, outputs: a name or a list
//!     }
//! }
//! ```

mod apply;
mod math;
mod shape_ops;
mod syntax;

use std::collections::{HashMap, HashSet};

use proc_macro2::{Group, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

pub use syntax::Syntax;

/// What a graph is built in: its layers and nodes, the layer names taken, the errors so far.
pub struct Parts<'a> {
    pub layers: &'a mut Vec<LayerDef>,
    pub nodes: &'a mut Vec<Node>,
    pub namer: &'a mut Namer,
    pub errors: &'a mut Errors,
}

/// Lowers math `body` on `param`, bound to node `input`, into `parts` (`sequential!`'s `Lambda`):
/// the node computing it.
pub fn lower_math(param: &Ident, body: &syn::Expr, input: usize, parts: Parts<'_>) -> Option<usize> {
    let mut lw = Lowering {
        errors: std::mem::take(parts.errors),
        namer: std::mem::take(parts.namer),
        layers: std::mem::take(parts.layers),
        nodes: std::mem::take(parts.nodes),
        env: HashMap::from([(param.to_string(), Binding::Value(input))]),
        defined: HashMap::new(),
        stmts: &[],
        inputs: vec![],
        int_nodes: vec![],
        text: TextInput::None,
    };
    let out = lw.math(body, 0);
    (*parts.errors, *parts.namer, *parts.layers, *parts.nodes) = (lw.errors, lw.namer, lw.layers, lw.nodes);
    out
}

use super::{LayerCall, Namer, Understood, understand};
use crate::errors::Errors;
use crate::ir::{LayerDef, Model, Node, Op};
use crate::layers::{Arity, KINDS, unknown_layer};
use syntax::{Expr, Stmt, parse_expr};

#[derive(Clone)]
enum Binding {
    Value(usize),
    /// A layer with weights, applied by name (shared when applied more than once).
    Layer(usize),
    /// A merge layer: no weights, so each application is a layer of its own.
    Merge(Understood, TokenStream),
    /// A statement that failed: its error is reported, and uses of it report nothing more.
    Failed,
}

struct Lowering<'s> {
    errors: Errors,
    namer: Namer,
    layers: Vec<LayerDef>,
    nodes: Vec<Node>,
    env: HashMap<String, Binding>,
    /// Statement index of every bound name.
    defined: HashMap<String, usize>,
    stmts: &'s [Stmt],
    /// Input nodes in declaration order, with the statement that declared them.
    inputs: Vec<(String, usize, Ident)>,
    /// Input nodes declared `dtype = i32`.
    int_nodes: Vec<usize>,
    /// The text input (`Input([], dtype = string)`), before and after its TextVectorization.
    text: TextInput,
}

/// A `functional!` model's one text input.
enum TextInput {
    None,
    /// Declared (its node and name), not yet read by a TextVectorization.
    Declared(usize, Ident),
    /// Read by its first layer: its node, now the numbers that layer gives, the runtime
    /// `StringInput` and its class.
    Vectorized(usize, TokenStream, &'static str),
}

fn is_class(id: &Ident) -> bool {
    KINDS.iter().any(|k| id == k.class)
}

impl Lowering<'_> {
    /// The error for a name that is not bound (yet) at statement `at`.
    fn unbound(&mut self, id: &Ident, at: usize, role: &str) {
        let name = id.to_string();
        match self.defined.get(&name) {
            Some(&j) if j >= at => {
                if self.depends_on(j, &self.stmts[at].var.to_string()) {
                    let cur = &self.stmts[at].var;
                    self.errors.at(id.span(), format!("cycle: `{cur}` uses `{name}`, which is computed from `{cur}`"));
                } else {
                    self.errors.at(
                        id.span(),
                        format!("{role}`{name}` is used before it is defined: move its definition above this line"),
                    );
                }
            }
            _ if id.to_string().starts_with(|c: char| c.is_ascii_uppercase()) => {
                self.errors.at(id.span(), unknown_layer(&name, true))
            }
            _ => {
                // Names as written: a name bound again is also bound under a name of kiln's.
                let known: Vec<&str> =
                    self.defined.keys().map(|k| k.as_str()).filter(|k| !k.starts_with("__")).collect();
                let hint = crate::errors::suggestion(&name, &known);
                self.errors.at(id.span(), format!("undefined name `{name}`{hint}"))
            }
        }
    }

    /// Whether statement `j` reads `target`, directly or through other statements.
    fn depends_on(&self, j: usize, target: &str) -> bool {
        let mut seen = HashSet::new();
        let mut todo = vec![j];
        while let Some(s) = todo.pop() {
            if !seen.insert(s) {
                continue;
            }
            let mut names = Vec::new();
            self.stmts[s].rhs.names(&mut names);
            for n in names {
                let n = n.to_string();
                if n == target {
                    return true;
                }
                if let Some(&k) = self.defined.get(&n) {
                    todo.push(k);
                }
            }
        }
        false
    }

    fn define(&mut self, callee: &Ident, args: Option<&Group>) -> Option<(Understood, TokenStream)> {
        let tokens = match args {
            Some(g) => quote!(#callee #g),
            None => callee.to_token_stream(),
        };
        let call: LayerCall = match syn::parse2(tokens.clone()) {
            Ok(c) => c,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        understand(&call, true, &mut self.errors).map(|u| (u, tokens))
    }

    fn new_layer(&mut self, u: Understood, tokens: TokenStream, at: Span) -> Option<usize> {
        let name = self.namer.name(&u.kind.auto_name(), u.name, at, &mut self.errors)?;
        self.layers.push(LayerDef { name, kind: u.kind, tokens, apps: vec![], place: None });
        Some(self.layers.len() - 1)
    }

    /// Evaluates an expression that must be one value.
    /// `ids = TextVectorization(..)(text)`: the text input becomes the token ids it gives.
    fn text_vectorization(&mut self, groups: &[proc_macro2::Group], tokens: &TokenStream) -> Option<Binding> {
        let usage = "ids = TextVectorization(max_tokens = 20000, output_sequence_length = 200)(text), text an Input([], dtype = string)";
        let read = match groups {
            [args, x] => syn::parse2::<syn::Ident>(x.stream()).ok().map(|x| (args, x)),
            _ => None,
        };
        let Some((args, x)) = read else {
            self.errors.over(tokens, format!("TextVectorization is applied to the text input: {usage}"));
            return None;
        };
        let node = match (&self.text, self.env.get(&x.to_string())) {
            (TextInput::Declared(n, _), Some(Binding::Value(v))) if n == v => *n,
            _ => {
                self.errors.at(x.span(), format!("TextVectorization reads a text input: {usage}"));
                return None;
            }
        };
        let callee = tokens.clone().into_iter().next();
        let call: LayerCall = syn::parse2(quote::quote!(#callee #args)).ok()?;
        let head = super::text::head(&call, &mut self.errors)?;
        self.nodes[node].output_shape = vec![head.length];
        if head.ids {
            self.int_nodes.push(node);
        }
        self.text = TextInput::Vectorized(node, head.options, head.class);
        Some(Binding::Value(node))
    }

    fn value(&mut self, e: &Expr, at: usize) -> Option<usize> {
        match e {
            Expr::Name(id) => match self.env.get(&id.to_string()).cloned() {
                Some(Binding::Value(n)) if matches!(self.text, TextInput::Declared(t, _) if t == n) => {
                    self.errors.at(
                        id.span(),
                        format!("`{id}` holds strings: read it with a TextVectorization first, e.g. ids = TextVectorization(max_tokens = 20000, output_sequence_length = 200)({id})"),
                    );
                    // Reported: not also "never read" at the end.
                    self.text = TextInput::None;
                    None
                }
                Some(Binding::Value(n)) => Some(n),
                Some(Binding::Failed) => None,
                Some(_) => {
                    self.errors.at(id.span(), format!("`{id}` is a layer, not a value: apply it, e.g. `{id}(x)`"));
                    None
                }
                None => {
                    self.unbound(id, at, "");
                    None
                }
            },
            Expr::List(_, t) => {
                self.errors.over(t, "a list of values can only be the input of a merge layer, e.g. Add()([a, b])");
                None
            }
            Expr::Math(e) => self.math(e, at),
            Expr::Call { callee, groups, tokens } => {
                if callee == "Input" {
                    self.errors
                        .over(tokens, "Input(..) declares a model input: write it on its own line, `x = Input([..]);`");
                    return None;
                }
                if is_class(callee) {
                    let (def, app) = match groups.len() {
                        2 => (Some(&groups[0]), &groups[1]),
                        _ => {
                            self.errors.over(
                                tokens,
                                format!("`{callee}(..)` defines a layer; apply it to a value: `{callee}(..)(x)`"),
                            );
                            return None;
                        }
                    };
                    let (u, def_tokens) = self.define(callee, def)?;
                    let layer = self.new_layer(u, def_tokens, callee.span())?;
                    return self.apply(layer, app, tokens.clone(), at);
                }
                match self.env.get(&callee.to_string()).cloned() {
                    Some(Binding::Layer(l)) if groups.len() == 1 => self.apply(l, &groups[0], tokens.clone(), at),
                    Some(Binding::Merge(u, t)) if groups.len() == 1 => {
                        let layer = self.new_layer(u, t, callee.span())?;
                        self.apply(layer, &groups[0], tokens.clone(), at)
                    }
                    Some(Binding::Value(_)) => {
                        self.errors.at(callee.span(), format!("`{callee}` is a value, not a layer"));
                        None
                    }
                    Some(Binding::Failed) => None,
                    Some(_) => {
                        self.errors.over(tokens, format!("apply `{callee}` to one argument: `{callee}(x)`"));
                        None
                    }
                    None => {
                        self.unbound(callee, at, "layer ");
                        None
                    }
                }
            }
        }
    }

    fn statement(&mut self, i: usize) {
        let stmt = &self.stmts[i];
        let var = stmt.var.to_string();
        if let Some(parts) = &stmt.parts {
            match self.value(&stmt.rhs, i) {
                Some(node) => self.bind_parts(i, node),
                // A failed tuple statement: its names report nothing more.
                None => parts.iter().flatten().for_each(|p| drop(self.env.insert(p.to_string(), Binding::Failed))),
            }
            return;
        }
        let binding = match &stmt.rhs {
            Expr::Call { callee, groups, tokens }
                if ["TextVectorization", "StringLookup", "Hashing"].iter().any(|c| callee == c) =>
            {
                self.text_vectorization(groups, tokens)
            }
            Expr::Call { callee, groups, tokens }
                if callee == "Input"
                    && groups.len() == 1
                    && super::text::is_text_input(&groups[0].stream(), &mut self.errors) =>
            {
                if !matches!(self.text, TextInput::None) {
                    self.errors.over(tokens, "a functional! model reads one text input (one TextVectorization)");
                }
                let node = self.nodes.len();
                // Its shape is the token ids' once a TextVectorization reads it.
                self.nodes.push(Node {
                    op: Op::Input(self.inputs.len()),
                    inputs: vec![],
                    tokens: tokens.clone(),
                    output_shape: vec![1],
                    input_shapes: vec![],
                    dims: None,
                });
                self.inputs.push((var.clone(), node, stmt.var.clone()));
                self.text = TextInput::Declared(node, stmt.var.clone());
                Some(Binding::Value(node))
            }
            Expr::Call { callee, groups, tokens } if callee == "Input" => match &groups[..] {
                [g] => crate::parse::input_args(g.stream(), tokens, &mut self.errors).map(|(shape, int)| {
                    let node = self.nodes.len();
                    self.nodes.push(Node {
                        op: Op::Input(self.inputs.len()),
                        inputs: vec![],
                        tokens: tokens.clone(),
                        output_shape: shape,
                        input_shapes: vec![],
                        dims: None,
                    });
                    if int {
                        self.int_nodes.push(node);
                    }
                    self.inputs.push((var.clone(), node, stmt.var.clone()));
                    Binding::Value(node)
                }),
                _ => {
                    self.errors.over(tokens, "Input takes the shape of one sample, e.g. Input([32])");
                    None
                }
            },
            // A definition: `Dense(..)` or `Flatten`, bound for later application.
            Expr::Call { callee, groups, .. } if is_class(callee) && groups.len() == 1 => {
                self.define(callee, Some(&groups[0])).and_then(|(u, t)| {
                    if u.kind.arity() != Arity::One && !u.kind.call_args() {
                        Some(Binding::Merge(u, t))
                    } else {
                        self.new_layer(u, t, callee.span()).map(Binding::Layer)
                    }
                })
            }
            Expr::Name(callee) if is_class(callee) => self.define(callee, None).and_then(|(u, t)| {
                if u.kind.arity() != Arity::One && !u.kind.call_args() {
                    Some(Binding::Merge(u, t))
                } else {
                    self.new_layer(u, t, callee.span()).map(Binding::Layer)
                }
            }),
            rhs => match self.value(rhs, i) {
                Some(node) if matches!(rhs, Expr::Math(_)) => {
                    // Math's last op is named after the value it computes (`kl`), so the summary
                    // and the output names read as the statements do.
                    if let Op::Apply(l) = self.nodes[node].op
                        && self.layers[l].apps.len() == 1
                        && self.namer.free(&var)
                        && !var.starts_with("__")
                        && let Some(name) =
                            self.namer.name("", Some((var.clone(), stmt.var.span())), stmt.var.span(), &mut self.errors)
                    {
                        self.layers[l].name = name;
                    }
                    Some(Binding::Value(node))
                }
                Some(node) => {
                    if let Some(names) = self.layers_of(node).and_then(|l| l.kind.outputs()) {
                        let class = self.layers_of(node).map_or("", |l| l.kind.class());
                        self.errors.at(stmt.var.span(), crate::shape::several_values(class, names));
                        None
                    } else {
                        Some(Binding::Value(node))
                    }
                }
                None => None,
            },
        };
        self.env.insert(var, binding.unwrap_or(Binding::Failed));
    }

    fn layers_of(&self, node: usize) -> Option<&LayerDef> {
        match self.nodes[node].op {
            Op::Apply(l) => Some(&self.layers[l]),
            Op::Input(_) => None,
        }
    }

    /// `(out, h, c) = LSTM(.., return_state = true)(x)`: a part reading each named output.
    fn bind_parts(&mut self, i: usize, node: usize) {
        let stmt = &self.stmts[i];
        let parts = stmt.parts.clone().unwrap_or_default();
        let Some(owner) = self.layers_of(node).map(|l| (l.kind.clone(), l.name.clone())) else {
            self.errors.at(stmt.var.span(), "an input is one value: bind it to one name");
            return;
        };
        let (kind, name) = owner;
        let Some(names) = kind.outputs() else {
            self.errors.at(stmt.var.span(), format!("{} gives one value: bind it to one name, `x = ..`", kind.class()));
            parts.iter().flatten().for_each(|p| drop(self.env.insert(p.to_string(), Binding::Failed)));
            return;
        };
        if names.len() != parts.len() {
            self.errors.at(
                stmt.var.span(),
                format!(
                    "{} with return_state = true gives {} values ({}), got {} names: write `_` for those you do not use",
                    kind.class(),
                    names.len(),
                    names.join(", "),
                    parts.len()
                ),
            );
            parts.iter().flatten().for_each(|p| drop(self.env.insert(p.to_string(), Binding::Failed)));
            return;
        }
        // Which application of the layer this is (a shared layer's every use has its parts).
        let app = match self.nodes[node].op {
            Op::Apply(l) => self.layers[l].apps.iter().position(|&a| a == node).unwrap_or(0),
            Op::Input(_) => 0,
        };
        for (k, p) in parts.iter().enumerate() {
            let Some(p) = p else { continue };
            let spec = crate::layers::part(kind.clone(), k);
            let layer_name = quote::format_ident!("__kiln_part_{}_{}_{}", name, app, k);
            self.layers.push(LayerDef {
                name: layer_name,
                kind: spec,
                tokens: p.to_token_stream(),
                apps: vec![],
                place: None,
            });
            let part_node = self.nodes.len();
            self.nodes.push(Node {
                op: Op::Apply(self.layers.len() - 1),
                inputs: vec![node],
                tokens: p.to_token_stream(),
                output_shape: vec![],
                input_shapes: vec![],
                dims: None,
            });
            let l = self.layers.len() - 1;
            self.layers[l].apps.push(part_node);
            self.env.insert(p.to_string(), Binding::Value(part_node));
        }
    }
}

/// Understands the statements and the final `Model(..)` into the graph IR.
pub fn lower(syntax: Syntax) -> Result<Model, syn::Error> {
    let mut lw = Lowering {
        errors: Errors::default(),
        namer: Namer::default(),
        layers: vec![],
        nodes: vec![],
        env: HashMap::new(),
        defined: HashMap::new(),
        stmts: &syntax.stmts,
        inputs: vec![],
        int_nodes: vec![],
        text: TextInput::None,
    };
    for (i, s) in syntax.stmts.iter().enumerate() {
        let names = match &s.parts {
            Some(parts) => parts.iter().flatten().cloned().collect(),
            None => vec![s.var.clone()],
        };
        for var in names {
            if let Some(first) = lw.defined.insert(var.to_string(), i) {
                lw.defined.insert(var.to_string(), first);
                lw.errors.at(var.span(), format!("`{var}` is defined twice"));
            }
        }
    }
    for i in 0..syntax.stmts.len() {
        lw.statement(i);
    }
    let Some((kw, group)) = &syntax.model else {
        lw.errors
            .at(syntax.name.span(), "functional! needs a final `Model(inputs, outputs)` naming the inputs and outputs");
        return Err(lw.errors.finish().err().unwrap_or_else(|| syn::Error::new(Span::call_site(), "no Model(..)")));
    };
    let io =
        (|s: ParseStream| Punctuated::<Expr, Token![,]>::parse_terminated_with(s, parse_expr)).parse2(group.stream());
    let io: Vec<Expr> = match io {
        Ok(p) if p.len() == 2 => p.into_iter().collect(),
        Ok(_) => {
            lw.errors.at(
                kw.span(),
                "Model takes the inputs and the outputs: `Model(inputs, outputs)` or `Model([a, b], [c, d])`",
            );
            return Err(lw.errors.finish().err().unwrap_or_else(|| syn::Error::new(kw.span(), "bad Model")));
        }
        Err(e) => {
            lw.errors.push(e);
            return Err(lw.errors.finish().err().unwrap_or_else(|| syn::Error::new(kw.span(), "bad Model")));
        }
    };
    // Model(..) names values bound above; an expression in its place is an error at it.
    let mut names = |e: &Expr, what: &str| -> Vec<Ident> {
        let items = match e {
            Expr::List(items, _) => items.iter().collect(),
            e => vec![e],
        };
        let mut found = Vec::new();
        for item in items {
            match item {
                Expr::Name(n) => found.push(n.clone()),
                other => {
                    use syn::spanned::Spanned;
                    let why = format!(
                        "Model(..) lists the {what} by name: bind this to a name above (`out = ..;`) and list \
                         that name here"
                    );
                    lw.errors.at(other.tokens().span(), why);
                }
            }
        }
        found
    };
    let (input_names, output_names) = (names(&io[0], "inputs"), names(&io[1], "outputs"));
    let end = syntax.stmts.len();
    // Inputs, in Model(..)'s order, which is the order fit takes them in.
    let mut inputs = Vec::new();
    for id in input_names {
        match lw.inputs.iter().find(|(n, _, _)| id == n) {
            Some((n, node, _)) => inputs.push((n.clone(), *node)),
            None if lw.env.contains_key(&id.to_string()) => lw
                .errors
                .at(id.span(), format!("`{id}` is not an Input: Model's first argument lists the model's inputs")),
            None => lw.unbound(&id, end, ""),
        }
    }
    for (name, _, id) in &lw.inputs {
        if !inputs.iter().any(|(n, _)| n == name) {
            lw.errors.at(id.span(), format!("input `{name}` is not listed in Model(..)'s inputs"));
        }
    }
    let mut outputs = Vec::new();
    for id in output_names {
        match lw.env.get(&id.to_string()) {
            Some(Binding::Value(n)) => outputs.push(*n),
            Some(Binding::Failed) => {}
            Some(_) => lw.errors.at(id.span(), format!("`{id}` is a layer, not a value: outputs are computed values")),
            None => lw.unbound(&id, end, ""),
        }
    }
    if (inputs.is_empty() || outputs.is_empty()) && lw.errors.is_empty() {
        lw.errors.at(kw.span(), "Model needs at least one input and one output");
    }
    for (i, (_, node)) in inputs.iter().enumerate() {
        lw.nodes[*node].op = Op::Input(i);
    }
    let text = match std::mem::replace(&mut lw.text, TextInput::None) {
        TextInput::None => None,
        TextInput::Declared(_, id) => {
            lw.errors.at(id.span(), format!("text input `{id}` is never read: apply a TextVectorization(..) to it"));
            None
        }
        TextInput::Vectorized(node, opts, class) => {
            inputs.iter().position(|(_, n)| *n == node).map(|i| (i, opts, class))
        }
    };
    lw.errors.finish()?;
    Ok(Model {
        attrs: syntax.attrs,
        vis: syntax.vis,
        name: syntax.name,
        layers: lw.layers,
        nodes: lw.nodes,
        int_inputs: inputs.iter().map(|(_, node)| lw.int_nodes.contains(node)).collect(),
        text,
        inputs,
        outputs,
        functional: true,
        invocation: None,
        generics: syn::Generics::default(),
    })
}
