//! The weights blob of the generated `infer`: every parameter laid out in one byte string, read
//! in place from the binary's static data, with the matrix kernels in the precision asked for
//! (f32, bf16, f16, or int8 with one scale per output channel).

use proc_macro2::TokenStream;
use quote::quote;

use crate::ir::{LayerDef, Model, Static};
use crate::weights_file::Precision;

/// The bytes a layer's weights take as `infer` embeds them in a precision (alignment padding
/// aside); `None` when only rustc knows its parameters.
fn layer_bytes(model: &Model, l: &LayerDef, precision: Precision) -> Option<usize> {
    let n = &model.nodes[l.apps[0]];
    let st = l.kind.infer(&n.input_shapes, &n.output_shape);
    let kernels = st.as_ref().map_or(&[][..], Static::kernels);
    let params = l.kind.params(&n.input_shapes)?;
    Some(
        params
            .iter()
            .map(|(p, s)| {
                let count: usize = s.iter().product();
                let Some(&(_, pairs)) = kernels.iter().find(|(k, _)| k == p) else { return 4 * count };
                let (rows, cols) = matrix(p, s, pairs);
                // Pairs of rows: an odd block of a Dense's or convolution's rows gets a zero row.
                let padded = if pairs { count / (rows * cols) * rows.next_multiple_of(2) * cols } else { count };
                match precision {
                    Precision::Int8 => padded + 4 * cols,
                    Precision::Bf16 | Precision::F16 => 2 * count,
                    Precision::F32 => 4 * count,
                }
            })
            .sum(),
    )
}

/// How a quantised kernel of shape `s` is read: rows of one block (the pairs int8 interleaves)
/// and columns (its output channels, one int8 scale each). A matrix product's kernel is
/// `[.., rows, cols]`, an attention projection `[features, heads, dim]` (rows: the features) and
/// its output `[heads, dim, out]` (columns: the output); a depthwise kernel's channels are its last
/// two axes.
pub fn matrix(name: &str, s: &[usize], pairs: bool) -> (usize, usize) {
    let r = s.len();
    match (name, pairs) {
        ("query_kernel" | "key_kernel" | "value_kernel", _) => (s[0], s[1..].iter().product()),
        ("attention_output_kernel", _) => (s[..r - 1].iter().product(), s[r - 1]),
        (_, true) => (s[r - 2], s[r - 1]),
        (_, false) => (s[r - 2], s[r - 2] * s[r - 1]),
    }
}

/// The layer with the most weight bytes in this precision, and the bytes.
pub fn largest_weights(model: &Model, precision: Precision) -> Option<(String, usize)> {
    model
        .layers
        .iter()
        .filter(|l| !l.kind.is_view())
        .filter_map(|l| Some((l.name.to_string(), layer_bytes(model, l, precision)?)))
        .max_by_key(|(_, b)| *b)
}
/// Lays the embedded weights out in one byte string, each tensor at an aligned offset.
pub struct Blob {
    pub bytes: Vec<u8>,
    precision: Precision,
    /// Each parameter's expression once laid out (a shared layer's weights are stored once).
    seen: std::collections::HashMap<String, TokenStream>,
}

impl Blob {
    /// An empty blob laying kernels out in `precision`.
    pub fn new(precision: Precision) -> Blob {
        Blob { bytes: Vec::new(), precision, seen: Default::default() }
    }

