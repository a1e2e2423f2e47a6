//! `SimpleRNN`, `LSTM` and `GRU(units, activation = tanh, recurrent_activation = sigmoid,
//! use_bias = true, return_sequences = false, go_backwards = false, ..)` on a sequence
//! `[T, F]`: `[T, units]` with `return_sequences`, else `[units]`.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, last, rt, show};
use crate::errors::{Errors, suggestion};

macro_rules! recurrent_args {
    ($($extra:literal),*) => {
        &["units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
          "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
          "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
          "recurrent_dropout", "return_sequences", "return_state", "go_backwards", "stateful", "unroll"
          $(, $extra)*]
    };
}

pub const SIMPLE_RNN: Kind = Kind { class: "SimpleRNN", args: recurrent_args!(), arity: Arity::One, build: simple };
pub const LSTM: Kind =
    Kind { class: "LSTM", args: recurrent_args!("unit_forget_bias"), arity: Arity::One, build: lstm };
pub const GRU: Kind = Kind { class: "GRU", args: recurrent_args!("reset_after"), arity: Arity::One, build: gru };

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Simple,
    Lstm { unit_forget_bias: bool },
    Gru { reset_after: bool },
}

#[derive(Clone)]
struct Recurrent {
    cell: Cell,
    units: usize,
    activation: (&'static str, &'static str),
    recurrent_activation: (&'static str, &'static str),
    use_bias: bool,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    dropout: f32,
    recurrent_dropout: f32,
    weights: super::init::WeightOpts,
    /// Applied with Keras' `initial_state = [h(, c)]`: the states are its inputs after the first.
    initial_state: bool,
}

/// The activations a recurrent layer takes: Keras name and runtime `Gate`.
const GATES: &[(&str, &str)] = &[
    ("tanh", "Tanh"),
    ("sigmoid", "Sigmoid"),
    ("hard_sigmoid", "HardSigmoid"),
    ("relu", "Relu"),
    ("linear", "Linear"),
];

fn gate(
    args: &Args<'_>,
    key: &str,
    default: &'static str,
    errors: &mut Errors,
) -> Option<(&'static str, &'static str)> {
    let name = match args.get(key) {
        None => default.to_string(),
        Some(Value::Ident(i)) if i == "None" => "linear".into(),
        Some(Value::Ident(i)) => i.to_string(),
        Some(Value::Str(s, _)) => s.clone(),
        Some(v) => {
            errors.at(v.span(), format!("expected an activation name, e.g. {key} = {default}"));
            return None;
        }
    };
    let found = GATES.iter().find(|(n, _)| *n == name).copied();
    if found.is_none() {
        let names: Vec<&str> = GATES.iter().map(|(n, _)| *n).collect();
        let span = args.get(key).map(Value::span).unwrap_or_else(proc_macro2::Span::call_site);
        errors.at(
            span,
            format!("{} takes {key} = {}; got `{name}`{}", args.class, names.join(", "), suggestion(&name, &names)),
        );
    }
    found
}

fn simple(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    build(Cell::Simple, args, errors)
}

fn lstm(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let unit_forget_bias = args.boolean("unit_forget_bias", true, errors)?;
    build(Cell::Lstm { unit_forget_bias }, args, errors)
}

fn gru(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let reset_after = args.boolean("reset_after", true, errors)?;
    build(Cell::Gru { reset_after }, args, errors)
}

