//! User math: element-wise chains of `UnaryOp`s as ONNX operators, and ranks lifted so that
//! ONNX's broadcasting pairs the axes as user math does within each sample.

use proc_macro2::TokenStream;

use super::writer::Writer;

/// A user-math `UnaryOp` as written (`Exp`, `Scale(0.5)`, `Clip(0.0, 4.0)`): its name and its
/// constant arguments, `None` for an argument that is not a number literal.
fn unary_op(op: &TokenStream) -> Option<(String, Vec<f32>)> {
    let number = |e: &syn::Expr| -> Option<f32> {
        match e {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse().ok(),
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => {
                i.base10_parse::<i64>().ok().map(|v| v as f32)
            }
            syn::Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => {
                    f.base10_parse::<f32>().ok().map(|v| -v)
                }
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => {
                    i.base10_parse::<i64>().ok().map(|v| -v as f32)
                }
                _ => None,
            },
            _ => None,
        }
    };
    let last = |p: &syn::Path| p.segments.last().map(|s| s.ident.to_string());
    match syn::parse2::<syn::Expr>(op.clone()).ok()? {
        syn::Expr::Path(p) => Some((last(&p.path)?, vec![])),
        syn::Expr::Call(c) => {
            let syn::Expr::Path(f) = &*c.func else { return None };
            Some((last(&f.path)?, c.args.iter().map(number).collect::<Option<_>>()?))
        }
        _ => None,
    }
}

/// The axis of a sample of `shape` that user math's `[outer, len, inner]` view reduces, slices or
/// normalises (the last that fits, for axes of size 1).
pub(super) fn middle_axis(shape: &[usize], len: usize, inner: usize) -> Option<usize> {
    (0..shape.len()).rev().find(|&k| shape[k] == len && shape[k + 1..].iter().product::<usize>() == inner)
}

impl Writer {
    /// User math's element-wise chain on `x`, the last op's output named `out`.
    pub(super) fn unary(&mut self, x: &str, ops: &[TokenStream], out: &str) -> Option<String> {
        let mut h = x.to_string();
        for (i, op) in ops.iter().enumerate() {
            let name = (i + 1 == ops.len()).then_some(out);
            let (op, args) = unary_op(op)?;
            h = match (op.as_str(), &args[..]) {
                ("Negative", []) => self.node("Neg", &[&h], vec![], name),
                ("Exp" | "Log" | "Sqrt" | "Abs", []) => self.node(&op, &[&h], vec![], name),
                ("Square", []) => self.node("Mul", &[&h, &h], vec![], name),
                ("StopGradient", []) => self.node("Identity", &[&h], vec![], name),
                ("Scale" | "Shift" | "DivideBy" | "Power" | "Maximum" | "Minimum", &[c]) => {
                    let onnx = match op.as_str() {
                        "Scale" => "Mul",
                        "Shift" => "Add",
                        "DivideBy" => "Div",
                        "Power" => "Pow",
                        "Maximum" => "Max",
                        _ => "Min",
                    };
                    let c = self.scalar(c);
                    self.node(onnx, &[&h, &c], vec![], name)
                }
                ("SubtractFrom" | "Reciprocal", &[c]) => {
                    let onnx = if op == "SubtractFrom" { "Sub" } else { "Div" };
                    let c = self.scalar(c);
                    self.node(onnx, &[&c, &h], vec![], name)
                }
                ("Clip", &[lo, hi]) => {
                    let (lo, hi) = (self.scalar(lo), self.scalar(hi));
                    self.node("Clip", &[&h, &lo, &hi], vec![], name)
                }
                _ => return None,
            };
        }
        Some(h)
    }

    /// `x` (a sample of rank `rank`) with axes of size 1 inserted after the batch axis up to
    /// rank `to`, so that ONNX's broadcasting, which aligns from the last axis over the batch
    /// axis too, pairs the axes as user math does within each sample.
    pub(super) fn lift_rank(&mut self, x: &str, rank: usize, to: usize) -> String {
        if rank >= to {
            return x.to_string();
        }
        let axes = self.constant(vec![(to - rank) as i64], vec![], (1..=(to - rank) as i64).collect());
        self.node("Unsqueeze", &[x, &axes], vec![], None)
    }
}
