//! `summary()` for each model style (exact text, Keras' layout) and `plot_model` / `History::plot`
//! to DOT, SVG and PNG, drawn without Graphviz.

use kiln::ndarray::Array2;
use kiln::prelude::*;
use kiln::{PlotOptions, plot_model};

functional! {
    /// Two inputs, a skip connection, a shared layer and two outputs.
    pub struct Tower {
        a = Input([32]);
        b = Input([32]);
        shared = Dense(32, activation = relu);
        ha = shared(a);
        hb = shared(b);
        merged = Concatenate()([ha, hb]);
        h = Dense(64, activation = relu)(merged);
        res = Add()([h, Dense(64)(merged)]);
        class = Dense(3, activation = softmax, name = "class")(res);
        score = Dense(1, name = "score")(res);
        Model([a, b], [class, score])
    }
}

#[kiln::model]
pub struct MyModel {
    dense1: Dense<10, 64, Relu>,
    #[layer(trainable = false)]
    dense2: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<10>) -> Output<10> {
        self.dense2(self.dense1(x))
    }
}

fn total_param_values<M: Model>(m: &M) -> usize {
    m.weights().iter().map(|(_, p)| p.value.len()).sum()
}

#[test]
fn functional_summary_has_connections() {
    let m = Tower::new();
    let want = "\
Model: \"Tower\"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃     Param # ┃ Connected to           ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━┩
│ a (InputLayer)                  │ (None, 32)             │           0 │ -                      │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ b (InputLayer)                  │ (None, 32)             │           0 │ -                      │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ dense (Dense)                   │ (None, 32)             │       1,056 │ a[0][0],               │
│                                 │                        │             │ b[0][0]                │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ concatenate (Concatenate)       │ (None, 64)             │           0 │ dense[0][0],           │
│                                 │                        │             │ dense[1][0]            │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ dense_1 (Dense)                 │ (None, 64)             │       4,160 │ concatenate[0][0]      │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ dense_2 (Dense)                 │ (None, 64)             │       4,160 │ concatenate[0][0]      │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ add (Add)                       │ (None, 64)             │           0 │ dense_1[0][0],         │
│                                 │                        │             │ dense_2[0][0]          │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ class (Dense)                   │ (None, 3)              │         195 │ add[0][0]              │
├─────────────────────────────────┼────────────────────────┼─────────────┼────────────────────────┤
│ score (Dense)                   │ (None, 1)              │          65 │ add[0][0]              │
└─────────────────────────────────┴────────────────────────┴─────────────┴────────────────────────┘
 Total params: 9,636 (37.64 KB)
 Trainable params: 9,636 (37.64 KB)
 Non-trainable params: 0 (0.00 B)
 Inference memory: 37.64 KB of weights, 768.00 B of scratch per sample";
    assert_eq!(m.summary_string(), want, "\n{}", m.summary_string());
    assert_eq!(m.count_params(), total_param_values(&m));
}

#[test]
fn derived_summary_counts_frozen_fields() {
    let m = MyModel::new();
    let want = "\
Model: \"MyModel\"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense1 (Dense)                  │ (None, 64)             │           704 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense2 (Dense)                  │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 1,354 (5.29 KB)
 Trainable params: 704 (2.75 KB)
 Non-trainable params: 650 (2.54 KB)";
    assert_eq!(m.summary_string(), want, "\n{}", m.summary_string());
    assert_eq!(m.count_params(), total_param_values(&m));
}