fn build(cell: Cell, args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let class = args.class;
    let units = match args.positive("units", class, &format!("{class}(64)"), errors) {
        Some(Some(u)) => Some(u),
        Some(None) => {
            errors.over(args.call, format!("{class} needs its number of units, e.g. {class}(64)"));
            None
        }
        None => None,
    };
    let activation = gate(args, "activation", "tanh", errors);
    let recurrent_activation = gate(args, "recurrent_activation", "sigmoid", errors);
    let use_bias = args.boolean("use_bias", true, errors);
    let return_sequences = args.boolean("return_sequences", false, errors);
    let return_state = args.boolean("return_state", false, errors);
    let go_backwards = args.boolean("go_backwards", false, errors);
    let mut ok = true;
    // Options kiln does not have yet are refused, never ignored.
    if args.boolean("stateful", false, errors)? {
        let span = args.get("stateful").map(Value::span).unwrap_or_else(proc_macro2::Span::call_site);
        errors.at(span, format!("kiln's {class} does not support stateful = true yet"));
        ok = false;
    }
    let dropout = args.number("dropout", 0.0, (|v| (0.0..1.0).contains(&v), "in [0, 1)"), errors);
    let recurrent_dropout = args.number("recurrent_dropout", 0.0, (|v| (0.0..1.0).contains(&v), "in [0, 1)"), errors);
    let weights = super::init::parse_weights(
        args,
        &[("kernel", "kernel"), ("recurrent", "recurrent_kernel"), ("bias", "bias")],
        errors,
    );
    if !ok {
        return None;
    }
    Some(Rc::new(Recurrent {
        cell,
        units: units?,
        activation: activation?,
        recurrent_activation: recurrent_activation?,
        use_bias: use_bias?,
        return_sequences: return_sequences?,
        return_state: return_state?,
        go_backwards: go_backwards?,
        dropout: dropout? as f32,
        recurrent_dropout: recurrent_dropout? as f32,
        weights: weights?,
        initial_state: false,
    }))
}

impl Recurrent {
    /// The states an `initial_state` gives, in Keras' order.
    fn state_names(&self) -> &'static [&'static str] {
        match self.cell {
            Cell::Lstm { .. } => &["h", "c"],
            _ => &["h"],
        }
    }

    fn gates(&self) -> usize {
        match self.cell {
            Cell::Simple => 1,
            Cell::Lstm { .. } => 4,
            Cell::Gru { .. } => 3,
        }
    }
}

