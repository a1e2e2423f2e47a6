//! Layers that slide a window over `channels_last` samples: `Conv1D`, `Conv2D`,
//! `MaxPooling1D/2D`, `AveragePooling1D/2D`, and the global poolings. Their output sizes are
//! computed here when the model compiles, with Keras' rules, and an impossible configuration is an
//! error at the layer.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::activation::{Act, activation};
use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

macro_rules! kinds {
    ($($name:ident = $class:literal, $args:expr, $build:ident;)*) => {$(
        pub const $name: Kind = Kind { class: $class, args: $args, arity: Arity::One, build: |a, e| $build(a, e, $class) };
    )*};
}

kinds! {
    CONV1D = "Conv1D", CONV_ARGS, conv;
    CONV2D = "Conv2D", CONV_ARGS, conv;
    DEPTHWISE2D = "DepthwiseConv2D", DEPTHWISE_ARGS, conv;
    SEPARABLE2D = "SeparableConv2D", SEPARABLE_ARGS, conv;
    TRANSPOSE2D = "Conv2DTranspose", TRANSPOSE_ARGS, conv;
}
const DEPTHWISE_ARGS: &[&str] =
    &["kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate", "activation", "use_bias"];
const SEPARABLE_ARGS: &[&str] =
    &["filters", "kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate", "activation", "use_bias"];
const TRANSPOSE_ARGS: &[&str] =
    with_weight_args!("filters", "kernel_size", "strides", "padding", "activation", "use_bias"; no_activity);
const CONV_ARGS: &[&str] = with_weight_args!(
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "dilation_rate",
    "groups",
    "activation",
    "use_bias",
);

const POOL_ARGS: &[&str] = &["pool_size", "strides", "padding"];
kinds! {
    MAX_POOL1D = "MaxPooling1D", POOL_ARGS, build_pool;
    MAX_POOL2D = "MaxPooling2D", POOL_ARGS, build_pool;
    AVG_POOL1D = "AveragePooling1D", POOL_ARGS, build_pool;
    AVG_POOL2D = "AveragePooling2D", POOL_ARGS, build_pool;
    GLOBAL_MAX1D = "GlobalMaxPooling1D", &[], build_global;
    GLOBAL_MAX2D = "GlobalMaxPooling2D", &[], build_global;
    GLOBAL_AVG1D = "GlobalAveragePooling1D", &[], build_global;
    GLOBAL_AVG2D = "GlobalAveragePooling2D", &[], build_global;
}

/// `3` or `[3, 3]`: one value per spatial axis, each at least `min`.
fn per_axis(
    args: &Args<'_>,
    class: &str,
    key: &str,
    rank: usize,
    default: Option<usize>,
    errors: &mut Errors,
) -> Option<Vec<usize>> {
    let min = 1;
    let example = if rank == 1 { "3".to_string() } else { "3 or [3, 3]".to_string() };
    let bad = |v: &Value, errors: &mut Errors| {
        errors.at(v.span(), format!("{class}'s {key} must be {rank} integer(s) >= {min}, e.g. {key} = {example}"));
        None
    };
    match args.get(key) {
        Some(v @ Value::Int(i, _)) => {
            if *i < min {
                return bad(v, errors);
            }
            Some(vec![*i as usize; rank])
        }
        Some(v @ Value::List(list, _)) => {
            if list.len() != rank || list.iter().any(|i| *i < min) {
                return bad(v, errors);
            }
            Some(list.iter().map(|i| *i as usize).collect())
        }
        Some(v) => bad(v, errors),
        None => match default {
            Some(d) => Some(vec![d; rank]),
            None => {
                errors.over(args.call, format!("{class} needs its {key}, e.g. {key} = {example}"));
                None
            }
        },
    }
}

