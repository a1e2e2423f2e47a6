//! The checks: each returns `None`, or on failure the sentence a user reads.

use crate::{FieldRule, InputRule, Msg};

/// A failed check: returns its message.
macro_rules! fail {
    ($msg:expr) => {
        return Some($msg)
    };
}

/// Another check's failure, returned as this one's.
macro_rules! check {
    ($verdict:expr) => {
        if let Some(m) = $verdict {
            return Some(m);
        }
    };
}

/// Whether two shapes are equal, in a const context.
pub const fn shape_eq(a: &[usize], b: &[usize]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether two strings are equal, in a const context.
pub const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A layer call on vectors in a `call` body: "`what` expects an input of shape `[E]`, got `[G]`".
pub const fn expect_width(what: &str, expected: usize, got: usize) -> Option<Msg> {
    expect_dims(what, &[expected], &[got])
}

/// A shape in a `call` body against the one expected: "`what` expects an input of shape [..], got
/// [..]".
pub const fn expect_dims(what: &str, expected: &[usize], got: &[usize]) -> Option<Msg> {
    if !shape_eq(expected, got) {
        fail!(Msg::new().str(what).str(" expects an input of shape ").shape(expected).str(", got ").shape(got))
    }
    None
}

/// A field of a `#[kiln::model]` struct applied to one sample of `got`, by its type's rule: the
/// rank its window needs (`layer `conv` (Conv2D) expects an input of rank 3 [height, width,
/// channels], got [64]`), a window that fits (Keras' words, as in the other styles), no image
/// into a Dense, and the width of the last axis (`layer `head` expects an input of shape [32],
/// got [64]`).
pub const fn expect_field(what: &str, rule: FieldRule, got: &[usize]) -> Option<Msg> {
    let r = got.len();
    if let Some((input, output)) = rule.map {
        if !shape_eq(input, got) {
            fail!(Msg::new().str(what).str(" expects an input of shape ").shape(input).str(", got ").shape(got))
        }
        if output.len() != r {
            fail!(Msg::new().str(what).str(" turns ").shape(input).str(" into ").shape(output).str(
                ", but a field keeps its input's rank: end the nested model before its Flatten and flatten(x) in call"
            ))
        }
        return None;
    }
    if let Some(w) = rule.window {
        let form = if w.rank == 1 { " [steps, channels], got " } else { " [height, width, channels], got " };
        if r != w.rank + 1 {
            fail!(
                Msg::new()
                    .str(what)
                    .str(" (")
                    .str(rule.kind)
                    .str(") expects an input of rank ")
                    .num(w.rank + 1)
                    .str(form)
                    .shape(got)
            )
        }
        let mut i = 0;
        while i < w.rank {
            if w.axis(got[i]).is_none() {
                let m = Msg::new().str(what).str(" (").str(w.class).str(")'s window (").num(w.kernel);
                let m = if w.rank == 2 { m.str(", ").num(w.kernel) } else { m };
                fail!(m.str(") does not fit in the input ").shape(got).str(
                    " with padding valid: the computed output size would be negative; use Same or a smaller window"
                ))
            }
            i += 1;
        }
    }
    if rule.flat && r >= 3 {
        fail!(
            Msg::new()
                .str(what)
                .str(" (")
                .str(rule.kind)
                .str(") takes a vector [features] or a sequence [steps, features], got ")
                .shape(got)
                .str(": flatten(x) or global_average_pooling(x) first")
        )
    }
    if rule.any_width {
        return None;
    }
    if r == 1 {
        check!(expect_width(what, rule.input, got[0]))
    } else {
        check!(expect_shape(what, rule.input, got))
    }
    None
}

/// A field called with `shapes.len()` inputs (`self.attn(q, v, mask)`): their number, then each
/// input after the first by its rule (`layer `cross` expects input 2 of shape [steps, 16], got
/// [6, 8]`; `layer `cross`'s attention_mask is [query steps, value steps] = [4, 6] per sample,
/// got [4, 4]`).
pub const fn expect_inputs(what: &str, rule: FieldRule, shapes: &[&[usize]]) -> Option<Msg> {
    let (given, most) = (shapes.len(), 1 + rule.more.len());
    if given < rule.required || given > most {
        let m = Msg::new().str(what).str(" (").str(rule.kind).str(") takes ");
        let m = match (rule.required, most) {
            (1, 1) => m.str("one tensor"),
            (r, m2) if r == m2 => m.num(r).str(" tensors"),
            (r, m2) => m.num(r).str(" to ").num(m2).str(" tensors"),
        };
        fail!(m.str(", got ").num(given))
    }
    let mut i = 1;
    while i < given {
        let got = shapes[i];
        match rule.more[i - 1] {
            InputRule::Steps(w) => {
                if got.len() != 2 || got[1] != w {
                    fail!(
                        Msg::new()
                            .str(what)
                            .str(" expects input ")
                            .num(i + 1)
                            .str(" of shape [steps, ")
                            .num(w)
                            .str("], got ")
                            .shape(got)
                    )
                }
            }
            InputRule::State(w) => {
                if !shape_eq(got, &[w]) {
                    fail!(
                        Msg::new()
                            .str(what)
                            .str(" expects input ")
                            .num(i + 1)
                            .str(" (its initial state) of shape ")
                            .shape(&[w])
                            .str(", got ")
                            .shape(got)
                    )
                }
            }
            InputRule::Mask => {
                let tq = shapes[0][0];
                let tv = if i >= 2 && matches!(rule.more[0], InputRule::Steps(_)) { shapes[1][0] } else { tq };
                if !shape_eq(got, &[tq, tv]) {
                    fail!(
                        Msg::new()
                            .str(what)
                            .str("'s attention_mask is [query steps, value steps] = ")
                            .shape(&[tq, tv])
                            .str(" per sample, got ")
                            .shape(got)
                    )
                }
            }
        }
        i += 1;
    }
    None
}

/// A user's layer type in `sequential!`/`functional!` (`Custom(T)`), whose input the model gives
/// and whose output the model computed by the last-axis rule: a type whose rule is another (a
/// window field, a model that changes more than the last axis) is refused with what to write.
pub const fn expect_custom(what: &str, rule: FieldRule, input: &[usize], out_last: usize) -> Option<Msg> {
    if rule.window.is_some() {
        fail!(
            Msg::new()
                .str(what)
                .str(": ")
                .str(rule.kind)
                .str("<..> is a field type for #[kiln::model] structs; here write the layer, e.g. ")
                .str(rule.kind)
                .str("(..)")
        )
    }
    if let Some((i, o)) = rule.map {
        fail!(
            Msg::new().str(what).str(" turns ").shape(i).str(" into ").shape(o).str(
                ": Custom(..) takes layers that change the last axis only; nest the model in a #[kiln::model] struct"
            )
        )
    }
    check!(expect_field(what, rule, input));
    check!(same_shape(what, out_last, rule.output));
    None
}

/// A field with a window called again: its windows were sized for the shape of its first call
/// (`first`), so another call must give the same ("shared layer `conv` was built for input [..]
/// by its first use, got [..]", as in the other styles).
pub const fn expect_rebind(what: &str, rule: FieldRule, first: &[usize], got: &[usize]) -> Option<Msg> {
    if rule.window.is_some() && !shape_eq(first, got) {
        fail!(
            Msg::new()
                .str("shared ")
                .str(what)
                .str(" was built for input ")
                .shape(first)
                .str(" by its first use, got ")
                .shape(got)
        )
    }
    None
}

/// A layer whose type reads a last axis `expected` wide, given `got`: "`what` expects an input
/// whose last axis is E, got [..]".
pub const fn expect_shape(what: &str, expected: usize, got: &[usize]) -> Option<Msg> {
    if got.is_empty() || got[got.len() - 1] != expected {
        fail!(Msg::new().str(what).str(" expects an input whose last axis is ").num(expected).str(", got ").shape(got))
    }
    None
}

/// A user layer's output (its type's `OUT`) against the width the model declares for it.
pub const fn same_shape(what: &str, declared: usize, ty_out: usize) -> Option<Msg> {
    if declared != ty_out {
        fail!(
            Msg::new()
                .str(what)
                .str(" writes outputs whose last axis is ")
                .num(ty_out)
                .str(", but the model declares ")
                .num(declared)
                .str(": give `output = ")
                .num(ty_out)
                .str("`")
        )
    }
    None
}

/// The inputs of a merge on vectors have the same width.
pub const fn expect_same(what: &str, a: usize, b: usize) -> Option<Msg> {
    expect_same_dims(what, &[a], &[b])
}

/// The inputs of an element-wise merge have the same shape.
pub const fn expect_same_dims(what: &str, a: &[usize], b: &[usize]) -> Option<Msg> {
    if !shape_eq(a, b) {
        fail!(Msg::new().str(what).str(" needs inputs of the same shape, got ").shape(a).str(" and ").shape(b))
    }
    None
}

/// Two tensors combined element-wise broadcast (NumPy's rule: shapes aligned from the last
/// axis, each pair of extents equal or one of them 1; the shorter shape is padded with 1s).
pub const fn expect_broadcast(what: &str, a: &[usize], b: &[usize]) -> Option<Msg> {
    if !broadcasts(a, b) {
        fail!(
            Msg::new()
                .str(what)
                .str(" cannot broadcast ")
                .shape(a)
                .str(" and ")
                .shape(b)
                .str(": aligned from the last axis, each pair of extents must be equal or one of them 1")
        )
    }
    None
}

/// `self.field` read as a tensor in `call` is a `Weight`.
pub const fn expect_tensor_field(what: &str, tensor: bool, matrix: bool) -> Option<Msg> {
    if matrix {
        fail!(Msg::new().str(what).str(" is a matrix: multiply by it, as in matmul(x, self.w)"))
    }
    if !tensor {
        fail!(Msg::new().str(what).str(" is a layer, not a tensor: call it on one, as in self.layer(x)"))
    }
    None
}

/// `matmul(x, self.w)` in `call` multiplies by a `Matrix`.
pub const fn expect_matrix_field(what: &str, matrix: bool) -> Option<Msg> {
    if !matrix {
        fail!(Msg::new().str(what).str(" is not a matrix: matmul(x, self.w) multiplies by a field `w: Matrix<R, C>`"))
    }
    None
}

/// `self.field(x)` in `call` is a layer, not a `Weight`.
pub const fn expect_layer_field(what: &str, tensor: bool) -> Option<Msg> {
    if tensor {
        fail!(Msg::new().str(what).str(" is a weight: read it as a tensor, without a call (x * self.gamma)"))
    }
    None
}

/// The operands of `matmul` (rank 2 or more, the same leading axes) agree on the inner size:
/// `a`'s last axis (its second-to-last when `ta`) and `b`'s second-to-last (last when `tb`).
pub const fn expect_matmul(what: &str, a: &[usize], b: &[usize], ta: bool, tb: bool) -> Option<Msg> {
    let (ra, rb) = (a.len(), b.len());
    let inner_a = if ta { a[ra - 2] } else { a[ra - 1] };
    let inner_b = if tb { b[rb - 1] } else { b[rb - 2] };
    let (lead_a, _) = a.split_at(ra - 2);
    let (lead_b, _) = b.split_at(rb - 2);
    if inner_a != inner_b || !broadcasts(lead_a, lead_b) {
        fail!(
            Msg::new()
                .str(what)
                .str(" cannot multiply ")
                .shape(a)
                .str(" by ")
                .shape(b)
                .str(": the inner sizes must agree and the leading axes broadcast")
        )
    }
    None
}

/// `slice(x, axis, start, end)` lies inside the axis, of extent `len`.
pub const fn expect_slice(what: &str, len: usize, end: usize) -> Option<Msg> {
    if end > len {
        fail!(Msg::new().str(what).str(" ends past the end of its axis, of extent ").shape(&[len]))
    }
    None
}

/// Tensors concatenated along `axis` agree on every other axis.
pub const fn expect_same_except(what: &str, a: &[usize], b: &[usize], axis: usize) -> Option<Msg> {
    let mut same = a.len() == b.len();
    let mut i = 0;
    while same && i < a.len() {
        same = i == axis || a[i] == b[i];
        i += 1;
    }
    if !same {
        fail!(
            Msg::new()
                .str(what)
                .str(" needs inputs equal on every axis but the joined one, got ")
                .shape(a)
                .str(" and ")
                .shape(b)
        )
    }
    None
}

/// `reshape` keeps the number of values of a sample.
pub const fn expect_same_size(what: &str, from: &[usize], to: &[usize]) -> Option<Msg> {
    let (mut a, mut b, mut i) = (1usize, 1usize, 0);
    while i < from.len() {
        a *= from[i];
        i += 1;
    }
    i = 0;
    while i < to.len() {
        b *= to[i];
        i += 1;
    }
    if a != b {
        fail!(
            Msg::new()
                .str(what)
                .str(" cannot turn ")
                .shape(from)
                .str(" into ")
                .shape(to)
                .str(": the numbers of values differ")
        )
    }
    None
}

/// `add_loss` reads one value per sample.
pub const fn expect_one_per_sample(what: &str, shape: &[usize]) -> Option<Msg> {
    let mut size = 1;
    let mut i = 0;
    while i < shape.len() {
        size *= shape[i];
        i += 1;
    }
    if size != 1 {
        fail!(
            Msg::new()
                .str(what)
                .str(
                    " takes one value per sample (reduce the term first, e.g. sum(t, axis = 1)), not a tensor of shape "
                )
                .shape(shape)
        )
    }
    None
}

/// `squeeze` removes an axis of extent 1.
pub const fn expect_extent_one(what: &str, extent: usize) -> Option<Msg> {
    if extent != 1 {
        fail!(Msg::new().str(what).str(" removes an axis of extent 1, not ").shape(&[extent]))
    }
    None
}

/// Whether two shapes broadcast as NumPy's (aligned from the last axis, each pair equal or one
/// of them 1, a missing axis counting as 1).
const fn broadcasts(a: &[usize], b: &[usize]) -> bool {
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        i -= 1;
        j -= 1;
        if a[i] != b[j] && a[i] != 1 && b[j] != 1 {
            return false;
        }
    }
    true
}