fn out_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-plot-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tower_plots_to_dot_svg_and_png() {
    let m = Tower::new();
    let d = out_dir();
    let opts = PlotOptions {
        show_shapes: true,
        show_layer_names: true,
        show_layer_activations: true,
        ..PlotOptions::default()
    };

    plot_model(&m, d.join("tower.dot"), &opts).unwrap();
    let dot = std::fs::read_to_string(d.join("tower.dot")).unwrap();
    let graph = layout::gv::DotParser::new(&dot).process().expect("the DOT parses back");
    let (mut nodes, mut edges) = (0, 0);
    for stmt in &graph.list.list {
        match stmt {
            layout::gv::parser::ast::Stmt::Node(_) => nodes += 1,
            layout::gv::parser::ast::Stmt::Edge(e) => edges += e.to.len(),
            _ => {}
        }
    }
    // 2 inputs + 7 layers, one node each (the shared layer too); its two uses both feed the
    // concatenation, drawn as one edge.
    assert_eq!((nodes, edges), (9, 9), "{dot}");
    assert!(dot.contains("Input shape: [(None, 32), (None, 32)]"), "{dot}");

    plot_model(&m, d.join("tower.svg"), &opts).unwrap();
    let svg = std::fs::read_to_string(d.join("tower.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let text: String =
        doc.descendants().filter(|n| n.is_text()).map(|n| n.text().unwrap_or("")).collect::<Vec<_>>().join("\n");
    for l in Tower::LAYERS {
        assert!(text.contains(l.name), "layer {} missing from the SVG", l.name);
    }
    for shape in ["(None, 32)", "(None, 64)", "(None, 3)", "(None, 1)"] {
        assert!(text.contains(shape), "{shape} missing from the SVG");
    }

    plot_model(&m, d.join("tower.png"), &PlotOptions { dpi: 96, ..opts.clone() }).unwrap();
    let svg_size =
        doc.root_element().attribute("width").and_then(|w| w.trim_end_matches("px").parse::<f32>().ok()).unwrap();
    let decoder = png::Decoder::new(std::fs::File::open(d.join("tower.png")).unwrap());
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!(info.width, svg_size.ceil() as u32, "at 96 dpi the PNG has the SVG's size");
    plot_model(&m, d.join("tower_hi.png"), &opts).unwrap();
    let hi = png::Decoder::new(std::fs::File::open(d.join("tower_hi.png")).unwrap()).read_info().unwrap().info().width;
    assert_eq!(hi, (svg_size * 200.0 / 96.0).ceil() as u32, "dpi 200 scales the image");

    let e = plot_model(&m, d.join("tower.jpg"), &opts).unwrap_err().to_string();
    assert!(e.contains("kiln writes .dot, .svg and .png"), "{e}");
}

#[test]
fn history_plots_training_and_validation_curves() {
    let x = Array2::from_shape_fn((64, 10), |(i, j)| ((i * 7 + j) % 11) as f32 / 11.0);
    let y = kiln::ndarray::Array1::from_shape_fn(64, |i| (i % 10) as f32);
    let mut m = MyModel::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 5, validation_split: 0.25, verbose: 0, ..Fit::default() }).unwrap();
    let d = out_dir();
    h.plot(d.join("history.svg")).unwrap();
    let svg = std::fs::read_to_string(d.join("history.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for t in ["loss per epoch", "accuracy per epoch", "training", "validation", "epoch"] {
        assert!(texts.iter().any(|x| x.contains(t)), "{t} missing");
    }
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("polyline")).count(), 4, "two curves on each of two panels");
    h.plot(d.join("history.png")).unwrap();
    assert!(png::Decoder::new(std::fs::File::open(d.join("history.png")).unwrap()).read_info().is_ok());
}

functional! {
    /// A plain chain written functionally: Keras leaves out `Connected to` for it.
    pub struct Chain {
        inputs = Input([8]);
        h = Dense(4, activation = relu)(inputs);
        outputs = Dense(2)(h);
        Model(inputs, outputs)
    }
}

#[test]
fn a_functional_chain_has_no_connected_to_column() {
    let s = Chain::new().summary_string();
    assert!(!s.contains("Connected to"), "{s}");
    // kiln names the input row after its variable (Keras: `input_layer`).
    assert!(s.contains("inputs (InputLayer)"), "{s}");
    assert!(Tower::new().summary_string().contains("Connected to"));
}
