//! Windowed layers: convolutions and pooling on kiln's channels-last images (to ONNX's NCHW and
//! back), transposed convolutions, and depthwise kernels as grouped Conv weights.

use proc_macro2::TokenStream;

use super::super::proto::AttributeProto;
use super::writer::{Writer, attr_int, attr_ints, attr_string, pre_activation, window};
use crate::ir::Resampling;

impl Writer {
    /// A Conv of `groups` groups on the channels-last `x` (sample rank and window `at`) by the
    /// ONNX-layout kernel `k` (and `bias`), then the activation `act`, into `own`.
    pub(super) fn conv(
        &mut self,
        x: &str,
        (rank, win): (usize, &TokenStream),
        (k, bias): (&str, Option<&str>),
        groups: usize,
        act: &'static str,
        own: &str,
    ) -> Option<String> {
        let mut extra = vec![k];
        extra.extend(bias);
        let linear = pre_activation(act, own);
        let group = vec![attr_int("group", groups as i64)];
        self.windowed("Conv", x, rank, win, &extra, group, &linear)?;
        self.then(act, &linear, own)
    }

    /// A windowed op on the channels-last `x` of sample rank `rank` (kiln's image as ONNX's
    /// NCHW and back): its attributes from the window (a one-row image is 1-D).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn windowed(
        &mut self,
        op: &str,
        x: &str,
        rank: usize,
        win: &TokenStream,
        extra: &[&str],
        mut attrs: Vec<AttributeProto>,
        out: &str,
    ) -> Option<String> {
        let w = window(win)?;
        let g = |k: &str| w.get(k).copied();
        let pads = |n: i64, k: i64, s: i64, d: i64, p: i64, o: i64| (p, ((o - 1) * s + (k - 1) * d + 1 - n - p).max(0));
        let (pt, pb) = pads(g("h")?, g("kh")?, g("sh")?, g("dh")?, g("ph")?, g("oh")?);
        let (pl, pr) = pads(g("w")?, g("kw")?, g("sw")?, g("dw")?, g("pw")?, g("ow")?);
        let one_d = rank == 2;
        let pick = |a: i64, b: i64| if one_d { vec![b] } else { vec![a, b] };
        attrs.extend([
            attr_ints("kernel_shape", pick(g("kh")?, g("kw")?)),
            attr_ints("strides", pick(g("sh")?, g("sw")?)),
            attr_ints("pads", if one_d { vec![pl, pr] } else { vec![pt, pl, pb, pr] }),
        ]);
        if op == "Conv" {
            attrs.push(attr_ints("dilations", pick(g("dh")?, g("dw")?)));
        }
        let to: Vec<i64> = [0, rank as i64].into_iter().chain(1..rank as i64).collect();
        let back: Vec<i64> = [0].into_iter().chain(2..=rank as i64).chain([1]).collect();
        let t = self.node("Transpose", &[x], vec![attr_ints("perm", to)], None);
        let mut ins = vec![t.as_str()];
        ins.extend(extra);
        let y = self.node(op, &ins, attrs, None);
        Some(self.node("Transpose", &[&y], vec![attr_ints("perm", back)], Some(out)))
    }
}

impl Writer {
    /// ONNX's ConvTranspose on the channels-last image `x` (to NCHW and back), its pads and output
    /// padding from `win`, the convolution from its output back to its input: `None` where the
    /// window cannot be read or needs a negative output padding.
    pub(super) fn transposed(&mut self, x: &str, win: &TokenStream, extra: &[&str], out: &str) -> Option<String> {
        let w = window(win)?;
        let g = |k: &str| w.get(k).copied();
        let mut attrs =
            vec![attr_ints("kernel_shape", vec![g("kh")?, g("kw")?]), attr_ints("strides", vec![g("sh")?, g("sw")?])];
        // The forward convolution reads `n` (this layer's output) with pads `p` at the start and
        // what its `o` outputs need at the end; the transposed one crops the same.
        let side = |n: i64, k: i64, s: i64, p: i64, o: i64| {
            let end = ((o - 1) * s + k - n - p).max(0);
            (p, end, n - ((o - 1) * s + k - p - end))
        };
        let (pt, pb, eh) = side(g("h")?, g("kh")?, g("sh")?, g("ph")?, g("oh")?);
        let (pl, pr, ew) = side(g("w")?, g("kw")?, g("sw")?, g("pw")?, g("ow")?);
        if eh < 0 || ew < 0 || g("dh")? != 1 || g("dw")? != 1 {
            return None;
        }
        attrs.push(attr_ints("pads", vec![pt, pl, pb, pr]));
        if eh > 0 || ew > 0 {
            attrs.push(attr_ints("output_padding", vec![eh, ew]));
        }
        let t = self.node("Transpose", &[x], vec![attr_ints("perm", vec![0, 3, 1, 2])], None);
        let mut ins = vec![t.as_str()];
        ins.extend(extra);
        let y = self.node("ConvTranspose", &ins, attrs, None);
        Some(self.node("Transpose", &[&y], vec![attr_ints("perm", vec![0, 2, 3, 1])], Some(out)))
    }