/// `padding = valid | same` (a name or a string), and `causal` for Conv1D: (same, causal).
fn padding(args: &Args<'_>, errors: &mut Errors) -> Option<(bool, bool)> {
    let (name, span) = match args.get("padding") {
        None => return Some((false, false)),
        Some(Value::Ident(i)) => (i.to_string(), i.span()),
        Some(Value::Str(s, sp)) => (s.clone(), *sp),
        Some(v) => (String::new(), v.span()),
    };
    match name.as_str() {
        "valid" => Some((false, false)),
        "same" => Some((true, false)),
        "causal" if args.class == "Conv1D" => Some((false, true)),
        _ => {
            let also = if args.class == "Conv1D" { ", same or causal" } else { " or same" };
            errors.at(span, format!("padding must be valid{also}"));
            None
        }
    }
}

/// The window of a layer on samples of rank `rank + 1` (`[.., channels]`).
#[derive(Clone)]
struct Geometry {
    rank: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    same: bool,
    /// Conv1D's `causal`: padding before the steps only, so step `t` sees steps up to `t`.
    causal: bool,
}

impl Geometry {
    /// `[height, width, channels]` for an input of this rank, or the error.
    fn input(&self, class: &str, input: &[usize]) -> Result<(usize, usize, usize), String> {
        let want = self.rank + 1;
        if input.len() != want {
            let form = if self.rank == 1 { "[steps, channels]" } else { "[height, width, channels]" };
            let fix = if input.len() < want { ": reshape the input first, e.g. Reshape([8, 8, 1])" } else { "" };
            return Err(format!("{class} expects an input of rank {want} {form}, got {}{fix}", show(input)));
        }
        Ok(if self.rank == 1 { (1, input[0], input[1]) } else { (input[0], input[1], input[2]) })
    }

    /// The runtime window, or Keras' complaint.
    fn window(&self, class: &str, input: &[usize]) -> Result<Window, String> {
        let (h, w, c) = self.input(class, input)?;
        let (kh, kw) = if self.rank == 1 { (1, self.kernel[0]) } else { (self.kernel[0], self.kernel[1]) };
        let (sh, sw) = if self.rank == 1 { (1, self.strides[0]) } else { (self.strides[0], self.strides[1]) };
        let (dh, dw) = if self.rank == 1 { (1, self.dilation[0]) } else { (self.dilation[0], self.dilation[1]) };
        let fail = || {
            let k: Vec<String> = self.kernel.iter().map(|k| k.to_string()).collect();
            format!(
                "{class}'s window ({}) does not fit in the input {} with padding valid: the computed output size \
                 would be negative; use padding = same or a smaller window",
                k.join(", "),
                show(input)
            )
        };
        let (oh, ph) = axis(h, kh, sh, dh, self.same).ok_or_else(fail)?;
        let (ow, pw) = if self.causal {
            // Keras pads (kernel - 1) · dilation steps before, then convolves valid.
            let pad = (kw - 1) * dw;
            axis(w + pad, kw, sw, dw, false).map(|(o, _)| (o, pad)).ok_or_else(fail)?
        } else {
            axis(w, kw, sw, dw, self.same).ok_or_else(fail)?
        };
        Ok(Window { h, w, c, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow })
    }

    fn output(&self, win: &Window, channels: usize) -> Vec<usize> {
        if self.rank == 1 { vec![win.ow, channels] } else { vec![win.oh, win.ow, channels] }
    }
}

/// Keras' output size and padding before for one axis (see the runtime's `kernels::conv::axis`).
fn axis(size: usize, k: usize, stride: usize, dilation: usize, same: bool) -> Option<(usize, usize)> {
    if stride == 0 || dilation == 0 || k == 0 || size == 0 {
        return None;
    }
    let span = (k - 1) * dilation + 1;
    if same {
        let out = size.div_ceil(stride);
        Some((out, ((out - 1) * stride + span).saturating_sub(size) / 2))
    } else if span > size {
        None
    } else {
        Some(((size - span) / stride + 1, 0))
    }
}

