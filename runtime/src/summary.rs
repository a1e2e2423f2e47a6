//! `model.summary()`: Keras 3's table, from the layer table the model macro computed.

pub use crate::layers::LayerInfo;
use crate::model::dynamic::DynModel;


/// The rows of a summary: each layer, followed by its nested model's layers (recursively) when
/// `expand`, marked by depth.
fn rows(layers: &'static [LayerInfo], expand: bool, depth: usize, out: &mut Vec<(usize, &'static LayerInfo)>) {
    for l in layers {
        out.push((depth, l));
        if expand {
            rows(l.nested, expand, depth + 1, out);
        }
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Keras 3's byte sizes: `18.79 KB`, `0.00 B`.
fn bytes(params: usize) -> String {
    let b = params as f64 * 4.0;
    let (v, unit) = if b >= 1024.0 * 1024.0 * 1024.0 {
        (b / (1024.0 * 1024.0 * 1024.0), "GB")
    } else if b >= 1024.0 * 1024.0 {
        (b / (1024.0 * 1024.0), "MB")
    } else if b >= 1024.0 {
        (b / 1024.0, "KB")
    } else {
        (b, "B")
    };
    format!("{v:.2} {unit}")
}

/// A layer's output shape as Keras prints it, a list for a layer of several outputs.
pub(crate) fn shapes(l: &LayerInfo) -> String {
    match l.outputs {
        [] => shape(l.output_shape),
        all => format!("[{}]", all.iter().map(|s| shape(s)).collect::<Vec<_>>().join(", ")),
    }
}

pub(crate) fn shape(s: &[usize]) -> String {
    let mut out = String::from("(None");
    for d in s {
        out += &format!(", {d}");
    }
    out + ")"
}

/// Keras' rule for leaving out the `Connected to` column of a functional model: one input, and
/// every layer reads one value that nothing else reads (a plain chain, no shared layer).
fn sequential_like(layers: &[LayerInfo]) -> bool {
    if layers.iter().filter(|l| l.kind == "InputLayer").count() > 1 {
        return false;
    }
    let mut read = std::collections::HashSet::new();
    layers.iter().filter(|l| l.kind != "InputLayer").all(|l| l.connected.len() == 1 && read.insert(l.connected[0]))
}

pub(crate) fn render(m: &dyn DynModel, expand_nested: bool) -> String {
    let meta = m.meta();
    let (mut total, mut trainable) = (0, 0);
    m.visit_weights(&mut |_, p| {
        total += p.len();
        if p.is_trainable() {
            trainable += p.len();
        }
    });
    // Functional models add Keras' `Connected to` column; a cell may hold several lines.
    let functional =
        meta.layers.iter().any(|l| l.kind == "InputLayer" || !l.connected.is_empty()) && !sequential_like(meta.layers);
    let mut header = vec!["Layer (type)".to_string(), "Output Shape".into(), "Param #".into()];
    if functional {
        header.push("Connected to".into());
    }
    let mut listed = Vec::new();
    rows(meta.layers, expand_nested, 0, &mut listed);
    let rows: Vec<Vec<Vec<String>>> = listed
        .iter()
        .map(|&(depth, l)| {
            let marker = if depth == 0 { String::new() } else { format!("{}└ ", "  ".repeat(depth - 1)) };
            let mut row = vec![
                vec![format!("{marker}{} ({})", l.name, l.kind)],
                vec![shapes(l)],
                vec![thousands(l.params)],
            ];
            if functional {
                let mut c: Vec<String> = l
                    .connected
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i + 1 < l.connected.len() { format!("{c},") } else { c.to_string() })
                    .collect();
                if c.is_empty() {
                    c.push("-".into());
                }
                row.push(c);
            }
            row
        })
        .collect();
    let mut w: Vec<usize> = if functional { vec![31, 22, 11, 22] } else { vec![31, 22, 13] };
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            for line in cell {
                w[i] = w[i].max(line.chars().count());
            }
        }
    }
    let line = |l: &str, mid: &str, r: &str, fill: &str| {
        let parts: Vec<String> = w.iter().map(|n| fill.repeat(n + 2)).collect();
        format!("{l}{}{r}\n", parts.join(mid))
    };
    let cells = |cells: &[&str], bar: &str| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 2 { format!(" {c:>0$} ", w[i]) } else { format!(" {c:<0$} ", w[i]) })
            .collect();
        format!("{bar}{}{bar}\n", parts.join(bar))
    };
    let mut s = format!("Model: \"{}\"\n", meta.name);
    s += &line("┏", "┳", "┓", "━");
    s += &cells(&header.iter().map(|h| &h[..]).collect::<Vec<_>>(), "┃");
    s += &line("┡", "╇", "┩", "━");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            s += &line("├", "┼", "┤", "─");
        }
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let texts: Vec<&str> = row.iter().map(|c| c.get(k).map_or("", |t| &t[..])).collect();
            s += &cells(&texts, "│");
        }
    }
    s += &line("└", "┴", "┘", "─");
    s += &format!(" Total params: {} ({})\n", thousands(total), bytes(total));
    s += &format!(" Trainable params: {} ({})\n", thousands(trainable), bytes(trainable));
    s += &format!(" Non-trainable params: {} ({})", thousands(total - trainable), bytes(total - trainable));
    if let Some([weights, scratch]) = meta.memory {
        s += &format!("\n Inference memory: {} of weights, {} of scratch per sample", bytes(weights / 4), bytes(scratch / 4));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_keras_does() {
        assert_eq!(thousands(4810), "4,810");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(4810), "18.79 KB");
        assert_eq!(bytes(0), "0.00 B");
        assert_eq!(shape(&[8, 8, 1]), "(None, 8, 8, 1)");
    }
}