    /// A stored `[kh, kw, c, m]` depthwise kernel as ONNX's grouped Conv weight `[c·m, 1, kh, kw]`.
    pub(super) fn depthwise_kernel(&mut self, kernel: &str, shape: [usize; 4]) -> String {
        let [kh, kw, c, m] = shape.map(|d| d as i64);
        let t = self.node("Transpose", &[kernel], vec![attr_ints("perm", vec![2, 3, 0, 1])], None);
        let dims = self.constant(vec![4], vec![], vec![c * m, 1, kh, kw]);
        self.node("Reshape", &[&t, &dims], vec![], None)
    }

    /// ZeroPadding, Cropping and UpSampling (1-D and 2-D) on the channels-last `x` of sample
    /// shape `shape`, its output named `own`.
    pub(super) fn resample(&mut self, x: &str, shape: &[usize], form: Resampling, own: &str) -> String {
        let (rank, image) = (shape.len(), shape.len() == 3);
        match form {
            Resampling::Pad([t, b, l, r]) => {
                // ONNX pads channels-first values here, as kiln's importer reads them:
                // the channels move to axis 1 and back, around one Pad.
                let to: Vec<i64> = [0, rank as i64].into_iter().chain(1..rank as i64).collect();
                let back: Vec<i64> = [0].into_iter().chain(2..=rank as i64).chain([1]).collect();
                let (begin, end) = if image { (vec![t, l], vec![b, r]) } else { (vec![l], vec![r]) };
                let pads: Vec<i64> = [0, 0]
                    .into_iter()
                    .chain(begin.iter().map(|&v| v as i64))
                    .chain([0, 0])
                    .chain(end.iter().map(|&v| v as i64))
                    .collect();
                let pads = self.constant(vec![pads.len() as i64], vec![], pads);
                let x = self.node("Transpose", &[x], vec![attr_ints("perm", to)], None);
                let padded = self.node("Pad", &[&x, &pads], vec![], None);
                self.node("Transpose", &[&padded], vec![attr_ints("perm", back)], Some(own))
            }
            Resampling::Crop([t, b, l, r]) => {
                // The kept rows and columns of the channels-last value, one Slice.
                let (h, wd) = if image { (shape[0], shape[1]) } else { (1, shape[0]) };
                let (axes, starts, ends) = if image {
                    (vec![1, 2], vec![t as i64, l as i64], vec![(h - b) as i64, (wd - r) as i64])
                } else {
                    (vec![1], vec![l as i64], vec![(wd - r) as i64])
                };
                let n = axes.len() as i64;
                let starts = self.constant(vec![n], vec![], starts);
                let ends = self.constant(vec![n], vec![], ends);
                let axes = self.constant(vec![n], vec![], axes);
                self.node("Slice", &[x, &starts, &ends, &axes], vec![], Some(own))
            }
            Resampling::Up(sy, sx) => {
                // Nearest, each output position reading input position ⌊i / scale⌋:
                // every row and column repeated, as kiln's UpSampling does.
                let scales: Vec<f32> =
                    if image { vec![1.0, sy as f32, sx as f32, 1.0] } else { vec![1.0, sx as f32, 1.0] };
                let scales = self.constant(vec![scales.len() as i64], scales, vec![]);
                let attrs = vec![
                    attr_string("mode", "nearest"),
                    attr_string("coordinate_transformation_mode", "asymmetric"),
                    attr_string("nearest_mode", "floor"),
                ];
                self.node("Resize", &[x, "", &scales], attrs, Some(own))
            }
        }
    }
}
