//! The subclassing style's two halves meet here: the names of the items the struct macro
//! (`derive.rs`) emits for each field and the call macro (`parse/subclass.rs`) reads, and the
//! lowered `call` body that `codegen/subclass.rs` generates code for.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::TokenStream;
use quote::format_ident;
use syn::Ident;

use super::Model;

/// The type alias the struct macro emits for a field's (element) type, so the call macro can
/// name it (for a shared field's buffers).
pub fn field_alias(model: &Ident, field: &str) -> Ident {
    format_ident!("__KilnField{}_{}", model, field)
}

/// The constant `__KILN_<kind>_<field>` (`ACT`: its activation) of a field.
pub fn konst(kind: &str, field: &str) -> Ident {
    format_ident!("__KILN_{}_{}", kind, field)
}

/// A `#[kiln::call]` body lowered to the graph IR, with what its generated code needs besides:
/// the shape checks and constants rustc evaluates, and the indexed fields it binds.
pub struct CallBody {
    pub model: Model,
    /// Compile-time shape checks, each spanned at the user's expression.
    pub checks: Vec<TokenStream>,
    /// Array or Vec fields indexed in `call`, with the indices used.
    pub indexed: BTreeMap<String, BTreeSet<usize>>,
    /// The model's constants: the output shape of each field call.
    pub consts: Vec<TokenStream>,
    /// The terms `call` adds to the loss (`self.add_loss(..)`): each one's name in the logs and
    /// the layer computing it.
    pub added_losses: Vec<(String, Ident)>,
    /// The model's size parameters (`<const H: usize>`), which every generated impl takes.
    pub generics: syn::Generics,
    /// The model as ONNX export reads it (shapes in numbers, fields as the layers of the other
    /// styles), or why `save_onnx` cannot write it.
    pub export: Result<Model, String>,
}
