//! `TimeDistributed(layer)`: the layer on every step of `[T, ..]`; `Bidirectional(rnn,
//! merge_mode = "concat")`: a recurrent layer read forwards and, with weights of its own,
//! backwards.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::call::{LayerCall, Value, understand};
use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

pub const TIME_DISTRIBUTED: Kind =
    Kind { class: "TimeDistributed", args: &["layer"], arity: Arity::One, build: time_distributed };
pub const BIDIRECTIONAL: Kind = Kind {
    class: "Bidirectional",
    args: &["layer", "merge_mode", "backward_layer"],
    arity: Arity::One,
    build: bidirectional,
};

/// The wrapped layer: `LSTM(32)` or a bare `Flatten`.
fn inner(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let class = args.class;
    let call = match args.get("layer") {
        Some(Value::Layer(call)) => (**call).clone(),
        Some(Value::Ident(id)) => LayerCall { ident: id.clone(), args: vec![], tokens: quote!(#id) },
        Some(v) => {
            errors.at(v.span(), format!("{class} wraps a layer, e.g. {class}(LSTM(32))"));
            return None;
        }
        None => {
            errors.over(args.call, format!("{class} needs the layer it wraps, e.g. {class}(LSTM(32))"));
            return None;
        }
    };
    let u = understand(&call, false, errors)?;
    if u.name.is_some() {
        errors.over(&call.tokens, format!("name the {class} wrapper, not the layer inside it"));
        return None;
    }
    Some(u.kind)
}

fn time_distributed(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let layer = inner(args, errors)?;
    if layer.id_bound().is_some() || layer.arity() != Arity::One || layer.outputs().is_some() {
        errors.at(args.get("layer")?.span(), format!("TimeDistributed cannot wrap {}", layer.class()));
        return None;
    }
    Some(Rc::new(TimeDistributed { layer }))
}

struct TimeDistributed {
    layer: Rc<dyn Spec>,
}

impl TimeDistributed {
    /// The step shape the wrapped layer sees.
    fn rest<T: Clone>(ins: &[Vec<T>]) -> Vec<Vec<T>> {
        vec![ins[0][1..].to_vec()]
    }
}

impl Spec for TimeDistributed {
    fn class(&self) -> &'static str {
        "TimeDistributed"
    }

    fn is_view(&self) -> bool {
        self.layer.is_view()
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if ins[0].len() < 2 {
            return Err(format!(
                "TimeDistributed applies {} to every step: it expects [timesteps, ..] per sample, got {}",
                self.layer.class(),
                show(&ins[0])
            ));
        }
        let inner = self
            .layer
            .output_shape(&Self::rest(ins))
            .map_err(|e| format!("in TimeDistributed, on each step of {}: {e}", show(&ins[0])))?;
        Ok(std::iter::once(ins[0][0]).chain(inner).collect())
    }

    fn runtime_type(&self, ins: &[Vec<Dim>]) -> TokenStream {
        let (rt, inner) = (rt(), self.layer.runtime_type(&Self::rest(ins)));
        quote!(#rt::TimeDistributed<#inner>)
    }

    fn constructor(&self, ins: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let shapes = if shapes.is_empty() { vec![] } else { Self::rest(shapes) };
        let inner = self.layer.constructor(&Self::rest(ins), &shapes);
        let steps = &ins[0][0];
        quote!(#rt::TimeDistributed::new(#inner, #steps))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        self.layer.params(&Self::rest(ins))
    }

    fn infer(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        use crate::ir::Static;
        let inner = self.layer.infer(&Self::rest(ins), &out[1..])?;
        match inner {
            Static::Identity => Some(Static::Identity),
            // A layer with workspace of its own would need it once per step.
            Static::Separable { .. }
            | Static::Recurrent { .. }
            | Static::Bidirectional { .. }
            | Static::Attention { .. } => None,
            inner => Some(Static::TimeDistributed { inner: Box::new(inner), steps: ins[0][0] }),
        }
    }

    /// Also a layer with workspace of its own (a recurrent layer, attention): the export
    /// applies it to the steps joined to the batch.
    fn onnx(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        match self.layer.onnx(&Self::rest(ins), &out[1..])? {
            crate::ir::Static::Identity => Some(crate::ir::Static::Identity),
            inner => Some(crate::ir::Static::TimeDistributed { inner: Box::new(inner), steps: ins[0][0] }),
        }
    }

    fn user_scope(&self) -> bool {
        self.layer.user_scope()
    }

    fn keeps_mask(&self) -> bool {
        true
    }

    fn activation(&self) -> Option<&'static str> {
        self.layer.activation()
    }

    fn const_checks(&self, what: &str, ins: &[Vec<usize>], out: &[usize], at: &TokenStream) -> TokenStream {
        self.layer.const_checks(what, &Self::rest(ins), &out[1..], at)
    }
}

fn bidirectional(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    if let Some(v) = args.get("backward_layer") {
        errors.at(v.span(), "kiln's Bidirectional builds the backward layer itself: remove backward_layer");
        return None;
    }
    let mode = match args.get("merge_mode") {
        None => Some("Concat"),
        Some(v) => {
            let mode = match v.word().as_str() {
                "concat" => Some("Concat"),
                "sum" => Some("Sum"),
                "mul" => Some("Mul"),
                "ave" => Some("Ave"),
                _ => None,
            };
            if mode.is_none() {
                errors.at(v.span(), "merge_mode is one of \"concat\", \"sum\", \"mul\", \"ave\"");
            }
            mode
        }
    };
    let layer = inner(args, errors)?;
    if layer.recurrent().is_none() {
        errors.at(
            args.get("layer")?.span(),
            format!("Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU), not {}", layer.class()),
        );
        return None;
    }
    Some(Rc::new(Bidirectional { layer, mode: mode? }))
}

struct Bidirectional {
    layer: Rc<dyn Spec>,
    mode: &'static str,
}

impl Bidirectional {
    /// The same wrapper over its layer applied with `initial_state`.
    fn with_states(&self) -> Option<Rc<dyn Spec>> {
        Some(Rc::new(Bidirectional { layer: self.layer.with_initial_state()?, mode: self.mode }))
    }

    /// The final states each direction returns (`return_state`): 0, 1, or 2 for an LSTM.
    fn states(&self) -> usize {
        self.layer.outputs().map_or(0, |o| o.len() - 1)
    }
}

impl Spec for Bidirectional {
    fn class(&self) -> &'static str {
        "Bidirectional"
    }

    fn uses_mask(&self) -> bool {
        true
    }

    fn keeps_mask(&self) -> bool {
        self.layer.keeps_mask()
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let ins = if self.layer.has_initial_state() {
            // Keras' order: the forward direction's states, then the backward one's.
            let u = self.layer.recurrent().unwrap_or(0);
            let per = if self.layer.class() == "LSTM" { 2 } else { 1 };
            let names = if per == 2 { "[fh, fc, bh, bc]" } else { "[fh, bh]" };
            if ins.len() - 1 != 2 * per || ins[1..].iter().any(|s| s[..] != [u]) {
                let got: Vec<String> = ins[1..].iter().map(|s| show(s)).collect();
                return Err(format!(
                    "Bidirectional's initial_state is {names} (the forward direction's states, then the backward \
                     one's), each of shape [{u}] per sample, got {} state(s): {}",
                    ins.len() - 1,
                    got.join(", ")
                ));
            }
            &ins[..1 + per]
        } else {
            ins
        };
        let mut out = self.layer.output_shape(ins)?;
        let states = self.states();
        if states > 0 {
            // With return_state, each sample's merged rows, then both directions' final states:
            // [rows + 2k, U] merged by a mode that keeps the width, [rows + k, 2U] concatenated.
            let rows = out[0] - states;
            return Ok(if self.mode == "Concat" {
                vec![rows + states, 2 * out[1]]
            } else {
                vec![rows + 2 * states, out[1]]
            });
        }
        if self.mode == "Concat"
            && let Some(d) = out.last_mut()
        {
            *d *= 2;
        }
        Ok(out)
    }

    fn with_initial_state(&self) -> Option<Rc<dyn Spec>> {
        self.with_states()
    }

    fn has_initial_state(&self) -> bool {
        self.layer.has_initial_state()
    }

    fn outputs(&self) -> Option<&'static [&'static str]> {
        match self.layer.outputs()?.len() {
            3 => Some(&[
                "the output",
                "the forward state h",
                "the forward cell state c",
                "the backward state h",
                "the backward cell state c",
            ]),
            _ => Some(&["the output", "the forward state", "the backward state"]),
        }
    }

    fn split(&self, out: &[usize]) -> Vec<Vec<usize>> {
        let (states, &[rows, w]) = (self.states(), out) else { return vec![out.to_vec()] };
        let Some(u) = self.layer.recurrent() else { return vec![out.to_vec()] };
        if states == 0 {
            return vec![out.to_vec()];
        }
        // The merged rows: the steps (return_sequences) or the last state alone.
        let merged = rows - 2 * states * u / w;
        let first = if self.layer.keeps_mask() { vec![merged, w] } else { vec![w] };
        std::iter::once(first).chain(std::iter::repeat_n(vec![u], 2 * states)).collect()
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Bidirectional)
    }

    fn constructor(&self, ins: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let inner = self.layer.constructor(ins, shapes);
        let mode = quote::format_ident!("{}", self.mode);
        quote!({
            let forward = #inner;
            let backward = #inner;
            #rt::Bidirectional::new(forward, backward, #rt::MergeMode::#mode)
        })
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let inner = self.layer.params(ins)?;
        let name = |dir: &str, n: &str| -> &'static str {
            match (dir, n) {
                ("forward", "kernel") => "forward_kernel",
                ("forward", "recurrent_kernel") => "forward_recurrent_kernel",
                ("forward", _) => "forward_bias",
                (_, "kernel") => "backward_kernel",
                (_, "recurrent_kernel") => "backward_recurrent_kernel",
                _ => "backward_bias",
            }
        };
        Some(
            ["forward", "backward"]
                .iter()
                .flat_map(|d| inner.iter().map(move |(n, s)| (name(d, n), s.clone())))
                .collect(),
        )
    }

    fn activation(&self) -> Option<&'static str> {
        self.layer.activation()
    }

    fn infer(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        // kiln's `no_std` kernels merge the two directions' outputs only, started from zeros.
        if self.states() > 0 || self.layer.has_initial_state() {
            return None;
        }
        self.onnx(ins, out)
    }

    /// Also with `return_state` (the export writes the states after the merged output) and
    /// from an `initial_state` (each direction's states, read by the one layer).
    fn onnx(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        // The layer reads the sequence and one direction's states.
        let per = if self.layer.class() == "LSTM" { 2 } else { 1 };
        let ins = if self.layer.has_initial_state() { ins.get(..1 + per)? } else { ins };
        let inner_out = self.layer.output_shape(ins).ok()?;
        let crate::ir::Static::Recurrent { cfg, features, units, gates, work } = self.layer.onnx(ins, &inner_out)?
        else {
            return None;
        };
        let n: usize = inner_out.iter().product();
        Some(crate::ir::Static::Bidirectional { cfg, mode: self.mode, features, units, gates, work: 2 * n + work })
    }
}