/// The window as numbers, mirrored by the runtime's `Window`.
#[derive(Clone, Copy)]
struct Window {
    h: usize,
    w: usize,
    c: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Window {
    /// The window for the generated `infer` (the `no_std` runtime's `Window`).
    fn infer_tokens(&self) -> TokenStream {
        let Window { h, w, c, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow } = *self;
        quote!(::kiln::infer::Window { h: #h, w: #w, c: #c, kh: #kh, kw: #kw, sh: #sh, sw: #sw, dh: #dh, dw: #dw, ph: #ph, pw: #pw, oh: #oh, ow: #ow })
    }

    fn tokens(&self) -> TokenStream {
        let rt = rt();
        let Window { h, w, c, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow } = *self;
        quote!(#rt::Window { h: #h, w: #w, c: #c, kh: #kh, kw: #kw, sh: #sh, sw: #sw, dh: #dh, dw: #dw, ph: #ph, pw: #pw, oh: #oh, ow: #ow })
    }
}

struct Conv {
    class: &'static str,
    geometry: Geometry,
    /// Output channels (for a depthwise convolution, the depth multiplier).
    filters: usize,
    /// Kernels per input channel (depthwise and separable).
    multiplier: usize,
    /// Channel groups (Conv1D, Conv2D).
    groups: usize,
    act: Act,
    use_bias: bool,
    /// Initializers, regularizers and constraints of the kernel and bias.
    weights: super::init::WeightOpts,
}

impl Conv {
    /// The runtime layer's constructor call.
    fn build(&self, ins: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let ty = self.runtime_type(ins);
        let (f, m, b, one_d) = (self.filters, self.multiplier, self.use_bias, self.geometry.rank == 1);
        if self.class == "Conv2DTranspose" {
            let win = self.transposed(&shapes[0]).map(|w| w.tokens()).unwrap_or_default();
            let ic = shapes[0].last().copied().unwrap_or(0);
            return quote!(<#ty>::new(#win, #ic, #b, &mut rng));
        }
        let win = self.geometry.window(self.class, &shapes[0]).map(|w| w.tokens()).unwrap_or_default();
        match self.class {
            "DepthwiseConv2D" => quote!(<#ty>::new(#win, #m, #b, &mut rng)),
            "SeparableConv2D" => quote!(<#ty>::new(#win, #m, #f, #b, &mut rng)),
            _ => {
                let groups = self.groups;
                quote!(<#ty>::grouped(#win, #f, #groups, #b, #one_d, &mut rng))
            }
        }
    }

    fn depthwise(&self) -> bool {
        self.class == "DepthwiseConv2D"
    }

    /// The transposed convolution's window: the convolution from its output back to its input.
    fn transposed(&self, input: &[usize]) -> Result<Window, String> {
        let (h, w, _) = self.geometry.input(self.class, input)?;
        let g = &self.geometry;
        let grow = |n: usize, k: usize, s: usize| if g.same { n * s } else { (n - 1) * s + k };
        let (oh, ow) = (grow(h, g.kernel[0], g.strides[0]), grow(w, g.kernel[1], g.strides[1]));
        let conv = Geometry {
            rank: 2,
            kernel: g.kernel.clone(),
            strides: g.strides.clone(),
            dilation: vec![1, 1],
            same: g.same,
            causal: false,
        };
        let win = conv.window(self.class, &[oh, ow, self.filters])?;
        if (win.oh, win.ow) != (h, w) {
            return Err(format!("{} cannot grow {} with these strides and kernel", self.class, show(input)));
        }
        Ok(win)
    }
}

fn conv(args: &Args<'_>, errors: &mut Errors, class: &'static str) -> Option<Rc<dyn Spec>> {
    let rank = if class == "Conv1D" { 1 } else { 2 };
    let multiplier = args.positive("depth_multiplier", class, "depth_multiplier = 2", errors).map(|m| m.unwrap_or(1));
    let filters = if class == "DepthwiseConv2D" {
        multiplier
    } else {
        match args.positive("filters", class, "Conv2D(32, 3)", errors) {
            Some(Some(f)) => Some(f),
            Some(None) => {
                errors.over(args.call, format!("{class} needs its number of filters, e.g. {class}(32, 3)"));
                None
            }
            None => None,
        }
    };
    let kernel = per_axis(args, class, "kernel_size", rank, None, errors);
    let strides = per_axis(args, class, "strides", rank, Some(1), errors);
    let dilation = per_axis(args, class, "dilation_rate", rank, Some(1), errors);
    let pad = padding(args, errors);
    let groups = args.positive("groups", class, "groups = 2", errors).map(|g| g.unwrap_or(1));
    if let (Some(s), Some(d)) = (&strides, &dilation)
        && s.iter().any(|s| *s > 1)
        && d.iter().any(|d| *d > 1)
    {
        errors.over(args.call, "strides > 1 and dilation_rate > 1 cannot be combined (as in Keras)");
    }
    let act = match args.get("activation") {
        Some(v) => activation(v, errors),
        None => Some(Act::LINEAR),
    };
    let use_bias = args.boolean("use_bias", true, errors);
    let weights = super::init::parse(args, use_bias.unwrap_or(true), errors);
    if class == "Conv2DTranspose" && dilation.as_ref().is_some_and(|d| d.iter().any(|d| *d > 1)) {
        errors.over(args.call, "kiln's Conv2DTranspose takes dilation_rate = 1");
    }
    Some(Rc::new(Conv {
        class,
        geometry: Geometry {
            rank,
            kernel: kernel?,
            strides: strides?,
            dilation: dilation?,
            same: pad?.0,
            causal: pad?.1,
        },
        filters: filters?,
        multiplier: multiplier?,
        groups: groups?,
        act: act?,
        use_bias: use_bias?,
        weights: weights?,
    }))
}

impl Spec for Conv {
    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        if self.class == "Conv2DTranspose" {
            let win = self.transposed(&ins[0])?;
            return Ok(vec![win.h, win.w, self.filters]);
        }
        let win = self.geometry.window(self.class, &ins[0])?;
        if !win.c.is_multiple_of(self.groups) || !self.filters.is_multiple_of(self.groups) {
            return Err(format!(
                "{}'s groups = {} must divide both the input channels ({}) and the filters ({})",
                self.class, self.groups, win.c, self.filters
            ));
        }
        let channels = if self.depthwise() { win.c * self.multiplier } else { self.filters };
        Ok(self.geometry.output(&win, channels))
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let (rt, a) = (rt(), format_ident!("{}", self.act.ty));
        let ty = format_ident!(
            "{}",
            match self.class {
                "DepthwiseConv2D" => "Depthwise",
                "SeparableConv2D" => "Separable",
                "Conv2DTranspose" => "ConvTranspose",
                _ => "Conv",
            }
        );
        quote!(#rt::#ty<#rt::#a>)
    }

    fn constructor(&self, ins: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        self.weights.wrap(self.build(ins, shapes))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let c = *ins[0].last()?;
        let k = &self.geometry.kernel;
        let with = |mut v: Vec<usize>, tail: [usize; 2]| {
            v.extend(tail);
            v
        };
        let (mut p, bias) = match self.class {
            "DepthwiseConv2D" => (vec![("kernel", with(k.clone(), [c, self.multiplier]))], c * self.multiplier),
            "SeparableConv2D" => (
                vec![
                    ("depthwise_kernel", with(k.clone(), [c, self.multiplier])),
                    ("pointwise_kernel", vec![1, 1, c * self.multiplier, self.filters]),
                ],
                self.filters,
            ),
            "Conv2DTranspose" => (vec![("kernel", with(k.clone(), [self.filters, c]))], self.filters),
            _ => (vec![("kernel", with(k.clone(), [c / self.groups, self.filters]))], self.filters),
        };
        if self.use_bias {
            p.push(("bias", vec![bias]));
        }
        Some(p)
    }

    fn activation(&self) -> Option<&'static str> {
        Some(self.act.name)
    }

    fn softmax_output(&self, _out: &[usize]) -> bool {
        self.act.is_softmax()
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        use crate::ir::Static;
        let act = self.act.ty;
        if self.class == "Conv2DTranspose" {
            return Some(Static::ConvTranspose { win: self.transposed(&ins[0]).ok()?.infer_tokens(), act });
        }
        let window = self.geometry.window(self.class, &ins[0]).ok()?;
        let win = window.infer_tokens();
        match self.class {
            "Conv1D" | "Conv2D" => Some(Static::Conv { win, filters: self.filters, groups: self.groups, act }),
            "DepthwiseConv2D" => Some(Static::Depthwise { win, multiplier: self.multiplier, act }),
            "SeparableConv2D" => Some(Static::Separable {
                win,
                multiplier: self.multiplier,
                filters: self.filters,
                act,
                work: window.oh * window.ow * window.c * self.multiplier,
            }),
            _ => None,
        }
    }
}

struct Pool {
    class: &'static str,
    geometry: Geometry,
    max: bool,
}

fn build_pool(args: &Args<'_>, errors: &mut Errors, class: &'static str) -> Option<Rc<dyn Spec>> {
    let rank = if class.ends_with("1D") { 1 } else { 2 };
    let pool = per_axis(args, class, "pool_size", rank, Some(2), errors);
    let strides = match args.get("strides") {
        None => pool.clone(),
        Some(_) => per_axis(args, class, "strides", rank, None, errors),
    };
    let pad = padding(args, errors);
    Some(Rc::new(Pool {
        class,
        geometry: Geometry {
            rank,
            kernel: pool?,
            strides: strides?,
            dilation: vec![1; rank],
            same: pad?.0,
            causal: false,
        },
        max: class.starts_with("Max"),
    }))
}

impl Spec for Pool {
    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let win = self.geometry.window(self.class, &ins[0])?;
        Ok(self.geometry.output(&win, win.c))
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Pool)
    }

    fn constructor(&self, _: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let win = self.geometry.window(self.class, &shapes[0]).map(|w| w.tokens()).unwrap_or_default();
        let kind = if self.max { quote!(#rt::PoolKind::Max) } else { quote!(#rt::PoolKind::Average) };
        quote!(#rt::Pool::new(#win, #kind))
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let win = self.geometry.window(self.class, &ins[0]).ok()?.infer_tokens();
        Some(crate::ir::Static::Pool { win, max: self.max })
    }
}

struct Global {
    class: &'static str,
    rank: usize,
    max: bool,
}

fn build_global(_: &Args<'_>, _: &mut Errors, class: &'static str) -> Option<Rc<dyn Spec>> {
    Some(Rc::new(Global {
        class,
        rank: if class.ends_with("1D") { 2 } else { 3 },
        max: class.starts_with("GlobalMax"),
    }))
}

/// Global pooling over the steps (`rank` 2) or the pixels (3) of its input: the subclass style's
/// `global_average_pooling(x)` and `global_max_pooling(x)`.
pub fn global_pool(max: bool, rank: usize) -> Rc<dyn Spec> {
    let class = match (max, rank) {
        (true, 2) => "GlobalMaxPooling1D",
        (true, _) => "GlobalMaxPooling2D",
        (false, 2) => "GlobalAveragePooling1D",
        (false, _) => "GlobalAveragePooling2D",
    };
    Rc::new(Global { class, rank, max })
}

impl Spec for Global {
    fn uses_mask(&self) -> bool {
        !self.max && self.rank == 2
    }

    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.len() != self.rank {
            let form = if self.rank == 2 { "[steps, channels]" } else { "[height, width, channels]" };
            return Err(format!("{} expects an input of rank {} {form}, got {}", self.class, self.rank, show(input)));
        }
        Ok(vec![input[self.rank - 1]])
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::GlobalPool)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let dims = &ins[0];
        let c = dims.last().cloned().unwrap_or_default();
        let positions = super::product(&dims[..dims.len().saturating_sub(1)]);
        let kind = if self.max { quote!(#rt::PoolKind::Max) } else { quote!(#rt::PoolKind::Average) };
        quote!(#rt::GlobalPool::new(#positions, #c, #kind))
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Global { max: self.max })
    }
}