/// An axis's extent after broadcasting two extents that [`expect_broadcast`] accepts.
pub const fn broadcast_dim(a: usize, b: usize) -> usize {
    if a == 1 { b } else { a }
}

/// Tensors concatenated on the last axis agree on every other axis.
pub const fn expect_same_lead(what: &str, a: &[usize], b: &[usize]) -> Option<Msg> {
    if a.len() == b.len() && !a.is_empty() {
        let (a_lead, _) = a.split_at(a.len() - 1);
        let (b_lead, _) = b.split_at(b.len() - 1);
        if shape_eq(a_lead, b_lead) {
            return None;
        }
    }
    Some(Msg::new().str(what).str(" needs inputs of the same shape, got ").shape(a).str(" and ").shape(b))
}

/// The output shape of field `key` in a `#[kiln::model]` struct's summary: the one its `call`
/// body computes (`shapes`, written by `#[kiln::call]`), or `[out]` for a field `call` does not
/// use.
pub const fn field_shape(
    shapes: &'static [(&'static str, &'static [usize])],
    key: &str,
    out: &'static [usize],
) -> &'static [usize] {
    let mut i = 0;
    while i < shapes.len() {
        let (name, shape) = shapes[i];
        if same_str(name, key) {
            return shape;
        }
        i += 1;
    }
    out
}

