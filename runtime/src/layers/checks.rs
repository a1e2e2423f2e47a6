//! The shape checks that need the runtime's own types; the others, with the rules they read, are
//! the `kiln-shapes` crate's, re-exported here.

pub use kiln_shapes::*;

/// A kiln model applied as a layer of `n` inputs (`Custom(Pair, inputs = 2)`) declares `n`
/// inputs, and each is given its declared shape.
pub const fn expect_model_inputs(what: &str, ports: &[crate::model::Port], got: &[&[usize]], n: usize) -> Option<Msg> {
    if ports.len() != n || got.len() != n {
        return Some(Msg::new().str(what).str(" is applied to a number of inputs its model does not declare"));
    }
    let mut i = 0;
    while i < n {
        if !shape_eq(ports[i].shape, got[i]) {
            return Some(Msg::new()
                .str(what)
                .str(" expects an input of shape ")
                .shape(ports[i].shape)
                .str(", got ")
                .shape(got[i]))
        }
        i += 1;
    }
    None
}
