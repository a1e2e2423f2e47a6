//! `ZeroPadding2D(padding)`, `Cropping2D(cropping)` and `UpSampling2D(size)` on `[height, width,
//! channels]`. `padding` / `cropping` is one number for every side, `[rows, columns]`, or
//! `[top, bottom, left, right]` (Keras' `((top, bottom), (left, right))`, flattened).
//! `ZeroPadding1D(padding)`, `Cropping1D(cropping)` (one number, or `[start, end]`) and
//! `UpSampling1D(size)` on `[steps, channels]`, and `RepeatVector(n)`, `[features]` to `[n,
//! features]`: the same runtime layer over a one-row image (`[1, steps, channels]`, `[1, 1,
//! features]`).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

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
pub const ZERO_PADDING1D: Kind = Kind {
    class: "ZeroPadding1D",
    args: &["padding"],
    arity: Arity::One,
    build: |a, e| ends(a, e, "ZeroPadding1D", "padding"),
};
pub const CROPPING1D: Kind = Kind {
    class: "Cropping1D",
    args: &["cropping"],
    arity: Arity::One,
    build: |a, e| ends(a, e, "Cropping1D", "cropping"),
};
pub const UP_SAMPLING1D: Kind =
    Kind { class: "UpSampling1D", args: &["size"], arity: Arity::One, build: up_sampling_1d };
pub const REPEAT_VECTOR: Kind = Kind { class: "RepeatVector", args: &["n"], arity: Arity::One, build: repeat_vector };

enum Op {
    Pad([usize; 4]),
    Crop([usize; 4]),
    Up(usize, usize),
}

struct Resample {
    class: &'static str,
    op: Op,
    /// The rank of its input: 3 (an image), 2 (steps), 1 (RepeatVector's vector).
    rank: usize,
}

/// An input of `rank` as the one-row image the runtime layer works on: `[h, w, c]`.
pub fn as_image(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [h, w, c] => (*h, *w, *c),
        [w, c] => (1, *w, *c),
        [c] => (1, 1, *c),
        _ => (0, 0, 0),
    }
}

/// `ZeroPadding1D` / `Cropping1D`: one number for both ends, or `[start, end]`.
fn ends(args: &Args<'_>, errors: &mut Errors, class: &'static str, key: &str) -> Option<Rc<dyn Spec>> {
    let (a, b) = match args.get(key) {
        None => (1, 1),
        Some(Value::Int(i, _)) if *i >= 0 => (*i as usize, *i as usize),
        Some(Value::List(l, _)) if l.len() == 2 && l.iter().all(|v| *v >= 0) => (l[0] as usize, l[1] as usize),
        Some(v) => {
            errors.at(v.span(), format!("{class}'s {key} is a number >= 0 or [start, end]"));
            return None;
        }
    };
    let op = if class == "Cropping1D" { Op::Crop([0, 0, a, b]) } else { Op::Pad([0, 0, a, b]) };
    Some(Rc::new(Resample { class, op, rank: 2 }))
}

fn up_sampling_1d(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let size = match args.get("size") {
        None => 2,
        Some(Value::Int(i, _)) if *i >= 1 => *i as usize,
        Some(v) => {
            errors.at(v.span(), "UpSampling1D's size is a number >= 1");
            return None;
        }
    };
    Some(Rc::new(Resample { class: "UpSampling1D", op: Op::Up(1, size), rank: 2 }))
}

fn repeat_vector(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let n = match args.get("n") {
        Some(Value::Int(i, _)) if *i >= 1 => *i as usize,
        Some(v) => {
            errors.at(v.span(), "RepeatVector's n is a number >= 1");
            return None;
        }
        None => {
            errors.over(args.call, "RepeatVector needs how many times to repeat, e.g. RepeatVector(8)");
            return None;
        }
    };
    Some(Rc::new(Resample { class: "RepeatVector", op: Op::Up(1, n), rank: 1 }))
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
    Some(Rc::new(Resample { class, op, rank: 3 }))
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
    Some(Rc::new(Resample { class: "UpSampling2D", op: Op::Up(sy, sx), rank: 3 }))
}