/// A `#[weights(..)]` file against one field (or one element of an array field) of a
/// `#[kiln::model]` struct: `declared` is the field type's `PARAM_SHAPES`, `file` the tensors the
/// file holds under the field's prefix (read by the macro). Names the first tensor that is
/// missing, extra or of another shape.
pub const fn expect_params(
    what: &str,
    declared: Option<&[(&str, &[usize])]>,
    file: &[(&str, &[usize])],
) -> Option<Msg> {
    let Some(declared) = declared else {
        fail!(
            Msg::new()
                .str("embedded weights: the type of `")
                .str(what)
                .str("` does not state its weights (Shaped::PARAM_SHAPES)")
        )
    };
    let mut i = 0;
    while i < declared.len() {
        let (name, shape) = declared[i];
        let Some(got) = find(file, name) else {
            fail!(
                Msg::new()
                    .str("embedded weights: tensor `")
                    .str(what)
                    .str(".")
                    .str(name)
                    .str("` (shape ")
                    .shape(shape)
                    .str(") is missing from the file")
            )
        };
        if !shape_eq(got, shape) {
            fail!(
                Msg::new()
                    .str("embedded weights: `")
                    .str(what)
                    .str(".")
                    .str(name)
                    .str("` has shape ")
                    .shape(got)
                    .str(" in the file, but the model's is ")
                    .shape(shape)
            )
        }
        i += 1;
    }
    let mut j = 0;
    while j < file.len() {
        if find(declared, file[j].0).is_none() {
            fail!(
                Msg::new()
                    .str("embedded weights: tensor `")
                    .str(what)
                    .str(".")
                    .str(file[j].0)
                    .str("` in the file is not a weight of the model")
            )
        }
        j += 1;
    }
    None
}

/// Whether a layer type's stated weights (`Shaped::PARAM_SHAPES`) include `name`, for the macros'
/// compile-time checks of weight options.
pub const fn states_param(shapes: Option<&[(&str, &[usize])]>, name: &str) -> bool {
    match shapes {
        Some(list) => find(list, name).is_some(),
        None => false,
    }
}

const fn find<'a>(list: &[(&str, &'a [usize])], name: &str) -> Option<&'a [usize]> {
    let mut i = 0;
    while i < list.len() {
        if same_str(list[i].0, name) {
            return Some(list[i].1);
        }
        i += 1;
    }
    None
}
