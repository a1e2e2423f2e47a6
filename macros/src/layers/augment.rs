//! Keras 3's image preprocessing layers on `[height, width, channels]`: the augmentation layers
//! `RandomFlip(mode)`, `RandomTranslation(height_factor, width_factor, fill_mode, fill_value)`,
//! `RandomRotation(factor, fill_mode, fill_value)`, `RandomZoom(height_factor, width_factor, ..)`,
//! `RandomContrast(factor, value_range)` and `RandomBrightness(factor, value_range)`, active in
//! training only; and `Resizing(height, width, interpolation, crop_to_aspect_ratio)` and
//! `CenterCrop(height, width)`, active in inference too.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

pub const RANDOM_FLIP: Kind = Kind { class: "RandomFlip", args: &["mode", "seed"], arity: Arity::One, build: flip };
pub const RANDOM_TRANSLATION: Kind = Kind {
    class: "RandomTranslation",
    args: &["height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value"],
    arity: Arity::One,
    build: translation,
};
pub const RANDOM_ROTATION: Kind = Kind {
    class: "RandomRotation",
    args: &["factor", "fill_mode", "interpolation", "seed", "fill_value"],
    arity: Arity::One,
    build: rotation,
};
pub const RANDOM_ZOOM: Kind = Kind {
    class: "RandomZoom",
    args: &["height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value"],
    arity: Arity::One,
    build: zoom,
};
pub const RANDOM_CONTRAST: Kind =
    Kind { class: "RandomContrast", args: &["factor", "value_range", "seed"], arity: Arity::One, build: contrast };
pub const RANDOM_BRIGHTNESS: Kind =
    Kind { class: "RandomBrightness", args: &["factor", "value_range", "seed"], arity: Arity::One, build: brightness };
pub const RESIZING: Kind = Kind {
    class: "Resizing",
    args: &["height", "width", "interpolation", "crop_to_aspect_ratio"],
    arity: Arity::One,
    build: |a, e| size(a, e, Crop::No),
};
pub const RANDOM_CROP: Kind = Kind {
    class: "RandomCrop",
    args: &["height", "width", "seed"],
    arity: Arity::One,
    build: |a, e| {
        no_seed(a, e)?;
        size(a, e, Crop::Random)
    },
};
pub const CENTER_CROP: Kind =
    Kind { class: "CenterCrop", args: &["height", "width"], arity: Arity::One, build: |a, e| size(a, e, Crop::Center) };

/// Which of the sizing layers `size` builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crop {
    No,
    Center,
    Random,
}

