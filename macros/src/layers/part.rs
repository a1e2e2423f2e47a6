//! One of a layer's several outputs (`(seq, h, c) = LSTM(16, return_state = true)(x)`): the
//! layer computes them one after the other in each sample's values, and a part copies its own
//! out (the runtime `Take`). Parts are made by `functional!`, never written by users, and are
//! hidden from the summary and plots, which show the layer's outputs on its own row.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Dim, Spec, rt};

struct Part {
    owner: Rc<dyn Spec>,
    index: usize,
}

/// Output `index` of a layer of several outputs.
pub fn part(owner: Rc<dyn Spec>, index: usize) -> Rc<dyn Spec> {
    Rc::new(Part { owner, index })
}

impl Part {
    /// Values per sample of the owner's output, and where this part starts and how long it is.
    fn range(&self, packed: &[usize]) -> (usize, usize, usize) {
        let sizes: Vec<usize> = self.owner.split(packed).iter().map(|s| s.iter().product()).collect();
        let start = sizes[..self.index].iter().sum();
        (sizes.iter().sum(), start, sizes[self.index])
    }
}

impl Spec for Part {
    fn class(&self) -> &'static str {
        self.owner.class()
    }

    fn auto_name(&self) -> String {
        format!("{}_output_{}", super::snake_case(self.owner.class()), self.index)
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        self.owner.split(&ins[0]).into_iter().nth(self.index).ok_or_else(|| "no such output".into())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Take)
    }

    fn constructor(&self, _ins: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (stride, start, len) = self.range(&shapes[0]);
        quote!(#rt::Take::new(#stride, #start, #len))
    }

    fn part_index(&self) -> Option<usize> {
        Some(self.index)
    }

    fn keeps_mask(&self) -> bool {
        // A sequence output keeps its steps' mask; a final state has no steps.
        self.index == 0 && self.owner.keeps_mask()
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (_, start, len) = self.range(&ins[0]);
        Some(crate::ir::Static::Take { start, len })
    }
}

/// The subclass style's `last_step(x)`: the last step `[U]` of a sequence `[T, U]` (what a
/// recurrent layer without `return_sequences` returns, from a field that returns every step).
struct LastStep;

/// `last_step(x)`.
pub fn last_step() -> Rc<dyn Spec> {
    Rc::new(LastStep)
}

impl Spec for LastStep {
    fn class(&self) -> &'static str {
        "LastStep"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        match ins[0][..] {
            [_, u] => Ok(vec![u]),
            _ => Err(format!("last_step takes a sequence [steps, features], got {}", super::show(&ins[0]))),
        }
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Take)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (t, u) = (&ins[0][0], &ins[0][1]);
        quote!(#rt::Take::new((#t) * (#u), ((#t) - 1) * (#u), #u))
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let [t, u] = ins[0][..] else { return None };
        Some(crate::ir::Static::Take { start: (t - 1) * u, len: u })
    }
}
