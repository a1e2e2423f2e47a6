//! `ZeroPadding2D(padding)`, `Cropping2D(cropping)` and `UpSampling2D(size)` on `[height, width,
//! channels]`. `padding` / `cropping` is one number for every side, `[rows, columns]`, or
//! `[top, bottom, left, right]` (Keras' `((top, bottom), (left, right))`, flattened).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::parse::{Errors, Value};

pub const ZERO_PADDING2D: Kind = Kind {
    class: "ZeroPadding2D",
    args: &["padding"],
    arity: Arity::One,
    build: |a, e| sides(a, e, "ZeroPadding2D", "padding"),
};
pub const CROPPING2D: Kind = Kind {
    class: "Cropping2D",
    args: &["cropping"],
    arity: Arity::One,
    build: |a, e| sides(a, e, "Cropping2D", "cropping"),
};
pub const UP_SAMPLING2D: Kind =
    Kind { class: "UpSampling2D", args: &["size", "interpolation"], arity: Arity::One, build: up_sampling };

enum Op {
    Pad([usize; 4]),
    Crop([usize; 4]),
    Up(usize, usize),
}

struct Resample {
    class: &'static str,
    op: Op,
}

fn sides(args: &Args<'_>, errors: &mut Errors, class: &'static str, key: &str) -> Option<Rc<dyn Spec>> {
    let v = match args.get(key) {
        None => [1, 1, 1, 1],
        Some(Value::Int(i, _)) if *i >= 0 => [*i as usize; 4],
        Some(Value::List(l, _)) if l.len() == 2 && l.iter().all(|v| *v >= 0) => {
            [l[0] as usize, l[0] as usize, l[1] as usize, l[1] as usize]
        }
        Some(Value::List(l, _)) if l.len() == 4 && l.iter().all(|v| *v >= 0) => {
            [l[0] as usize, l[1] as usize, l[2] as usize, l[3] as usize]
        }
        Some(v) => {
            errors.at(
                v.span(),
                format!("{class}'s {key} is a number >= 0, [rows, columns] or [top, bottom, left, right]"),
            );
            return None;
        }
    };
    let op = if class == "Cropping2D" { Op::Crop(v) } else { Op::Pad(v) };
    Some(Rc::new(Resample { class, op }))
}

fn up_sampling(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let (sy, sx) = match args.get("size") {
        None => (2, 2),
        Some(Value::Int(i, _)) if *i >= 1 => (*i as usize, *i as usize),
        Some(Value::List(l, _)) if l.len() == 2 && l.iter().all(|v| *v >= 1) => (l[0] as usize, l[1] as usize),
        Some(v) => {
            errors.at(v.span(), "UpSampling2D's size is a number >= 1 or [rows, columns]");
            return None;
        }
    };
    match args.get("interpolation") {
        None => {}
        Some(Value::Ident(i)) if i == "nearest" => {}
        Some(Value::Str(s, _)) if s == "nearest" => {}
        Some(v) => {
            errors.at(v.span(), "kiln's UpSampling2D interpolates nearest (bilinear is not there yet)");
            return None;
        }
    }
    Some(Rc::new(Resample { class: "UpSampling2D", op: Op::Up(sy, sx) }))
}

impl Spec for Resample {
    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.len() != 3 {
            return Err(format!(
                "{} expects an input of rank 3 [height, width, channels], got {}",
                self.class,
                show(input)
            ));
        }
        let (h, w, c) = (input[0], input[1], input[2]);
        match self.op {
            Op::Pad([t, b, l, r]) => Ok(vec![h + t + b, w + l + r, c]),
            Op::Crop([t, b, l, r]) => {
                if t + b >= h || l + r >= w {
                    return Err(format!(
                        "Cropping2D cannot crop {t}+{b} rows and {l}+{r} columns from {}: nothing would be left",
                        show(input)
                    ));
                }
                Ok(vec![h - t - b, w - l - r, c])
            }
            Op::Up(sy, sx) => Ok(vec![h * sy, w * sx, c]),
        }
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Resample)
    }

    fn constructor(&self, _: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (h, w, c) = (shapes[0][0], shapes[0][1], shapes[0][2]);
        match self.op {
            Op::Pad([t, b, l, r]) => quote!(#rt::Resample::zero_padding(#h, #w, #c, #t, #b, #l, #r)),
            Op::Crop([t, b, l, r]) => quote!(#rt::Resample::cropping(#h, #w, #c, #t, #b, #l, #r)),
            Op::Up(sy, sx) => quote!(#rt::Resample::up_sampling(#h, #w, #c, #sy, #sx)),
        }
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ship::Static> {
        let op = match self.op {
            Op::Pad([top, _, left, _]) => quote!(::kiln::infer::Resize::Pad { top: #top, left: #left }),
            Op::Crop([top, _, left, _]) => quote!(::kiln::infer::Resize::Crop { top: #top, left: #left }),
            Op::Up(sy, sx) => quote!(::kiln::infer::Resize::Up { sy: #sy, sx: #sx }),
        };
        Some(crate::ship::Static::Resample { op })
    }
}
