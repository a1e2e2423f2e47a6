//! The main job: classify the 8x8 handwritten digits kiln ships, with a progress bar, holding
//! out the last 20% of the rows for validation, then report the held-out accuracy.
//!
//! Run with `cargo run --release --example digits`. The weights go to `target/kiln-digits/`;
//! `-- --refresh` writes them over the committed `examples/models/digits.safetensors` (which
//! `examples/embed.rs` compiles into its binary) instead.

use std::time::Instant;

use kiln::PlotOptions;
use kiln::prelude::*;

sequential! {
    /// 8x8 grey-level digit images to the probabilities of the 10 digits.
    pub struct Digits: [8, 8, 1] {
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    // The file is ordered by writer: shuffle once (seeded) so the held-out rows are representative.
    let table = kiln::data::shuffle_rows(&table, 7);
    let (pixels, labels) = kiln::data::split_label(&table)?;
    let n = pixels.nrows();
    // Pixels are 0..16: scale to [0, 1] and give each sample its image shape.
    let x = (pixels / 16.0).into_shape_with_order((n, 8, 8, 1)).expect("64 pixels per row");
    println!("digits: {n} images of 8x8, 10 classes");

    let mut model = Digits::new();
    model.summary();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"])?;

    let start = Instant::now();
    let history =
        model.fit(&x, &labels, Fit { epochs: 30, batch_size: 32, validation_split: 0.2, ..Fit::default() })?;
    let took = start.elapsed();

    // validation_split held out the last 20% of the rows: they were never trained on.
    let held_out = n - (n as f64 * 0.8).floor() as usize;
    let (xh, yh) = (x.slice(ndarray::s![n - held_out.., .., .., ..]), labels.slice(ndarray::s![n - held_out..]));
    let scores = model.evaluate(&xh, &yh)?;

    // Pictures of the model and of the training curves, drawn without Graphviz, and the weights.
    let out = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kiln-digits"));
    std::fs::create_dir_all(out).map_err(|source| kiln::Error::Io { path: out.display().to_string(), source })?;
    // With --refresh, the committed weights examples/embed.rs compiles into its binary.
    let weights = match std::env::args().any(|a| a == "--refresh") {
        true => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/digits.safetensors"),
        false => out.join("digits.safetensors"),
    };
    model.save_weights(&weights)?;
    println!("saved the weights to {}", weights.display());

    let opts = PlotOptions {
        show_shapes: true,
        show_layer_names: true,
        show_layer_activations: true,
        ..PlotOptions::default()
    };
    kiln::plot_model(&model, out.join("model.png"), &opts)?;
    history.plot(out.join("history.png"))?;
    println!("drew model.png and history.png in {}", out.display());

    println!(
        "trained {} epochs in {:.2}s; held-out accuracy on {held_out} images: {:.4} (loss {:.4})",
        history.epoch.len(),
        took.as_secs_f64(),
        scores["accuracy"],
        scores["loss"]
    );
    Ok(())
}