    /// The expression for parameter `key`, laid out by `make` the first time.
    pub fn named(&mut self, key: String, make: impl FnOnce(&mut Blob) -> TokenStream) -> TokenStream {
        if let Some(t) = self.seen.get(&key) {
            return t.clone();
        }
        let t = make(self);
        self.seen.insert(key, t.clone());
        t
    }

    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }

    /// f32 values; the expression reading them in place.
    pub fn f32s(&mut self, vals: &[f32]) -> TokenStream {
        self.align(4);
        let (start, len) = (self.bytes.len(), vals.len());
        self.bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        quote!(::kiln::infer::f32s(__w, #start, #len))
    }

    /// A kernel whose last axes (`cols` values per row) are its output channels, in the blob's
    /// precision; the `Kernel` expression. `block` is the rows of one input block (a Dense's
    /// inputs, a convolution's channels per window position), which int8 stores in interleaved
    /// pairs for the 16-bit multiply-add; `None` keeps rows plain (depthwise kernels).
    pub fn kernel(&mut self, vals: &[f32], cols: usize, block: Option<usize>) -> TokenStream {
        match self.precision {
            Precision::F32 => {
                let v = self.f32s(vals);
                quote!(::kiln::infer::Kernel::F32(#v))
            }
            Precision::Bf16 => {
                self.align(2);
                let (start, len) = (self.bytes.len(), vals.len());
                for &v in vals {
                    self.bytes.extend(bf16(v).to_le_bytes());
                }
                quote!(::kiln::infer::Kernel::Bf16(::kiln::infer::bf16s(__w, #start, #len)))
            }
            Precision::F16 => {
                self.align(2);
                let (start, len) = (self.bytes.len(), vals.len());
                for &v in vals {
                    self.bytes.extend(f16(v).to_le_bytes());
                }
                quote!(::kiln::infer::Kernel::F16(::kiln::infer::f16s(__w, #start, #len)))
            }
            Precision::Int8 => {
                let (q, scales) = quantise(vals, cols);
                let s = self.f32s(&scales);
                let start = self.bytes.len();
                let Some(rows) = block.filter(|&r| r > 0 && cols > 0) else {
                    self.bytes.extend(q.iter().map(|&v| v as u8));
                    let len = q.len();
                    return quote!(::kiln::infer::Kernel::Int8(::kiln::infer::i8s(__w, #start, #len), #s));
                };
                for b in q.chunks(rows * cols) {
                    for p in 0..rows.div_ceil(2) {
                        for j in 0..cols {
                            self.bytes.push(b[2 * p * cols + j] as u8);
                            self.bytes.push(if 2 * p + 1 < rows { b[(2 * p + 1) * cols + j] as u8 } else { 0 });
                        }
                    }
                }
                let len = self.bytes.len() - start;
                quote!(::kiln::infer::Kernel::Int8Pairs(::kiln::infer::i8s(__w, #start, #len), #s))
            }
        }
    }
}

/// The IEEE half-precision bits nearest to `x` (ties to even; beyond 65504 infinity, below
/// 2^-24 zero, subnormals in between).
fn f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let a = x.abs();
    if a.is_nan() {
        return sign | 0x7e00;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 6.103_515_6e-5 {
        // Subnormal: a multiple of 2^-24, rounded to even.
        return sign | (a * 16_777_216.0).round_ties_even() as u16;
    }
    let e = ((a.to_bits() >> 23) as i32) - 127 + 15;
    let m = a.to_bits() & 0x7f_ffff;
    let half = ((e as u32) << 10) | (m >> 13);
    let rest = m & 0x1fff;
    let up = rest > 0x1000 || (rest == 0x1000 && half & 1 == 1);
    sign | (half + up as u32) as u16
}

/// The bfloat16 bits nearest to `x` (ties to even).
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x40;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Symmetric int8 with one scale per output channel (column): `w ≈ q · scale`, `q` in
/// `-127..=127`, the column's largest magnitude mapped to 127.
fn quantise(vals: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut max = vec![0f32; cols];
    for (i, v) in vals.iter().enumerate() {
        max[i % cols] = max[i % cols].max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = vals.iter().enumerate().map(|(i, v)| (v / scales[i % cols]).round().clamp(-127.0, 127.0) as i8).collect();
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_keeps_each_column_within_half_a_step() {
        let vals: Vec<f32> =
            (0..40).map(|i| ((i * 37 % 17) as f32 - 8.0) * if i % 2 == 0 { 0.01 } else { 3.0 }).collect();
        let (q, s) = quantise(&vals, 2);
        for (i, v) in vals.iter().enumerate() {
            assert!((q[i] as f32 * s[i % 2] - v).abs() <= s[i % 2] / 2.0 + 1e-7);
        }
        assert_eq!(bf16(1.0), 0x3f80);
        for (x, h) in
            [(1.0f32, 0x3c00u16), (-2.0, 0xc000), (65504.0, 0x7bff), (1e6, 0x7c00), (5.960_464_5e-8, 1), (0.0, 0)]
        {
            assert_eq!(f16(x), h, "{x}");
        }
        assert_eq!(f16(1.0 + 1.0 / 2048.0), 0x3c00); // a tie rounds to even
        assert_eq!(f16(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // a tie rounds to even
    }
}
