//! Pictures without Graphviz: `plot_model` (Keras' `keras.utils.plot_model`) and
//! `History::plot`, drawn in pure Rust.
//!
//! The model graph is written as DOT text, laid out and drawn as SVG by `layout-rs` (a Rust
//! implementation of Graphviz's layered layout), and rasterised to PNG by `resvg` with a font
//! bundled in kiln (DejaVu Sans Mono), so no system program or font is needed. Training curves
//! are drawn directly as SVG, then rasterised the same way.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::dynamic::DynModel;
use crate::summary::{LayerInfo, shape, shapes};
use crate::train::History;

/// The font text is drawn with in PNG output.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

/// Options of [`plot_model`], with Keras 3's names and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// Show each layer's input and output shapes (default false).
    pub show_shapes: bool,
    /// Show the data type (default false).
    pub show_dtype: bool,
    /// Show layer names (default false, as in Keras 3).
    pub show_layer_names: bool,
    /// `"TB"` (top to bottom, the default) or `"LR"` (left to right).
    pub rankdir: String,
    /// Draw a nested model's layers in place of its box (default false).
    pub expand_nested: bool,
    /// Show Dense layers' activations (default false).
    pub show_layer_activations: bool,
    /// Show whether each layer is trainable (default false).
    pub show_trainable: bool,
    /// Resolution of PNG output, dots per inch (default 200; SVG is drawn at 96).
    pub dpi: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            show_shapes: false,
            show_dtype: false,
            show_layer_names: false,
            rankdir: "TB".into(),
            expand_nested: false,
            show_layer_activations: false,
            show_trainable: false,
            dpi: 200,
        }
    }
}

fn escape_dot(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('{', "\\{").replace('}', "\\}").replace('|', "\\|")
}

/// The layers the model draws, with their inbound layers: functional models list them; the
/// other styles are chains in layer order.
fn edges(layers: &[LayerInfo]) -> Vec<(usize, usize)> {
    let functional = layers.iter().any(|l| !l.connected.is_empty() || l.kind == "InputLayer");
    let mut out = Vec::new();
    if functional {
        for (i, l) in layers.iter().enumerate() {
            for c in l.connected {
                let src = c.split('[').next().unwrap_or(c);
                if let Some(j) = layers.iter().position(|x| x.name == src)
                    && !out.contains(&(j, i))
                {
                    out.push((j, i));
                }
            }
        }
    } else {
        out.extend((1..layers.len()).map(|i| (i - 1, i)));
    }
    out
}

/// A box to draw: a layer, its name in the drawing, its input shapes and whether it trains.
struct Drawn {
    info: &'static LayerInfo,
    name: String,
    inputs: Vec<String>,
    trainable: bool,
}

/// The drawing's boxes and edges; with `expand`, a nested model's box is replaced by its own
/// layers, edges into it going to its first layers and edges out of it leaving from its last.
fn graph(
    layers: &'static [LayerInfo],
    expand: bool,
    prefix: &str,
    trainable: &dyn Fn(&str) -> bool,
) -> (Vec<Drawn>, Vec<(usize, usize)>) {
    let base = edges(layers);
    let (mut nodes, mut out_edges) = (Vec::new(), Vec::new());
    // For each layer: the drawn boxes edges enter, and those they leave from.
    let mut ends: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let inputs: Vec<String> = if l.connected.is_empty() {
            base.iter().filter(|e| e.1 == i).map(|e| shapes(&layers[e.0])).collect()
        } else {
            l.connected
                .iter()
                .filter_map(|c| {
                    let x = layers.iter().find(|x| Some(x.name) == c.split('[').next())?;
                    // `lstm[0][1]`: the layer's output 1.
                    let k = c.rsplit('[').next().and_then(|k| k.trim_end_matches(']').parse().ok()).unwrap_or(0);
                    Some(shape(output_k(x, k)))
                })
                .collect()
        };
        let name = format!("{prefix}{}", l.name);
        if expand && !l.nested.is_empty() {
            let (sub, sub_edges) = graph(l.nested, expand, &format!("{name}/"), trainable);
            let first = nodes.len();
            let entry = (0..sub.len()).filter(|&j| !sub_edges.iter().any(|e| e.1 == j)).map(|j| first + j).collect();
            let exit = (0..sub.len()).filter(|&j| !sub_edges.iter().any(|e| e.0 == j)).map(|j| first + j).collect();
            out_edges.extend(sub_edges.iter().map(|(a, b)| (first + a, first + b)));
            nodes.extend(sub);
            ends.push((entry, exit));
        } else {
            let t = trainable(&name);
            nodes.push(Drawn { info: l, name, inputs, trainable: t });
            ends.push((vec![nodes.len() - 1], vec![nodes.len() - 1]));
        }
    }
    for (a, b) in base {
        for &x in &ends[a].1 {
            for &y in &ends[b].0 {
                out_edges.push((x, y));
            }
        }
    }
    (nodes, out_edges)
}

