//! Convolutions, pooling and batch normalisation: ONNX's channels-first `[channels, spatial..]`
//! values stored channels-last for kiln's layers (a Permute where the value is not already),
//! explicit pads as a ZeroPadding layer before a `valid` window, kernels reordered from
//! `[out, in, k..]` to Keras' `[k.., in, out]`.

use super::graph::{Val, Value, channels_last};
use super::ops::Lowering;
use super::proto::NodeProto;
use super::read;

/// A window's geometry on `spatial` axes: kernel, strides, dilations and the pads before and
/// after each axis, with ONNX's defaults and `auto_pad` resolved.
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    begin: Vec<usize>,
    end: Vec<usize>,
}

fn list(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(|d| d.to_string()).collect();
    if items.len() == 1 { items[0].clone() } else { format!("[{}]", items.join(", ")) }
}

impl Lowering<'_> {
    fn window(&self, node: &NodeProto, spatial: &[usize], kernel: Option<Vec<usize>>) -> Result<Window, String> {
        let r = spatial.len();
        let positive = |name: &str, v: Option<Vec<i64>>| -> Result<Vec<usize>, String> {
            let v = v.unwrap_or_else(|| vec![1; r]);
            if v.len() != r || v.iter().any(|&d| d < 1) {
                return self.fail(format!("has {name} {v:?} for {r} spatial axes"));
            }
            Ok(v.iter().map(|&d| d as usize).collect())
        };
        let kernel = match kernel {
            Some(k) => k,
            None => positive("kernel_shape", read::ints(node, "kernel_shape"))?,
        };
        let strides = positive("strides", read::ints(node, "strides"))?;
        let dilations = positive("dilations", read::ints(node, "dilations"))?;
        let pads = read::ints(node, "pads").unwrap_or_else(|| vec![0; 2 * r]);
        if pads.len() != 2 * r || pads.iter().any(|&p| p < 0) {
            return self.fail(format!("has pads {pads:?} for {r} spatial axes"));
        }
        let (mut begin, mut end): (Vec<usize>, Vec<usize>) =
            (pads[..r].iter().map(|&p| p as usize).collect(), pads[r..].iter().map(|&p| p as usize).collect());
        match read::string(node, "auto_pad", "NOTSET").as_str() {
            "NOTSET" => {}
            "VALID" => (begin, end) = (vec![0; r], vec![0; r]),
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                for i in 0..r {
                    let out = spatial[i].div_ceil(strides[i]);
                    let span = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + span).saturating_sub(spatial[i]);
                    let small = total / 2;
                    (begin[i], end[i]) =
                        if mode == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                }
            }
            other => return self.fail(format!("has auto_pad {other}")),
        }
        Ok(Window { kernel, strides, dilations, begin, end })
    }

    /// `x` channels-last, with zeros padded where the window says.
    fn padded(&mut self, x: &Val, w: &Window) -> Result<Val, String> {
        let x = self.g.channels_last(x)?;
        if w.begin.iter().chain(&w.end).all(|&p| p == 0) {
            return Ok(x);
        }
        let call = match w.begin.len() {
            1 => format!("ZeroPadding1D([{}, {}])", w.begin[0], w.end[0]),
            _ => format!("ZeroPadding2D([{}, {}, {}, {}])", w.begin[0], w.end[0], w.begin[1], w.end[1]),
        };
        let spec = self.g.spec(&call)?;
        let (n, out) = self.g.apply(spec, &[x.node])?;
        let mut shape = vec![x.shape[0]];
        shape.extend(&out[..out.len() - 1]);
        Ok(Val { node: n, shape, order: x.order, batch: 0, hidden: None })
    }

    /// The rank check every window op makes: `[channels, steps]` or `[channels, height, width]`.
    fn spatial(&self, x: &Val) -> Result<Vec<usize>, String> {
        match x.shape.len() {
            2 | 3 => Ok(x.shape[1..].to_vec()),
            _ => self.fail(format!(
                "works on a value of shape [batch, {}]; kiln imports 1-D and 2-D windows ([batch, channels, steps] or \
                 [batch, channels, height, width])",
                x.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// A computed layer's output `out` (stored channels-last) as a value.
    fn last_val(out: Vec<usize>, node: usize) -> Value {
        let c = out[out.len() - 1];
        let mut shape = vec![c];
        shape.extend(&out[..out.len() - 1]);
        Value::Graph(Val { node, order: channels_last(shape.len()), shape, batch: 0, hidden: None })
    }

    /// `Conv(X, W, B)`: Conv1D / Conv2D, with a ZeroPadding layer for explicit pads.
    pub fn conv(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spatial = self.spatial(&x)?;
        let w = self.constant(node, 1)?;
        let r = spatial.len();
        if w.dims.len() != r + 2 {
            return self.fail(format!("has a weight of dimensions {:?} for {r} spatial axes", w.dims));
        }
        let (filters, cin) = (w.dims[0], w.dims[1]);
        let group = read::int(node, "group", 1).max(1) as usize;
        if cin * group != x.shape[0] || filters % group != 0 {
            return self.fail(format!(
                "has {filters} filters of {cin} channels in {group} groups for an input of {} channels",
                x.shape[0]
            ));
        }
        if w.dims[2..].contains(&0) {
            return self.fail(format!("has a weight of dimensions {:?}, an empty kernel", w.dims));
        }
        let win = self.window(node, &spatial, Some(w.dims[2..].to_vec()))?;
        let x = self.padded(&x, &win)?;
        let bias = match self.input(node, 2)? {
            None => None,
            Some(Value::Const(b)) if b.vals.len() == filters => Some(b.f32s()),
            Some(_) => return self.fail("has a bias that is not a constant of one value per filter"),
        };
        let class = if r == 1 { "Conv1D" } else { "Conv2D" };
        let groups = if group > 1 { format!(", groups = {group}") } else { String::new() };
        let call = format!(
            "{class}({filters}, {}, strides = {}, dilation_rate = {}{groups}, use_bias = {})",
            list(&win.kernel),
            list(&win.strides),
            list(&win.dilations),
            bias.is_some()
        );
        let spec = self.g.spec(&call)?;
        let (n, out) = self.g.apply(spec, &[x.node])?;
        // [out, in, k..] to [k.., in, out].
        let vals = w.f32s();
        let taps: usize = win.kernel.iter().product();
        let mut kernel = vec![0f32; vals.len()];
        for o in 0..filters {
            for c in 0..cin {
                for t in 0..taps {
                    kernel[(t * cin + c) * filters + o] = vals[(o * cin + c) * taps + t];
                }
            }
        }
        let mut kshape = win.kernel.clone();
        kshape.extend([cin, filters]);
        self.g.weight(n, "kernel", kshape, kernel);
        match bias {
            Some(b) => self.g.weight(n, "bias", vec![filters], b),
            None => self.biasable(n, call),
        }
        Ok(Self::last_val(out, n))
    }

    /// `ConvTranspose` in 2-D: Conv2DTranspose (`valid`, growing each axis to `(n - 1) s + k`),
    /// then Cropping2D by the pads (less `output_padding` at the end); the kernel from ONNX's
    /// `[in, out, kh, kw]` to Keras' `[kh, kw, out, in]`.
    pub fn conv_transpose(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spatial = self.spatial(&x)?;
        let w = self.constant(node, 1)?;
        let r = spatial.len();
        if w.dims.len() != r + 2 || w.dims[0] != x.shape[0] || w.dims[2..].contains(&0) {
            return self.fail(format!(
                "has a weight of dimensions {:?} for an input of shape {:?}; kiln imports 1-D and 2-D \
                 ConvTranspose",
                w.dims, x.shape
            ));
        }
        let (cin, filters) = (w.dims[0], w.dims[1]);
        if read::int(node, "group", 1) != 1 || read::attr(node, "output_shape").is_some() {
            return self.fail("has groups or an output_shape; kiln imports ConvTranspose with group = 1 and pads");
        }
        let mut win = self.window(node, &spatial, Some(w.dims[2..].to_vec()))?;
        if win.dilations.iter().any(|&d| d != 1) || read::string(node, "auto_pad", "NOTSET").starts_with("SAME") {
            return self.fail("has dilations or auto_pad SAME; kiln imports ConvTranspose with explicit pads");
        }
        let extra = read::ints(node, "output_padding").unwrap_or_else(|| vec![0; r]);
        for i in 0..r {
            let op = extra.get(i).copied().unwrap_or(0).max(0) as usize;
            if op > win.end[i] {
                return self.fail(format!("has output_padding {extra:?} beyond its pads {:?}", win.end));
            }
            win.end[i] -= op;
        }
        let x = self.g.channels_last(&x)?;
        // A 1-D one is the 2-D layer on a one-row image ([steps, channels] viewed as [1, steps,
        // channels]: nothing moves), its window one row high.
        let (input, two_d) = if r == 1 {
            let view = self.g.reshape(x.node, &[1, spatial[0], cin])?;
            let pad = |v: &[usize], with: usize| [with, v[0]];
            (view, [pad(&win.kernel, 1), pad(&win.strides, 1), pad(&win.begin, 0), pad(&win.end, 0)])
        } else {
            let two = |v: &[usize]| [v[0], v[1]];
            (x.node, [two(&win.kernel), two(&win.strides), two(&win.begin), two(&win.end)])
        };
        let [kernel_hw, strides, begin, end] = two_d;
        let bias = match self.input(node, 2)? {
            None => None,
            Some(Value::Const(b)) if b.vals.len() == filters => Some(b.f32s()),
            Some(_) => return self.fail("has a bias that is not a constant of one value per filter"),
        };
        let call = format!(
            "Conv2DTranspose({filters}, {}, strides = {}, use_bias = {})",
            list(&kernel_hw),
            list(&strides),
            bias.is_some()
        );
        let spec = self.g.spec(&call)?;
        let (n, out) = self.g.apply(spec, &[input])?;
        let vals = w.f32s();
        let taps: usize = win.kernel.iter().product();
        let mut kernel = vec![0f32; vals.len()];
        for c in 0..cin {
            for o in 0..filters {
                for t in 0..taps {
                    kernel[(t * filters + o) * cin + c] = vals[(c * filters + o) * taps + t];
                }
            }
        }
        self.g.weight(n, "kernel", vec![kernel_hw[0], kernel_hw[1], filters, cin], kernel);
        match bias {
            Some(b) => self.g.weight(n, "bias", vec![filters], b),
            None => self.biasable(n, call),
        }
        let (n, out) = if begin.iter().chain(&end).all(|&p| p == 0) {
            (n, out)
        } else {
            let crop = format!("Cropping2D([{}, {}, {}, {}])", begin[0], end[0], begin[1], end[1]);
            let spec = self.g.spec(&crop)?;
            self.g.apply(spec, &[n])?
        };
        if r == 1 {
            // Back to [steps, filters].
            let seq = [out[1], out[2]];
            let n = self.g.reshape(n, &seq)?;
            return Ok(Self::last_val(seq.to_vec(), n));
        }
        Ok(Self::last_val(out, n))
    }

    /// `MaxPool` and `AveragePool`: Keras' `valid` pooling, or `same` where the pads are the ones
    /// it uses; an average counting the pads is zero padding then `valid`.
    pub fn pool(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spatial = self.spatial(&x)?;
        let mut win = self.window(node, &spatial, None)?;
        let max = node.op_type == "MaxPool";
        if win.dilations.iter().any(|&d| d != 1) {
            return self.fail(format!("has dilations {:?}; kiln's pooling has none", win.dilations));
        }
        if (0..spatial.len()).any(|i| win.kernel[i] > spatial[i] + win.begin[i] + win.end[i]) {
            return self.fail(format!("has a window {:?} larger than its padded input", win.kernel));
        }
        let floor_out = |w: &Window, i: usize| (spatial[i] + w.begin[i] + w.end[i] - w.kernel[i]) / w.strides[i] + 1;
        if read::int(node, "ceil_mode", 0) != 0 {
            let ceil = |i: usize| (spatial[i] + win.begin[i] + win.end[i] - win.kernel[i]).div_ceil(win.strides[i]) + 1;
            if (0..spatial.len()).any(|i| ceil(i) != floor_out(&win, i)) {
                return self.fail("has ceil_mode = 1 where it changes the output size; kiln's pooling rounds down");
            }
        }
        let padded = win.begin.iter().chain(&win.end).any(|&p| p > 0);
        let mut padding = "valid";
        if padded && !max && read::int(node, "count_include_pad", 0) != 0 {
            let x = self.padded(&x, &win)?;
            win.begin.fill(0);
            win.end.fill(0);
            return self.pool_layer(&x, &win, max, padding);
        }
        if padded {
            let same = (0..spatial.len()).all(|i| {
                let out = spatial[i].div_ceil(win.strides[i]);
                let total = ((out - 1) * win.strides[i] + win.kernel[i]).saturating_sub(spatial[i]);
                win.begin[i] == total / 2 && win.end[i] == total - total / 2
            });
            if !same {
                return self.fail(format!(
                    "pads {:?} before and {:?} after; kiln imports pooling without pads or with the pads of Keras' \
                     padding = \"same\"",
                    win.begin, win.end
                ));
            }
            padding = "same";
        }
        let x = self.g.channels_last(&x)?;
        self.pool_layer(&x, &win, max, padding)
    }

    fn pool_layer(&mut self, x: &Val, win: &Window, max: bool, padding: &str) -> Result<Value, String> {
        let class = match (max, win.kernel.len()) {
            (true, 1) => "MaxPooling1D",
            (true, _) => "MaxPooling2D",
            (false, 1) => "AveragePooling1D",
            (false, _) => "AveragePooling2D",
        };
        let call = format!("{class}({}, strides = {}, padding = {padding})", list(&win.kernel), list(&win.strides));
        let spec = self.g.spec(&call)?;
        let (n, out) = self.g.apply(spec, &[x.node])?;
        Ok(Self::last_val(out, n))
    }

    /// `GlobalAveragePool` / `GlobalMaxPool`: kiln's global pooling, whose `[channels]` is viewed
    /// as ONNX's `[channels, 1, ..]`.
    pub fn global_pool(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spatial = self.spatial(&x)?;
        let x = self.g.channels_last(&x)?;
        let max = node.op_type == "GlobalMaxPool";
        let spec = crate::layers::global_pool(max, spatial.len() + 1);
        let (n, _) = self.g.apply(spec, &[x.node])?;
        let mut stored = vec![1; spatial.len()];
        stored.push(x.shape[0]);
        let n = self.g.reshape(n, &stored)?;
        Ok(Self::last_val(stored, n))
    }

    /// `Pad` with zeros on the spatial axes of a `[channels, spatial..]` value: ZeroPadding1D or
    /// ZeroPadding2D.
    pub fn pad(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let spatial = self.spatial(&x)?;
        let pads: Vec<i64> = match self.input(node, 1)? {
            Some(Value::Const(c)) => c.vals.iter().map(|&v| v as i64).collect(),
            Some(Value::Graph(_)) => return self.fail("takes its pads from a computed value"),
            None => read::ints(node, "pads").unwrap_or_default(),
        };
        let zero = match self.input(node, 2)? {
            None => true,
            Some(Value::Const(c)) => c.vals.iter().all(|&v| v == 0.0),
            Some(Value::Graph(_)) => false,
        };
        let full = spatial.len() + 2;
        let (b, e) = (pads.get(..full).unwrap_or_default(), pads.get(full..).unwrap_or_default());
        let mode = read::string(node, "mode", "constant");
        if mode != "constant" || !zero || b.len() != full || e.len() != full || pads.len() != 2 * full {
            return self
                .fail(format!("pads with mode {mode} by {pads:?}; kiln imports zero padding of the spatial axes"));
        }
        if b[..2].iter().chain(&e[..2]).any(|&p| p != 0) || pads.iter().any(|&p| p < 0) {
            return self.fail(format!("pads {pads:?}: kiln pads the spatial axes only, by amounts >= 0"));
        }
        let win = Window {
            kernel: vec![1; spatial.len()],
            strides: vec![1; spatial.len()],
            dilations: vec![1; spatial.len()],
            begin: b[2..].iter().map(|&p| p as usize).collect(),
            end: e[2..].iter().map(|&p| p as usize).collect(),
        };
        Ok(Value::Graph(self.padded(&x, &win)?))
    }

    /// `Resize` (and the older `Upsample`) by whole factors, nearest, each output position
    /// reading input position ⌊i / factor⌋ (`asymmetric` coordinates, `floor`: PyTorch's
    /// `nn.Upsample(mode="nearest")` and kiln's own export): UpSampling1D/2D on the two spatial
    /// axes of an image (or the one of a sequence), channels first or last.
    pub fn resize(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.graph(node, 0)?;
        let rank = x.shape.len();
        let mode = read::string(node, "mode", "nearest");
        let coords = read::string(node, "coordinate_transformation_mode", "half_pixel");
        let nearest = read::string(node, "nearest_mode", "round_prefer_floor");
        let legacy = node.op_type == "Upsample";
        if mode != "nearest" || !(legacy || (coords == "asymmetric" && nearest == "floor")) {
            return self.fail(format!(
                "resizes with mode {mode}, coordinates {coords}, rounding {nearest}; kiln imports nearest \
                 up-sampling by whole factors (asymmetric, floor)"
            ));
        }
        // The factor of each axis, batch first: from `scales`, or from `sizes` over the shape.
        let scales_at = if legacy { 1 } else { 2 };
        let factors: Vec<f64> = match (self.input(node, scales_at)?, self.input(node, 3)?) {
            (Some(Value::Const(c)), _) if !c.vals.is_empty() => c.vals.clone(),
            (_, Some(Value::Const(c))) if c.vals.len() == rank + 1 => {
                let dims = [1].iter().chain(&x.shape).map(|&d| d as f64);
                c.vals.iter().zip(dims).map(|(s, d)| s / d).collect()
            }
            _ => return self.fail("takes its scales or sizes from a computed value, or from neither"),
        };
        let whole = |f: f64| f >= 1.0 && f.fract() == 0.0;
        if factors.len() != rank + 1 || factors[0] != 1.0 || !factors.iter().all(|&f| whole(f)) {
            return self.fail(format!("scales by {factors:?}; kiln imports whole factors of the sample's axes"));
        }
        let f: Vec<usize> = factors[1..].iter().map(|&v| v as usize).collect();
        // Nearest up-sampling repeats values along axes, so which axis is "channels" does not
        // matter; kiln's layers repeat all but the last stored axis, which must be unscaled: the
        // value as it is when its last axis is, else its first axis moved last.
        let (order, spatial): (Vec<usize>, Vec<usize>) = match (rank, f[0], f[rank.max(1) - 1]) {
            (2 | 3, _, 1) => ((0..rank).collect(), f[..rank - 1].to_vec()),
            (2 | 3, 1, _) => (channels_last(rank), f[1..].to_vec()),
            _ => {
                return self.fail(format!(
                    "scales every axis of a [batch, {rank} axes] value by {factors:?}; kiln up-samples the \
                     spatial axes of a sequence or an image"
                ));
            }
        };
        let call = match spatial[..] {
            [s] => format!("UpSampling1D({s})"),
            [sy, sx] => format!("UpSampling2D([{sy}, {sx}])"),
            _ => return self.fail("up-samples more than two spatial axes"),
        };
        let x = self.g.relayout(&x, &order)?;
        let spec = self.g.spec(&call)?;
        let (n, _) = self.g.apply(spec, &[x.node])?;
        let shape = x.shape.iter().zip(&f).map(|(d, s)| d * s).collect();
        Ok(Value::Graph(Val { node: n, shape, order: x.order, batch: 0, hidden: None }))
    }

    /// `BatchNormalization` at inference: kiln's BatchNormalization on the channel axis, with the
    /// file's epsilon and momentum and its statistics as the moving ones.
    pub fn batch_norm(&mut self, node: &NodeProto) -> Result<Value, String> {
        if read::int(node, "training_mode", 0) != 0 {
            return self.fail("is in training mode; export the model in eval mode");
        }
        let x = self.graph(node, 0)?;
        let c = x.shape.first().copied().unwrap_or(0);
        let mut params = Vec::new();
        for (k, name) in [(1, "gamma"), (2, "beta"), (3, "moving_mean"), (4, "moving_variance")] {
            let t = self.constant(node, k)?;
            if t.vals.len() != c {
                return self.fail(format!("has {} values of `{}` for {c} channels", t.vals.len(), node.input[k]));
            }
            params.push((name, t.f32s()));
        }
        let x = if x.shape.len() == 1 { x } else { self.g.channels_last(&x)? };
        let eps = read::float(node, "epsilon", 1e-5) as f64;
        let momentum = read::float(node, "momentum", 0.9) as f64;
        let spec = self.g.spec(&format!("BatchNormalization(epsilon = {eps:?}, momentum = {momentum:?})"))?;
        let (n, _) = self.g.apply(spec, &[x.node])?;
        for (name, vals) in params {
            self.g.weight(n, name, vec![c], vals);
        }
        Ok(Value::Graph(Val { node: n, ..x }))
    }
}
