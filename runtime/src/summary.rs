//! `model.summary()`: Keras 3's table, from the layer table the model macro computed.

use crate::model::Model;

/// One layer of a model, as the model macro computed it at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name (`dense_1`), also the prefix of its parameter names.
    pub name: &'static str,
    /// Its Keras class (`Dense`, `Flatten`).
    pub kind: &'static str,
    /// Shape of one output sample.
    pub output_shape: &'static [usize],
    /// Number of parameter values.
    pub params: usize,
    /// The layers it reads, as Keras' `Connected to` column writes them (`dense[0][0]`);
    /// empty for Sequential models.
    pub connected: &'static [&'static str],
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

fn shape(s: &[usize]) -> String {
    let mut out = String::from("(None");
    for d in s {
        out += &format!(", {d}");
    }
    out + ")"
}

pub(crate) fn render<M: Model>(m: &M) -> String {
    let (mut total, mut trainable) = (0, 0);
    m.visit_weights(&mut |_, p| {
        total += p.len();
        if p.trainable {
            trainable += p.len();
        }
    });
    let w = [33, 24, 15];
    let line = |l: &str, mid: &str, r: &str, fill: &str| {
        format!("{l}{}{mid}{}{mid}{}{r}\n", fill.repeat(w[0]), fill.repeat(w[1]), fill.repeat(w[2]))
    };
    let row = |a: &str, b: &str, c: &str, bar: &str| {
        format!("{bar} {a:<0$} {bar} {b:<1$} {bar} {c:>2$} {bar}\n", w[0] - 2, w[1] - 2, w[2] - 2)
    };
    let mut s = format!("Model: \"{}\"\n", M::NAME);
    s += &line("┏", "┳", "┓", "━");
    s += &row("Layer (type)", "Output Shape", "Param #", "┃");
    s += &line("┡", "╇", "┩", "━");
    for (i, l) in M::LAYERS.iter().enumerate() {
        if i > 0 {
            s += &line("├", "┼", "┤", "─");
        }
        s += &row(&format!("{} ({})", l.name, l.kind), &shape(l.output_shape), &thousands(l.params), "│");
    }
    s += &line("└", "┴", "┘", "─");
    s += &format!(" Total params: {} ({})\n", thousands(total), bytes(total));
    s += &format!(" Trainable params: {} ({})\n", thousands(trainable), bytes(trainable));
    s += &format!(" Non-trainable params: {} ({})", thousands(total - trainable), bytes(total - trainable));
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