/// The model as Graphviz DOT source: one node per layer (and per input), one edge per
/// connection, labelled as `opts` asks.
pub fn to_dot(m: &dyn DynModel, opts: &PlotOptions) -> String {
    let meta = m.meta();
    let mut weights: Vec<(String, bool)> = Vec::new();
    m.visit_weights(&mut |name, p| weights.push((name.replace('.', "/"), p.role() != crate::layers::Role::Frozen)));
    let trainable = |layer: &str| weights.iter().filter(|(w, _)| w.starts_with(&format!("{layer}/"))).all(|(_, t)| *t);
    let (nodes, edges) = graph(meta.layers, opts.expand_nested, "", &trainable);
    let mut dot =
        format!("digraph {} {{\n  rankdir=\"{}\";\n", meta.name, if opts.rankdir == "LR" { "LR" } else { "TB" });
    dot += "  node [shape=record];\n";
    for (i, d) in nodes.iter().enumerate() {
        let l = d.info;
        let mut title = if opts.show_layer_names { format!("{} ({})", d.name, l.kind) } else { l.kind.to_string() };
        if opts.show_layer_activations && !l.activation.is_empty() {
            title += &format!(" | activation: {}", l.activation);
        }
        let mut parts = vec![escape_dot(&title)];
        if opts.show_shapes {
            let input = match (d.inputs.len(), l.kind) {
                (0, "InputLayer") => shape(l.output_shape),
                (0, _) => match meta.inputs.first() {
                    Some(p) if i == 0 => shape(p.shape),
                    _ => "?".into(),
                },
                (1, _) => d.inputs[0].clone(),
                _ => format!("[{}]", d.inputs.join(", ")),
            };
            parts.push(escape_dot(&format!("Input shape: {input}")));
            parts.push(escape_dot(&format!("Output shape: {}", shapes(l))));
        }
        if opts.show_dtype {
            parts.push("dtype: float32".into());
        }
        if opts.show_trainable {
            parts.push(format!("Trainable: {}", if d.trainable { "True" } else { "False" }));
        }
        // Record fields stack vertically: braces flip the direction, which left-to-right needs not.
        let label = if opts.rankdir == "LR" { parts.join("|") } else { format!("{{{}}}", parts.join("|")) };
        dot += &format!("  n{i} [label=\"{label}\"];\n");
    }
    for (a, b) in &edges {
        dot += &format!("  n{a} -> n{b};\n");
    }
    dot + "}\n"
}

/// Lays out DOT source and draws it as SVG.
pub fn dot_to_svg(dot: &str) -> Result<String> {
    use layout::backends::svg::SVGWriter;
    let mut parser = layout::gv::DotParser::new(dot);
    let graph = parser.process().map_err(|e| Error::invalid("dot", format!("kiln wrote DOT it cannot parse: {e}")))?;
    let mut builder = layout::gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut vg = builder.get();
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    Ok(svg.finalize())
}

/// Rasterises SVG to PNG at `scale` times its size, with kiln's bundled font.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_font_data(FONT.to_vec());
    for set in [
        resvg::usvg::fontdb::Database::set_serif_family,
        resvg::usvg::fontdb::Database::set_sans_serif_family,
        resvg::usvg::fontdb::Database::set_monospace_family,
    ] {
        set(&mut db, "DejaVu Sans Mono");
    }
    let options =
        resvg::usvg::Options { font_family: "DejaVu Sans Mono".into(), fontdb: Arc::new(db), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| Error::invalid("svg", e.to_string()))?;
    let size = tree.size();
    let (w, h) = ((size.width() * scale).ceil() as u32, (size.height() * scale).ceil() as u32);
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(w.max(1), h.max(1)).ok_or_else(|| Error::invalid("dpi", "image too large"))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| Error::invalid("png", e.to_string()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::atomic_write(path, |w| w.write_all(bytes))
}