impl Spec for Resample {
    fn class(&self) -> &'static str {
        self.class
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.len() != self.rank {
            let form = match self.rank {
                3 => "rank 3 [height, width, channels]",
                2 => "rank 2 [steps, channels]",
                _ => "a vector [features]",
            };
            return Err(format!("{} expects an input of {form}, got {}", self.class, show(input)));
        }
        let (h, w, c) = as_image(input);
        let (oh, ow) = match self.op {
            Op::Pad([t, b, l, r]) => (h + t + b, w + l + r),
            Op::Crop([t, b, l, r]) => {
                if t + b >= h.max(1) && self.rank == 3 || l + r >= w {
                    let what = if self.rank == 3 {
                        format!("{t}+{b} rows and {l}+{r} columns")
                    } else {
                        format!("{l}+{r} steps")
                    };
                    return Err(format!(
                        "{} cannot crop {what} from {}: nothing would be left",
                        self.class,
                        show(input)
                    ));
                }
                (h - t - b, w - l - r)
            }
            Op::Up(sy, sx) => (h * sy, w * sx),
        };
        Ok(match self.rank {
            3 => vec![oh, ow, c],
            _ => vec![ow, c],
        })
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Resample)
    }

    fn constructor(&self, _: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (h, w, c) = as_image(&shapes[0]);
        match self.op {
            Op::Pad([t, b, l, r]) => quote!(#rt::Resample::zero_padding(#h, #w, #c, #t, #b, #l, #r)),
            Op::Crop([t, b, l, r]) => quote!(#rt::Resample::cropping(#h, #w, #c, #t, #b, #l, #r)),
            Op::Up(sy, sx) => quote!(#rt::Resample::up_sampling(#h, #w, #c, #sy, #sx)),
        }
    }

    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        use crate::ir::Resampling;
        let (op, form) = match self.op {
            Op::Pad(v @ [top, _, left, _]) => {
                (quote!(::kiln::infer::Resize::Pad { top: #top, left: #left }), Resampling::Pad(v))
            }
            Op::Crop(v @ [top, _, left, _]) => {
                (quote!(::kiln::infer::Resize::Crop { top: #top, left: #left }), Resampling::Crop(v))
            }
            Op::Up(sy, sx) => (quote!(::kiln::infer::Resize::Up { sy: #sy, sx: #sx }), Resampling::Up(sy, sx)),
        };
        Some(crate::ir::Static::Resample { op, form })
    }
}

/// `Permute(dims)`: Keras' 1-based order of a sample's axes, `Permute([2, 1])` swapping steps
/// and features.
pub const PERMUTE: Kind = Kind { class: "Permute", args: &["dims"], arity: Arity::One, build: permute };

struct Permute {
    /// 0-based: output axis `k` is input axis `order[k]`.
    order: Vec<usize>,
}

/// A sample's axes reordered: output axis `k` is input axis `order[k]` (0-based).
pub fn permute_spec(order: Vec<usize>) -> Rc<dyn Spec> {
    Rc::new(Permute { order })
}

fn permute(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let order = match args.get("dims") {
        Some(Value::List(l, span)) => {
            let mut sorted = l.clone();
            sorted.sort();
            if l.is_empty() || l.len() > 6 || sorted.iter().enumerate().any(|(i, &d)| d != i as i64 + 1) {
                errors.at(
                    *span,
                    "Permute's dims orders a sample's axes, 1-based: a permutation of [1, 2], [1, 2, 3], ..",
                );
                return None;
            }
            l.iter().map(|&d| d as usize - 1).collect()
        }
        Some(v) => {
            errors.at(v.span(), "Permute's dims is a list, e.g. Permute([2, 1])");
            return None;
        }
        None => {
            errors.over(args.call, "Permute needs the new order of the axes, e.g. Permute([2, 1])");
            return None;
        }
    };
    Some(Rc::new(Permute { order }))
}

impl Spec for Permute {
    fn class(&self) -> &'static str {
        "Permute"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let input = &ins[0];
        if input.len() != self.order.len() {
            let dims: Vec<String> = self.order.iter().map(|d| (d + 1).to_string()).collect();
            return Err(format!(
                "Permute([{}]) orders {} axes, but its input {} has {}",
                dims.join(", "),
                self.order.len(),
                show(input),
                input.len()
            ));
        }
        Ok(self.order.iter().map(|&o| input[o]).collect())
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Permute)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, shape, order) = (rt(), &ins[0], &self.order);
        quote!(#rt::Permute::new(&[#(#shape),*], &[#(#order),*]))
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        // The static kernel takes samples of rank 3 or less.
        (ins[0].len() <= 3).then(|| crate::ir::Static::Permute { shape: ins[0].clone(), order: self.order.clone() })
    }
}