enum Op {
    Flip { horizontal: bool, vertical: bool },
    Translation { height: (f32, f32), width: (f32, f32), mode: &'static str, fill: f32 },
    Rotation { factor: (f32, f32), mode: &'static str, fill: f32 },
    Zoom { height: (f32, f32), width: Option<(f32, f32)>, mode: &'static str, fill: f32 },
    Contrast { factor: (f32, f32), range: (f32, f32) },
    Brightness { factor: (f32, f32), range: (f32, f32) },
    Resizing { height: usize, width: usize, crop: bool },
    CenterCrop { height: usize, width: usize },
    RandomCrop { height: usize, width: usize },
}

struct Augment {
    class: &'static str,
    op: Op,
}

fn spec(class: &'static str, op: Op) -> Option<Rc<dyn Spec>> {
    Some(Rc::new(Augment { class, op }))
}

/// A string argument written as a string or a bare name.
fn text(args: &Args<'_>, key: &str) -> Option<(String, proc_macro2::Span)> {
    match args.get(key)? {
        Value::Str(s, span) => Some((s.clone(), *span)),
        Value::Ident(i) => Some((i.to_string(), i.span())),
        v => Some((String::new(), v.span())),
    }
}

/// kiln draws from the model's stream: a layer's own `seed` is refused where it is written.
fn no_seed(args: &Args<'_>, errors: &mut Errors) -> Option<()> {
    if let Some(v) = args.get("seed") {
        errors.at(
            v.span(),
            format!(
                "{}'s random draws come from the model's seeded stream: set the seed with `Model::with_seed(s)` \
                 instead of `seed`",
                args.class
            ),
        );
        return None;
    }
    Some(())
}

/// Keras' `factor`: one number `f` in `bounds` is the range `(max(-|f|, bounds.0), |f|)`.
fn factor(args: &Args<'_>, key: &str, bounds: (f64, f64), errors: &mut Errors) -> Option<(f32, f32)> {
    let (v, span) = match args.get(key) {
        Some(Value::Float(f, s)) => (*f, *s),
        Some(Value::Int(i, s)) => (*i as f64, *s),
        Some(v) => {
            errors.at(v.span(), format!("{}'s `{key}` argument should be a number, e.g. {key} = 0.2", args.class));
            return None;
        }
        None => {
            errors.over(args.call, format!("{} needs its {key}, e.g. {}(0.2)", args.class, args.class));
            return None;
        }
    };
    if !(bounds.0..=bounds.1).contains(&v) {
        errors.at(
            span,
            format!(
                "The `{key}` argument should be a number in the range [{}, {}]. Received: {key}={v}",
                bounds.0, bounds.1
            ),
        );
        return None;
    }
    Some(((-v.abs()).max(bounds.0) as f32, v.abs() as f32))
}

/// `value_range = [low, high]`, default `[0, 255]`.
fn value_range(args: &Args<'_>, errors: &mut Errors) -> Option<(f32, f32)> {
    match args.get("value_range") {
        None => Some((0.0, 255.0)),
        Some(Value::List(l, _)) if l.len() == 2 && l[0] < l[1] => Some((l[0] as f32, l[1] as f32)),
        Some(v) => {
            errors.at(
                v.span(),
                format!(
                    "{}'s `value_range` should be a list of two numbers, low then high, e.g. [0, 255] or [0, 1]",
                    args.class
                ),
            );
            None
        }
    }
}

fn flip(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let (horizontal, vertical) = match text(args, "mode").as_ref().map(|(s, span)| (s.as_str(), *span)) {
        None | Some(("horizontal_and_vertical", _)) => (true, true),
        Some(("horizontal", _)) => (true, false),
        Some(("vertical", _)) => (false, true),
        Some((_, span)) => {
            errors.at(
                span,
                "RandomFlip received an unknown mode argument: it is \"horizontal\", \"vertical\" or \
                 \"horizontal_and_vertical\"",
            );
            return None;
        }
    };
    spec("RandomFlip", Op::Flip { horizontal, vertical })
}

/// `fill_mode`, `interpolation` and `fill_value` of the geometric layers.
fn fill(args: &Args<'_>, errors: &mut Errors) -> Option<(&'static str, f32)> {
    let mode = match text(args, "fill_mode").as_ref().map(|(s, span)| (s.as_str(), *span)) {
        None | Some(("reflect", _)) => "Reflect",
        Some(("constant", _)) => "Constant",
        Some(("nearest", _)) => "Nearest",
        Some((_, span)) => {
            errors.at(
                span,
                format!(
                    "kiln's {} fill_mode is \"reflect\", \"constant\" or \"nearest\" (not \"wrap\" yet)",
                    args.class
                ),
            );
            return None;
        }
    };
    if let Some((i, span)) = text(args, "interpolation").filter(|(i, _)| *i != "bilinear") {
        errors.at(
            span,
            format!("kiln's {} interpolates bilinearly (interpolation = \"bilinear\"), not {i:?}", args.class),
        );
        return None;
    }
    let finite: fn(f64) -> bool = f64::is_finite;
    let fill = args.number("fill_value", 0.0, (finite, "a finite number"), errors)? as f32;
    Some((mode, fill))
}

fn translation(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let height = factor(args, "height_factor", (-1.0, 1.0), errors);
    let width = factor(args, "width_factor", (-1.0, 1.0), errors);
    let (mode, fill) = fill(args, errors)?;
    spec("RandomTranslation", Op::Translation { height: height?, width: width?, mode, fill })
}

fn rotation(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let factor = factor(args, "factor", (-1.0, 1.0), errors);
    let (mode, fill) = fill(args, errors)?;
    spec("RandomRotation", Op::Rotation { factor: factor?, mode, fill })
}

fn zoom(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let height = factor(args, "height_factor", (-1.0, 1.0), errors);
    let width = match args.get("width_factor") {
        Some(_) => Some(factor(args, "width_factor", (-1.0, 1.0), errors)?),
        None => None,
    };
    let (mode, fill) = fill(args, errors)?;
    spec("RandomZoom", Op::Zoom { height: height?, width, mode, fill })
}

fn contrast(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let factor = factor(args, "factor", (0.0, 1.0), errors);
    let range = value_range(args, errors);
    spec("RandomContrast", Op::Contrast { factor: factor?, range: range? })
}

fn brightness(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    no_seed(args, errors)?;
    let factor = factor(args, "factor", (-1.0, 1.0), errors);
    let range = value_range(args, errors);
    spec("RandomBrightness", Op::Brightness { factor: factor?, range: range? })
}

/// `Resizing(height, width, ..)`, `CenterCrop(height, width)` and `RandomCrop(height, width)`.
fn size(args: &Args<'_>, errors: &mut Errors, crop: Crop) -> Option<Rc<dyn Spec>> {
    let class = match crop {
        Crop::No => "Resizing",
        Crop::Center => "CenterCrop",
        Crop::Random => "RandomCrop",
    };
    let example = format!("{class}(64, 64)");
    let height = args.positive("height", class, &example, errors);
    let width = args.positive("width", class, &example, errors);
    let (Some(height), Some(width)) = (height?, width?) else {
        errors.over(args.call, format!("{class} needs the height and width of its output, e.g. {example}"));
        return None;
    };
    match crop {
        Crop::Center => return spec(class, Op::CenterCrop { height, width }),
        Crop::Random => return spec(class, Op::RandomCrop { height, width }),
        Crop::No => {}
    }
    if let Some((i, span)) = text(args, "interpolation").filter(|(i, _)| *i != "bilinear") {
        errors.at(span, format!("kiln's Resizing interpolates bilinearly (interpolation = \"bilinear\"), not {i:?}"));
        return None;
    }
    let crop = args.boolean("crop_to_aspect_ratio", false, errors)?;
    spec(class, Op::Resizing { height, width, crop })
}

impl Spec for Augment {
    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.len() != 3 {
            return Err(format!(
                "{} expects an image [height, width, channels] (channels_last) per sample, got {}",
                self.class,
                show(input)
            ));
        }
        Ok(match self.op {
            Op::Resizing { height, width, .. }
            | Op::CenterCrop { height, width }
            | Op::RandomCrop { height, width } => {
                vec![height, width, input[2]]
            }
            _ => input.clone(),
        })
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        match self.op {
            Op::Resizing { .. } | Op::CenterCrop { .. } => quote!(#rt::Resize),
            _ => {
                let ty = quote::format_ident!("{}", self.class);
                quote!(#rt::#ty)
            }
        }
    }

    fn constructor(&self, ins: &[Vec<Dim>], _: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (h, w, c) = match &ins[0][..] {
            [h, w, c] => (h, w, c),
            _ => return quote!(::core::unreachable!()),
        };
        let pair = |(a, b): (f32, f32)| quote!((#a, #b));
        match &self.op {
            Op::Flip { horizontal, vertical } => quote!(#rt::RandomFlip::new(#h, #w, #c, #horizontal, #vertical)),
            Op::Translation { height, width, mode, fill } => {
                let (hf, wf, mode) = (pair(*height), pair(*width), quote::format_ident!("{}", mode));
                quote!(#rt::RandomTranslation::new(#h, #w, #c, #hf, #wf, #rt::FillMode::#mode, #fill))
            }
            Op::Rotation { factor, mode, fill } => {
                let (f, mode) = (pair(*factor), quote::format_ident!("{}", mode));
                quote!(#rt::RandomRotation::new(#h, #w, #c, #f, #rt::FillMode::#mode, #fill))
            }
            Op::Zoom { height, width, mode, fill } => {
                let (hf, mode) = (pair(*height), quote::format_ident!("{}", mode));
                let wf = match width {
                    Some(p) => {
                        let p = pair(*p);
                        quote!(::core::option::Option::Some(#p))
                    }
                    None => quote!(::core::option::Option::None),
                };
                quote!(#rt::RandomZoom::new(#h, #w, #c, #hf, #wf, #rt::FillMode::#mode, #fill))
            }
            Op::Contrast { factor, range } => {
                let (f, r) = (pair(*factor), pair(*range));
                quote!(#rt::RandomContrast::new(#h, #w, #c, #f, #r))
            }
            Op::Brightness { factor, range } => {
                let (f, r) = (pair(*factor), pair(*range));
                quote!(#rt::RandomBrightness::new(#h, #w, #c, #f, #r))
            }
            Op::Resizing { height, width, crop } => quote!(#rt::Resize::bilinear(#h, #w, #c, #height, #width, #crop)),
            Op::CenterCrop { height, width } => quote!(#rt::Resize::center_crop(#h, #w, #c, #height, #width)),
            Op::RandomCrop { height, width } => quote!(#rt::RandomCrop::new(#h, #w, #c, #height, #width)),
        }
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (h, w, c) = match ins.first().map(|i| &i[..]) {
            Some(&[h, w, c]) => (h, w, c),
            _ => return None,
        };
        let resize = |(top, left, ch, cw): (usize, usize, usize, usize), oh: usize, ow: usize| {
            Some(crate::ir::Static::Resize { rows: taps(oh, top, ch), cols: taps(ow, left, cw), w, c })
        };
        match self.op {
            Op::Resizing { height, width, crop: false } => resize((0, 0, h, w), height, width),
            Op::Resizing { height, width, crop: true } | Op::RandomCrop { height, width } => {
                resize(aspect_crop(h, w, height, width), height, width)
            }
            Op::CenterCrop { height, width } if height > h || width > w => {
                resize(aspect_crop(h, w, height, width), height, width)
            }
            Op::CenterCrop { height, width } => {
                let window = |out: usize, start: usize| (0..out).map(|i| (start + i, start + i, 0.0)).collect();
                Some(crate::ir::Static::Resize {
                    rows: window(height, (h - height) / 2),
                    cols: window(width, (w - width) / 2),
                    w,
                    c,
                })
            }
            _ => Some(crate::ir::Static::Identity),
        }
    }
}

/// The runtime's `resize::taps` (TensorFlow's half-pixel `compute_interpolation_weights`),
/// computed when the model compiles for `infer`: output coordinates `0..out` read from input
/// coordinates `start..start + len`. `infer_math`'s test holds it to the layer's values.
fn taps(out: usize, start: usize, len: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f32 / out as f32;
    (0..out)
        .map(|i| {
            let at = (i as f32 + 0.5) * scale - 0.5;
            let floor = at.floor();
            let lo = (floor.max(0.0) as usize).min(len - 1);
            let hi = (at.ceil().max(0.0) as usize).min(len - 1);
            (start + lo, start + hi, at - floor)
        })
        .collect()
}

/// The runtime's `aspect_crop`: the centred box `(top, left, height, width)` of an `h × w` image
/// with the aspect of `oh × ow` (Keras' `smart_resize`).
fn aspect_crop(h: usize, w: usize, oh: usize, ow: usize) -> (usize, usize, usize, usize) {
    let ch = ((w * oh) as f32 / ow as f32) as usize;
    let cw = ((h * ow) as f32 / oh as f32) as usize;
    let (ch, cw) = (ch.min(h).max(1), cw.min(w).max(1));
    (((h - ch) as f32 / 2.0) as usize, ((w - cw) as f32 / 2.0) as usize, ch, cw)
}