/// What the file extension asks for.
fn format_of(path: &Path) -> Result<&'static str> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("dot") => Ok("dot"),
        Some("svg") => Ok("svg"),
        Some("png") => Ok("png"),
        other => Err(Error::invalid(
            "to_file",
            format!("cannot draw to a `.{}` file; kiln writes .dot, .svg and .png", other.unwrap_or("")),
        )),
    }
}

/// Draws the model's graph to `path`: Graphviz source for `.dot`, a drawing for `.svg` and
/// `.png` (Keras' `plot_model`, with no Graphviz install).
pub fn plot_model(m: &dyn DynModel, path: impl AsRef<Path>, opts: &PlotOptions) -> Result<()> {
    let path = path.as_ref();
    let fmt = format_of(path)?;
    let dot = to_dot(m, opts);
    if fmt == "dot" {
        return write(path, dot.as_bytes());
    }
    let svg = dot_to_svg(&dot)?;
    match fmt {
        "svg" => write(path, svg.as_bytes()),
        _ => write(path, &svg_to_png(&svg, opts.dpi as f32 / 96.0)?),
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A round step for about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    }
}

/// Training curves as SVG: one panel per quantity (loss, then each metric), training and
/// validation on shared axes, with a legend, a title and labelled axes.
pub fn history_svg(h: &History) -> String {
    let names: Vec<&str> = {
        let mut v: Vec<&str> = h.keys().filter(|k| !k.starts_with("val_")).collect();
        v.sort_by_key(|k| (*k != "loss", k.to_string()));
        v
    };
    let (pw, ph, left, top, gap) = (640.0, 260.0, 70.0, 40.0, 70.0);
    let width = left + pw + 30.0;
    let height = top + names.len() as f64 * (ph + gap) + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans Mono, monospace\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let epochs = h.epoch.len().max(1);
    for (p, name) in names.iter().enumerate() {
        let y0 = top + p as f64 * (ph + gap);
        let series: Vec<(&str, &[f64], &str)> = [(*name, "#1f77b4"), (&format!("val_{name}")[..], "#ff7f0e")]
            .iter()
            .filter_map(|(k, c)| {
                h.get(k).map(|v| (if k.starts_with("val_") { "validation" } else { "training" }, v, *c))
            })
            .collect();
        let (lo, hi) = value_range(series.iter().flat_map(|s| s.1.iter().copied()));
        let x = |e: f64| left + if epochs > 1 { e / (epochs - 1) as f64 * pw } else { pw / 2.0 };
        let y = |v: f64| y0 + ph - (v - lo) / (hi - lo) * ph;
        s += &format!("<text x=\"{left}\" y=\"{}\" font-size=\"15\">{} per epoch</text>\n", y0 - 12.0, xml(name));
        value_axis(&mut s, (left, y0, pw, ph), (lo, hi));
        let xstep = nice_step(epochs as f64, 8.0).max(1.0);
        let mut e = 0.0;
        while e < epochs as f64 {
            s += &format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                x(e),
                y0 + ph + 16.0,
                e as usize + 1
            );
            e += xstep;
        }
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">epoch</text>\n",
            left + pw / 2.0,
            y0 + ph + 34.0
        );
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{}</text>\n",
            left - 52.0,
            y0 + ph / 2.0,
            left - 52.0,
            y0 + ph / 2.0,
            xml(name)
        );
        for (i, (label, values, color)) in series.iter().enumerate() {
            let pts: Vec<String> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(e, v)| format!("{:.1},{:.1}", x(e as f64), y(*v)))
                .collect();
            s += &format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
                pts.join(" ")
            );
            // The legend sits above the panel, right-aligned, where it never covers a curve.
            let (lx, ly) = (left + pw - 270.0 + 140.0 * i as f64, y0 - 18.0);
            s += &format!(
                "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
                lx + 24.0
            );
            s += &format!("<text x=\"{}\" y=\"{}\" font-size=\"12\">{label}</text>\n", lx + 30.0, ly + 4.0);
        }
    }
    s + "</svg>\n"
}

