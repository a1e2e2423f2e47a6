//! The struct `sequential!` and `functional!` generate, and the trait impls every model style
//! has (`Model`; `Layer` and `Shaped` so a model can be part of another).

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::Gen;
use crate::ir::{LayerDef, Model};
use crate::layers::rt;

/// The struct, constructors and trait impls of a `sequential!` / `functional!` model.
// Long because most of it is one `quote!` template of the generated code, read top to bottom.
pub fn expand(model: &Model) -> TokenStream {
    let g = Gen { m: model, state: quote!(self) };
    let rt = rt();
    let Model { attrs, vis, name, .. } = model;
    let computing: Vec<&LayerDef> = model.layers.iter().filter(|l| !l.kind.is_view()).collect();

    let fields = computing.iter().map(|l| {
        let (f, ty) = (&l.name, g.ty(l));
        quote!(pub #f: #ty,)
    });
    let inits = computing.iter().map(|l| {
        let (f, c) = (&l.name, g.constructor(l));
        quote!(#f: #c,)
    });
    let checks = computing.iter().map(|l| {
        let first = &model.nodes[l.apps[0]];
        l.kind.const_checks(&format!("layer `{}`", l.name), &first.input_shapes, &first.output_shape, &l.tokens)
    });
    let (bufs, buf_tys): (Vec<Ident>, Vec<TokenStream>) = g.extra_bufs().into_iter().unzip();
    let accumulators = g.accumulators();
    let passes = g.passes(&quote!(), &quote!());
    let names: Vec<&Ident> = computing.iter().map(|l| &l.name).collect();
    let prefixes = names.iter().map(|f| f.to_string());

    // A model reading raw text keeps its TextVectorization in its state.
    let set_strings = model.text.as_ref().map(|(_, s, _)| quote!(::kiln::__private::set_strings(&mut model, #s);));
    let text_methods = model.text.as_ref().map(|(i, _, _)| crate::parse::text::methods(name, model.inputs.len(), *i));
    let (in_ports, out_ports, out_acts) = ports(&g);
    let infos = layer_infos(model);
    let act0 = out_acts.first().cloned().unwrap_or_default();
    let impls = impls(
        &g,
        &ImplParts {
            in_ports,
            out_ports,
            out_acts,
            prediction: g.prediction(),
            layers: quote!(&[#(#infos)*]),
            prelude: quote!(),
            train_state: quote!(self.__kiln_state),
            added_losses: vec![],
            generics: model.generics.clone(),
        },
    );
    let params = model.layers.iter().map(|l| param_count(model, l));
    let as_field = shaped_impl(model, &act0, &quote!(0 #(+ #params)*), &model.generics).map(|shaped| {
        let (ig, tg, wg) = model.generics.split_for_impl();
        quote! {
            #shaped
            impl #ig #rt::Init for #name #tg #wg {
                fn init(rng: &mut #rt::StdRng) -> Self {
                    Self::with_seed(#rt::RngCore::next_u64(rng))
                }
            }
        }
    });

    // A model that names nothing from the user's scope is generated in a module of its own and
    // imported under its name: a second model of the same name is then one error (the two
    // imports), not one per generated impl.
    let wrap = model.invocation.filter(|_| !model.layers.iter().any(|l| l.kind.user_scope()));
    let struct_vis = if wrap.is_some() { quote!(pub) } else { quote!(#vis) };
    let consts = crate::ship::constant_items(model);
    let decl = &model.generics;
    let (ig, tg, wg) = model.generics.split_for_impl();
    // Size parameters are checked when a model is built: each must be positive.
    let (sizes, force) = if model.generics.params.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        let names = model.generics.const_params().map(|c| &c.ident);
        (
            quote! {
                #[doc(hidden)]
                const __KILN_SIZES: () = ::core::assert!(true #(&& #names > 0)*, "a model's size parameters must be positive");
            },
            quote!(let () = Self::__KILN_SIZES;),
        )
    };
    let body = quote! {
        #(#attrs)*
        #[derive(Clone, Debug)]
        #struct_vis struct #name #decl {
            #(#fields)*
            #(#bufs: #buf_tys,)*
            #(#accumulators: ::std::vec::Vec<f32>,)*
            __kiln_state: #rt::TrainState,
        }

        #(#checks)*

        impl #ig #name #tg #wg {
            #consts
            #sizes

            /// A new model, initialised as Keras does, from kiln's default seed.
            pub fn new() -> Self {
                Self::with_seed(#rt::DEFAULT_SEED)
            }

            /// A new model whose initial weights, shuffling order and other random choices all
            /// follow from `seed`.
            pub fn with_seed(seed: u64) -> Self {
                #force
                let mut rng = <#rt::StdRng as #rt::SeedableRng>::seed_from_u64(seed);
                let _ = &mut rng;
                let mut model = Self {
                    #(#inits)*
                    #(#bufs: ::core::default::Default::default(),)*
                    #(#accumulators: ::std::vec::Vec::new(),)*
                    __kiln_state: #rt::TrainState::new(seed),
                };
                #set_strings
                model
            }

            #passes

            fn __kiln_visit(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                #(#rt::Layer::visit_params(&self.#names, &mut |p, v| f(&::std::format!("{}.{}", #prefixes, p), v));)*
            }

            fn __kiln_visit_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                #(#rt::Layer::visit_params_mut(&mut self.#names, f);)*
            }

            fn __kiln_penalty(&self) -> f64 {
                0.0 #(+ #rt::Layer::penalty(&self.#names))*
            }
        }

        impl #ig ::core::default::Default for #name #tg #wg {
            fn default() -> Self {
                Self::new()
            }
        }

        #impls
        #as_field
        #text_methods
    };
    wrapped(body, wrap, model)
}

/// The `Port`s of a `sequential!` / `functional!` model's inputs and outputs, and per output the
/// activation its loss may fuse with.
fn ports(g: &Gen<'_>) -> (Vec<TokenStream>, Vec<TokenStream>, Vec<TokenStream>) {
    let (rt, model) = (rt(), g.m);
    let shape = |s: &[usize]| quote!(&[#(#s),*]);
    let in_ports: Vec<TokenStream> = model
        .inputs
        .iter()
        .enumerate()
        .map(|(k, (n, node))| {
            let d = g.dims(*node);
            let s = quote!(&[#(#d),*]);
            let dtype = dtype(model, k);
            quote!(#rt::Port { name: #n, shape: #s, dtype: #dtype })
        })
        .collect();
    let out_ports: Vec<TokenStream> = model
        .outputs
        .iter()
        .map(|&o| {
            let (n, s) = (model.output_name(o), shape(&model.nodes[o].output_shape));
            quote!(#rt::Port { name: #n, shape: #s, dtype: #rt::DType::F32 })
        })
        .collect();
    let out_acts: Vec<TokenStream> = model
        .outputs
        .iter()
        .map(|&o| {
            let a = if g.fusable_output(model.resolve(o)).is_some() { quote!(Softmax) } else { quote!(Linear) };
            quote!(#rt::ActKind::#a)
        })
        .collect();
    (in_ports, out_ports, out_acts)
}

/// The module a model's code is generated in, where it has one (see [`wrapped`]).
fn module(model: &Model) -> Option<proc_macro2::Ident> {
    let wrap = model.invocation.filter(|_| !model.layers.iter().any(|l| l.kind.user_scope()));
    wrap.map(|id| quote::format_ident!("__kiln_model_{}_{:016x}", model.name, id))
}

/// The path of the model's struct from where the macro expands: code generated beside the model
/// (`impl #path { .. }`) names the struct of this invocation, not a second model of its name.
pub fn type_path(model: &Model) -> TokenStream {
    let name = &model.name;
    match module(model) {
        Some(m) => quote!(#m::#name),
        None => quote!(#name),
    }
}

/// The model's code in a module of its own, imported under the model's name, where `wrap` (the
/// invocation's number) is given; as it is otherwise.
fn wrapped(body: TokenStream, wrap: Option<u64>, model: &Model) -> TokenStream {
    let Model { vis, name, .. } = model;
    match wrap.and(module(model)) {
        Some(m) => {
            let source = syn::Ident::new(&name.to_string(), proc_macro2::Span::call_site());
            quote! {
                #[doc(hidden)]
                #[allow(non_snake_case)]
                mod #m {
                    #body
                }
                // An import, not a type alias: rustc names an imported type by its import in
                // every error (an alias would show the module). The path's last segment spans
                // the invocation, so that for two models of one name rustc does not suggest
                // renaming the import in the user's code (`pub struct Net as OtherNet`).
                #[allow(unused_imports)]
                #vis use #m::#source as #name;
            }
        }
        None => body,
    }
}

/// What differs between the model styles in [`impls`].
pub struct ImplParts {
    /// `Port` values of the inputs and outputs.
    pub in_ports: Vec<TokenStream>,
    pub out_ports: Vec<TokenStream>,
    /// Per output, the `ActKind` its loss may fuse with.
    pub out_acts: Vec<TokenStream>,
    /// `Model::Prediction`.
    pub prediction: TokenStream,
    /// The `LAYERS` table expression.
    pub layers: TokenStream,
    /// Statements run first in `&self` methods (bindings of indexed fields).
    pub prelude: TokenStream,
    /// Where the `TrainState` lives.
    pub train_state: TokenStream,
    /// The terms `call` adds to the loss: each one's name and the `AddLoss` layer's place.
    pub added_losses: Vec<(String, TokenStream)>,
    /// The model's size parameters, which every impl takes (none for the model macros).
    pub generics: syn::Generics,
}

/// The trait impls every generated model has: `Model`, and for one output also `Layer`, so it
/// can be part of another model. They call the inherent `__kiln_*` functions.
// Long because it is one `quote!` template of the generated trait impls.
pub fn impls(g: &Gen<'_>, p: &ImplParts) -> TokenStream {
    let ImplParts { in_ports, out_ports, out_acts, prediction, layers, prelude, train_state, added_losses, generics } =
        p;
    let (ig, tg, wg) = generics.split_for_impl();
    let (rt, model, state) = (rt(), g.m, &g.state);
    // `add_loss` terms: their names, values, and their sum in the penalty (none: nothing emitted).
    let added = (!added_losses.is_empty()).then(|| {
        let names = added_losses.iter().map(|(n, _)| n);
        let arms = added_losses.iter().enumerate().map(|(i, (_, place))| quote!(#i => #rt::AddLoss::value(&#place),));
        quote! {
            const ADDED_LOSSES: &'static [&'static str] = &[#(#names),*];
            fn added_loss(&self, i: usize) -> f64 {
                match i {
                    #(#arms)*
                    _ => 0.0,
                }
            }
        }
    });
    let added_sum = added_losses.iter().map(|(_, place)| quote!(+ #rt::AddLoss::value(&#place)));
    let penalty = quote!(self.__kiln_penalty() #(#added_sum)*);
    let name = &model.name;
    let name_str = name.to_string();
    let (mut grads, mut finish) = (Vec::new(), Vec::new());
    for (i, (_, node)) in model.inputs.iter().enumerate() {
        let parts = g.contributions(*node);
        if parts.len() == 1 {
            let p = &parts[0];
            grads.push(quote!(#i => #p,));
        } else {
            let b = Gen::grad_buf(*node);
            grads.push(quote!(#i => &#state.#b[..],));
            finish.push(quote!(if input_grad { #rt::accumulate(&mut #state.#b, &[#(#parts),*]); }));
        }
    }
    let layer_impl = (model.outputs.len() == 1).then(|| {
        quote! {
            impl #ig #rt::Layer for #name #tg #wg {
                fn forward(&mut self, xs: &[&[f32]], ctx: &mut #rt::Ctx<'_>) {
                    self.__kiln_run(xs, ctx)
                }
                fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut #rt::Ctx<'_>, opts: #rt::BackwardOpts) {
                    self.__kiln_backward(xs, &[dy], &[opts.fused_output], opts.accumulate, opts.input_grad, ctx);
                    let input_grad = opts.input_grad;
                    #prelude
                    #(#finish)*
                }
                fn output(&self) -> &[f32] {
                    self.__kiln_output(0)
                }
                #[allow(unused_variables)]
                fn input_grad(&self, i: usize) -> &[f32] {
                    #prelude
                    match i {
                        #(#grads)*
                        _ => &[],
                    }
                }
                fn visit_params(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                    self.__kiln_visit(f)
                }
                fn penalty(&self) -> f64 {
                    #penalty
                }
                fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                    self.__kiln_visit_mut(f)
                }
            }

            // A model applied several times in another: one set of weights, activations per use.
            impl #ig #rt::Shareable for #name #tg #wg {
                type Buffers = #rt::ModelBuffers;
                fn buffers_mut(&mut self) -> &mut #rt::ModelBuffers {
                    #rt::Model::train_state_mut(self).own_buffers()
                }
                fn swap(&mut self, other: &mut #rt::ModelBuffers) {
                    #rt::swap_model_buffers(self, other)
                }
            }
        }
    });

    let memory = match crate::ship::memory(model) {
        Some((w, s)) => quote!(::core::option::Option::Some([#w, #s])),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        impl #ig #rt::Model for #name #tg #wg {
            const NAME: &'static str = #name_str;
            const INPUTS: &'static [#rt::Port] = &[#(#in_ports),*];
            const OUTPUTS: &'static [#rt::Port] = &[#(#out_ports),*];
            const OUTPUT_ACTIVATIONS: &'static [#rt::ActKind] = &[#(#out_acts),*];
            const LAYERS: &'static [#rt::LayerInfo] = #layers;
            const MEMORY: ::core::option::Option<[usize; 2]> = #memory;
            type Prediction = #prediction;
            fn run(&mut self, xs: &[&[f32]], ctx: &mut #rt::Ctx<'_>) {
                self.__kiln_run(xs, ctx)
            }
            fn output(&self, k: usize) -> &[f32] {
                self.__kiln_output(k)
            }
            fn run_backward(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut #rt::Ctx<'_>) {
                self.__kiln_backward(xs, dys, fused, false, false, ctx)
            }
            fn backward_to_inputs(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut #rt::Ctx<'_>) {
                self.__kiln_backward(xs, dys, fused, false, true, ctx);
                let input_grad = true;
                #prelude
                #(#finish)*
            }
            #[allow(unused_variables)]
            fn input_grad_of<'s>(&'s self, i: usize, dys: &[&'s [f32]]) -> &'s [f32] {
                #prelude
                match i {
                    #(#grads)*
                    _ => &[],
                }
            }
            fn visit_weights(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                self.__kiln_visit(f)
            }
            fn visit_layer_outputs(&self, f: &mut dyn FnMut(&str, &[f32])) {
                self.__kiln_visit_outputs(f)
            }
            fn activity_penalty(&self) -> f64 {
                #penalty
            }
            #added
            fn visit_weights_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                self.__kiln_visit_mut(f)
            }
            fn train_state(&self) -> &#rt::TrainState {
                &#train_state
            }
            fn train_state_mut(&mut self) -> &mut #rt::TrainState {
                &mut #train_state
            }
        }

        #layer_impl
    }
}

/// `Shaped` for a model with one output, so it can be a field of a `#[kiln::model]` struct: a
/// model that keeps every axis but the last has the last-axis rule (and is also a `Custom`
/// layer); any other states the one shape it reads and the one it writes (`MAP`), which a field
/// call checks. A model of several inputs states how many (`Custom(Pair, inputs = 2)`), the
/// rule being its first input's.
pub fn shaped_impl(
    model: &Model,
    act: &TokenStream,
    params: &TokenStream,
    generics: &syn::Generics,
) -> Option<TokenStream> {
    if model.inputs.is_empty() || model.outputs.len() != 1 {
        return None;
    }
    let required = model.inputs.len();
    // Shapes as dimensions in code: an output may be as wide as a size parameter.
    let dims =
        |n: usize| model.nodes[n].dims.clone().unwrap_or_else(|| crate::layers::lit(&model.nodes[n].output_shape));
    let (i, o) = (dims(model.inputs[0].1), dims(model.outputs[0]));
    if i.is_empty() || o.is_empty() {
        return None;
    }
    let text = |d: &[TokenStream]| d.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let map = if i.len() != o.len() || text(&i[..i.len() - 1]) != text(&o[..o.len() - 1]) {
        quote!(::core::option::Option::Some((&[#(#i),*], &[#(#o),*])))
    } else {
        quote!(::core::option::Option::None)
    };
    let (win, wout) = (i[i.len() - 1].clone(), o[o.len() - 1].clone());
    let rt = rt();
    let name = &model.name;
    let name_str = name.to_string();
    // Its weights by full name, when every layer states them (a subclassed model's fields do
    // not: their names would have to be joined at compile time).
    let mut weights = Vec::new();
    let mut complete = !model.layers.iter().any(|l| l.kind.field_key().is_some());
    for l in model.layers.iter().filter(|l| !l.kind.is_view()) {
        match l.kind.params(&model.nodes[l.apps[0]].input_shapes) {
            Some(ps) if complete => weights.extend(ps.into_iter().map(|(p, s)| {
                let n = format!("{}.{p}", l.name);
                quote!((#n, &[#(#s),*]))
            })),
            _ => complete = false,
        }
    }
    let ids = if model.int_inputs.first().copied().unwrap_or(false) {
        let below = model.id_bound(0);
        quote!(::core::option::Option::Some(#below))
    } else {
        quote!(::core::option::Option::None)
    };
    let param_shapes = if complete {
        quote!(::core::option::Option::Some(&[#(#weights),*]))
    } else {
        quote!(::core::option::Option::None)
    };
    let (ig, tg, wg) = generics.split_for_impl();
    Some(quote! {
        impl #ig #rt::Shaped for #name #tg #wg {
            const IN: usize = #win;
            const OUT: usize = #wout;
            const ACT: #rt::ActKind = #act;
            const KIND: &'static str = #name_str;
            const PARAMS: usize = #params;
            const LAYERS: &'static [#rt::LayerInfo] = <Self as #rt::Model>::LAYERS;
            const PARAM_SHAPES: ::core::option::Option<&'static [(&'static str, &'static [usize])]> = #param_shapes;
            const IDS: ::core::option::Option<usize> = #ids;
            const MAP: ::core::option::Option<(&'static [usize], &'static [usize])> = #map;
            const REQUIRED_INPUTS: usize = #required;
        }
    })
}

/// The summary's rows: input layers (functional models), then each layer once, with the output
/// shape of its first use, its parameter count, and the layers it reads (`dense[0][0]`).
fn layer_infos(model: &Model) -> Vec<TokenStream> {
    let rt = rt();
    let shape = |s: &[usize]| quote!(&[#(#s),*]);
    let mut rows = Vec::new();
    if model.functional {
        for (name, node) in &model.inputs {
            let s = shape(&model.nodes[*node].output_shape);
            rows.push(quote!(#rt::LayerInfo { name: #name, kind: "InputLayer", output_shape: #s, outputs: &[], params: 0, connected: &[], activation: "", nested: &[] },));
        }
    }
    if let Some((i, _, _)) = &model.text {
        // A text model's TextVectorization: strings in, the token ids the graph reads out.
        let s = shape(&model.nodes[model.inputs[*i].1].output_shape);
        let (name, kind) = model.text_class();
        rows.push(quote!(#rt::LayerInfo { name: #name, kind: #kind, output_shape: #s, outputs: &[], params: 0, connected: &[], activation: "", nested: &[] },));
    }
    // Layers in the order their first use computes (Keras lists a model's layers topologically).
    // The parts of a layer's several outputs show on the layer's row.
    let mut order: Vec<&LayerDef> = model.layers.iter().filter(|l| l.kind.part_index().is_none()).collect();
    order.sort_by_key(|l| l.apps[0]);
    for l in order {
        let first = &model.nodes[l.apps[0]];
        let (name, kind) = (l.name.to_string(), l.kind.summary_kind());
        let split = l.kind.split(&first.output_shape);
        let s = shape(&split[0]);
        let outputs = match l.kind.outputs() {
            Some(_) => split.iter().map(|p| shape(p)).collect(),
            None => vec![],
        };
        let params = param_count(model, l);
        let connected: Vec<String> = if model.functional {
            l.apps
                .iter()
                .flat_map(|&a| model.nodes[a].inputs.iter())
                .map(|&j| match model.layer_of(j) {
                    // One of a layer's several outputs: `lstm[0][1]`.
                    Some(part) if part.kind.part_index().is_some() => {
                        let owner = model.nodes[j].inputs[0];
                        let k = part.kind.part_index().unwrap_or(0);
                        format!("{}[{}][{k}]", model.output_name(owner), model.app_index(owner))
                    }
                    Some(src) => format!("{}[{}][0]", src.name, model.app_index(j)),
                    None => format!("{}[0][0]", model.output_name(j)),
                })
                .collect()
        } else {
            vec![]
        };
        let activation = l.kind.activation().unwrap_or("");
        rows.push(quote!(#rt::LayerInfo {
            name: #name, kind: #kind, output_shape: #s, outputs: &[#(#outputs),*], params: #params, connected: &[#(#connected),*], activation: #activation, nested: &[]
        },));
    }
    rows
}

/// Input `k`'s `DType`: `I32` with the bound of the Embeddings reading it, or `F32`.
pub fn dtype(model: &Model, k: usize) -> TokenStream {
    let rt = rt();
    if model.int_inputs.get(k).copied().unwrap_or(false) {
        let below = model.id_bound(k);
        quote!(#rt::DType::I32 { below: #below })
    } else {
        quote!(#rt::DType::F32)
    }
}

/// A layer's parameter count in generated code. With size parameters, the sum of its weights'
/// products of dimensions, so that a dimension that is a parameter stays one (a count computed
/// from its stand-in would be a number).
fn param_count(model: &Model, l: &LayerDef) -> TokenStream {
    let ins = &model.nodes[l.apps[0]].input_shapes;
    if !model.generics.params.is_empty()
        && let Some(ps) = l.kind.params(ins)
    {
        let terms = ps.iter().map(|(_, s)| quote!((1 #(* #s)*)));
        return quote!((0 #(+ #terms)*));
    }
    l.kind.param_count(ins)
}