impl Spec for Recurrent {
    fn class(&self) -> &'static str {
        match self.cell {
            Cell::Simple => "SimpleRNN",
            Cell::Lstm { .. } => "LSTM",
            Cell::Gru { .. } => "GRU",
        }
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let class = self.class();
        if self.initial_state {
            let (names, u) = (self.state_names(), self.units);
            let given = ins.len() - 1;
            if given != names.len() || ins[1..].iter().any(|s| s[..] != [u]) {
                let got: Vec<String> = ins[1..].iter().map(|s| show(s)).collect();
                return Err(format!(
                    "{class}'s initial_state is [{}], {} of shape [{u}] per sample (its units), got {} state(s): {}",
                    names.join(", "),
                    if names.len() == 1 { "one state" } else { "each" },
                    given,
                    got.join(", ")
                ));
            }
        }
        // With return_state, each sample's outputs one after the other: [(T or 1) + states, U].
        let states = self.outputs().map_or(0, |o| o.len() - 1);
        match ins[0][..] {
            [t, _] if self.return_sequences => Ok(vec![t + states, self.units]),
            [_, _] if states > 0 => Ok(vec![1 + states, self.units]),
            [_, _] => Ok(vec![self.units]),
            _ => Err(format!(
                "{class} reads a sequence: it expects an input of shape [timesteps, features] per sample, got {} \
                 (a vector needs a time axis, e.g. Reshape([steps, features]))",
                show(&ins[0])
            )),
        }
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Recurrent)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let steps = ins[0][0].clone();
        let features = last(&ins[0]);
        let units = self.units;
        let cell = match self.cell {
            Cell::Simple => quote!(#rt::Cell::Simple),
            Cell::Lstm { .. } => quote!(#rt::Cell::Lstm),
            Cell::Gru { reset_after } => quote!(#rt::Cell::Gru { reset_after: #reset_after }),
        };
        let (act, ract) = (format_ident!("{}", self.activation.1), format_ident!("{}", self.recurrent_activation.1));
        let (use_bias, seq, state, back) = (self.use_bias, self.return_sequences, self.return_state, self.go_backwards);
        let (drop, rdrop) = (self.dropout, self.recurrent_dropout);
        let mut build = quote!(#rt::Recurrent::new(
            #rt::RecurrentConfig {
                cell: #cell,
                steps: #steps,
                features: #features,
                units: #units,
                activation: #rt::Gate::#act,
                recurrent_activation: #rt::Gate::#ract,
                use_bias: #use_bias,
                return_sequences: #seq,
                return_state: #state,
                go_backwards: #back,
                dropout: #drop,
                recurrent_dropout: #rdrop,
            },
            &mut rng,
        ));
        if self.cell == (Cell::Lstm { unit_forget_bias: false }) && use_bias {
            build = quote!({
                let mut layer = #build;
                if let Some(b) = &mut layer.bias {
                    b.value.fill(0.0);
                }
                layer
            });
        }
        self.weights.wrap(build)
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let (f, gu) = (*ins[0].last()?, self.gates() * self.units);
        let mut p = vec![("kernel", vec![f, gu]), ("recurrent_kernel", vec![self.units, gu])];
        if self.use_bias {
            p.push(("bias", if self.cell == (Cell::Gru { reset_after: true }) { vec![2, gu] } else { vec![gu] }));
        }
        Some(p)
    }

    fn activation(&self) -> Option<&'static str> {
        Some(self.activation.0)
    }

    fn recurrent(&self) -> Option<usize> {
        Some(self.units)
    }

    fn outputs(&self) -> Option<&'static [&'static str]> {
        match (self.return_state, self.cell) {
            (false, _) => None,
            (true, Cell::Lstm { .. }) => Some(&["the output", "the final state h", "the final cell state c"]),
            (true, _) => Some(&["the output", "the final state"]),
        }
    }

    fn split(&self, out: &[usize]) -> Vec<Vec<usize>> {
        let (Some(names), &[rows, u]) = (self.outputs(), out) else { return vec![out.to_vec()] };
        let states = names.len() - 1;
        let first = if self.return_sequences { vec![rows - states, u] } else { vec![u] };
        std::iter::once(first).chain(std::iter::repeat_n(vec![u], states)).collect()
    }

    fn with_initial_state(&self) -> Option<Rc<dyn Spec>> {
        Some(Rc::new(Recurrent { initial_state: true, ..self.clone() }))
    }

    fn has_initial_state(&self) -> bool {
        self.initial_state
    }

    fn infer(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        // kiln's `no_std` kernels start from zeros.
        if self.initial_state {
            return None;
        }
        self.onnx(ins, out)
    }

    fn onnx(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let [steps, features] = ins[0][..] else { return None };
        let (units, gates) = (self.units, self.gates());
        let cell = match self.cell {
            Cell::Simple => quote!(::kiln::infer::Cell::Simple),
            Cell::Lstm { .. } => quote!(::kiln::infer::Cell::Lstm),
            Cell::Gru { reset_after } => quote!(::kiln::infer::Cell::Gru { reset_after: #reset_after }),
        };
        let (act, ract) = (format_ident!("{}", self.activation.1), format_ident!("{}", self.recurrent_activation.1));
        let (seq, state, back) = (self.return_sequences, self.return_state, self.go_backwards);
        let cfg = quote!(::kiln::infer::Recurrence {
            cell: #cell,
            steps: #steps,
            features: #features,
            units: #units,
            activation: ::kiln::infer::Gate::#act,
            recurrent_activation: ::kiln::infer::Gate::#ract,
            return_sequences: #seq,
            return_state: #state,
            go_backwards: #back,
        });
        Some(crate::ir::Static::Recurrent { cfg, features, units, gates, work: 2 * gates * units + 2 * units })
    }

    fn uses_mask(&self) -> bool {
        true
    }

    fn keeps_mask(&self) -> bool {
        self.return_sequences
    }
}