/// The finite values' range, padded by 5% (and widened when they are all equal).
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) =
        values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A panel's frame, its horizontal grid lines and the value ticks on its left.
fn value_axis(s: &mut String, (left, top, pw, ph): (f64, f64, f64, f64), (lo, hi): (f64, f64)) {
    let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
    *s += &format!("<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\n");
    let step = nice_step(hi - lo, 5.0);
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        let ty = y(t);
        *s += &format!("<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/>\n", left + pw);
        *s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
            left - 6.0,
            ty + 4.0,
            format_tick(t, step)
        );
        t += step;
    }
}

/// One curve of a [`line_chart`]: its legend label and its values, one per step.
pub struct Series<'a> {
    /// The legend's text.
    pub label: &'a str,
    /// One value per step; NaN leaves a step out.
    pub values: &'a [f64],
}

const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// Curves over the same steps on shared axes, as SVG: a title, labelled axes (the steps numbered
/// from `x_start`), a legend. Draw it to a file with [`write_chart`].
pub fn line_chart(title: &str, x_label: &str, y_label: &str, x_start: f64, series: &[Series<'_>]) -> String {
    let (pw, ph, left, top) = (900.0, 320.0, 70.0, 50.0);
    let (width, height) = (left + pw + 30.0, top + ph + 50.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans Mono, monospace\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let steps = series.iter().map(|c| c.values.len()).max().unwrap_or(0).max(1);
    let (lo, hi) = value_range(series.iter().flat_map(|c| c.values.iter().copied()));
    let x = |i: f64| left + if steps > 1 { i / (steps - 1) as f64 * pw } else { pw / 2.0 };
    let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
    s += &format!("<text x=\"{left}\" y=\"{}\" font-size=\"15\">{}</text>\n", top - 28.0, xml(title));
    value_axis(&mut s, (left, top, pw, ph), (lo, hi));
    let xstep = nice_step(steps as f64, 10.0).max(1.0);
    let mut i = 0.0;
    while i < steps as f64 {
        let label = format_tick(x_start + i, xstep);
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>\n",
            x(i),
            top + ph + 16.0
        );
        i += xstep;
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        top + ph + 36.0,
        xml(x_label)
    );
    s += &format!(
        "<text x=\"{0}\" y=\"{1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 {0} {1})\">{2}</text>\n",
        left - 52.0,
        top + ph / 2.0,
        xml(y_label)
    );
    for (k, c) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> = c
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i as f64), y(*v)))
            .collect();
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n",
            pts.join(" ")
        );
        let (lx, ly) = (left + pw - 180.0 * (series.len() - k) as f64, top - 12.0);
        s += &format!(
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            lx + 24.0
        );
        s += &format!("<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>\n", lx + 30.0, ly + 4.0, xml(c.label));
    }
    s + "</svg>\n"
}

/// Writes a chart (SVG text) to `path` as `.svg` or `.png`, atomically.
pub fn write_chart(svg: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    match format_of(path)? {
        "svg" => write(path, svg.as_bytes()),
        "png" => write(path, &svg_to_png(svg, 1.5)?),
        _ => Err(Error::invalid("path", "charts are drawn to .svg or .png files")),
    }
}

fn format_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    // `+ 0.0` turns a rounded -0 into 0.
    format!("{:.decimals$}", v + 0.0)
}

impl History {
    /// Draws the training curves to `path` (`.svg` or `.png`): loss and each metric per
    /// epoch, training and validation on shared axes.
    pub fn plot(&self, path: impl AsRef<Path>) -> Result<()> {
        write_chart(&history_svg(self), path)
    }
}

/// Output `k` of a layer's, as a `Connected to` entry names it (`lstm[0][1]`).
fn output_k(l: &LayerInfo, k: usize) -> &'static [usize] {
    l.outputs.get(k).copied().unwrap_or(l.output_shape)
}
