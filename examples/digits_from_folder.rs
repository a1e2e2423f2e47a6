//! Images from a folder per class, as a Keras user's data usually comes: writes the shipped 8×8
//! digits as PNG files into `target/kiln-digits-folder/<digit>/`, and trains a CNN whose first
//! layers augment the images in training (`RandomTranslation`, `RandomContrast`; no flips: a
//! flipped digit is another digit) and scale them to 0..1 — first streaming the files
//! (`kiln::data::image_batches_from_directory`: decoded a batch at a time on a prefetching
//! thread, a new order each epoch), then from the same images read into memory
//! (`image_dataset_from_directory`), grayscale with a seeded fifth held out either way. Prints
//! the held-out accuracy and samples/s of both.
//!
//! Run with `cargo run --release --example digits_from_folder`.

use std::path::{Path, PathBuf};

use kiln::data::{ColorMode, Dataset, ImageFolder, Subset, image_batches_from_directory, image_dataset_from_directory};
use kiln::prelude::*;

sequential! {
    /// 8×8×1 digit images, values 0..255 as read from the files, to 10 class probabilities.
    pub struct FolderCnn: [8, 8, 1] {
        RandomTranslation(0.1, 0.1, fill_mode = "constant"),   // up to 0.8 pixel, training only
        RandomContrast(0.2),                                  // value_range [0, 255], training only
        Rescaling(0.00392156862745098),                       // 1 / 255
        Conv2D(32, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Conv2D(64, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Dropout(0.25),
        Flatten,
        Dense(64, activation = relu),
        Dropout(0.25),
        Dense(10, activation = softmax),
    }
}

/// Writes the first `limit` digits of the shipped CSV (values 0..16) as 8-bit grayscale PNG
/// files (0..255), one folder per class under `dir`.
pub fn write_digit_pngs(dir: &Path, limit: usize) -> kiln::Result<usize> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&table)?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| kiln::Error::Io { path: path.clone(), source }
    };
    let _ = std::fs::remove_dir_all(dir);
    let n = limit.min(pixels.nrows());
    for (i, (row, label)) in pixels.outer_iter().zip(&labels).take(n).enumerate() {
        let class = dir.join((*label as usize).to_string());
        std::fs::create_dir_all(&class).map_err(io(&class))?;
        let path = class.join(format!("{i:04}.png"));
        let bytes: Vec<u8> = row.iter().map(|v| (v * 255.0 / 16.0).round() as u8).collect();
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut png = png::Encoder::new(std::io::BufWriter::new(file), 8, 8);
        png.set_color(png::ColorType::Grayscale);
        png.set_depth(png::BitDepth::Eight);
        let bad =
            |e: png::EncodingError| kiln::Error::BadFile { path: path.display().to_string(), reason: e.to_string() };
        png.write_header().and_then(|mut w| w.write_image_data(&bytes)).map_err(bad)?;
    }
    Ok(n)
}

fn main() -> kiln::Result<()> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kiln-digits-folder");
    let start = std::time::Instant::now();
    let written = write_digit_pngs(&dir, usize::MAX)?;
    println!("wrote {written} PNG files into {} in {:.2}s", dir.display(), start.elapsed().as_secs_f64());

    let opts = ImageFolder {
        image_size: (8, 8),
        color_mode: ColorMode::Grayscale,
        validation_split: 0.2,
        subset: Some(Subset::Both),
        seed: 7,
        ..ImageFolder::default()
    };
    let missing = || kiln::Error::InvalidData { what: "validation".into(), reason: "missing".into() };
    let epochs = 40;

    // Streamed: the files decoded a batch at a time on a background thread.
    let (train, val) = image_batches_from_directory(&dir, &opts, 32)?;
    let mut val = val.ok_or_else(missing)?;
    println!("{} training and {} held-out files of classes {:?}", train.len(), val.len(), train.class_names);
    let n = train.len();
    let mut model = FolderCnn::new();
    model.summary();
    compile(&mut model, epochs, n)?;
    let start = std::time::Instant::now();
    let fit = Fit { epochs, verbose: 2, ..Fit::default() };
    model.fit_dataset(&mut train.prefetch(8), fit)?;
    let streamed = (epochs * n) as f64 / start.elapsed().as_secs_f64();
    let held_out = model.evaluate_dataset(&mut val)?;
    println!("streamed from the files: {streamed:.0} samples/s; held-out accuracy {:.4}", held_out["accuracy"]);

    // In memory: every image decoded once, then arrays.
    let start = std::time::Instant::now();
    let (train, val) = image_dataset_from_directory(&dir, &opts)?;
    let val = val.ok_or_else(missing)?;
    println!(
        "read {} images into memory in {:.2}s",
        train.labels.len() + val.labels.len(),
        start.elapsed().as_secs_f64()
    );
    let mut model = FolderCnn::new();
    compile(&mut model, epochs, n)?;
    let start = std::time::Instant::now();
    model.fit(&train.images, &train.labels, Fit { epochs, batch_size: 32, verbose: 0, ..Fit::default() })?;
    let in_memory = (epochs * n) as f64 / start.elapsed().as_secs_f64();
    let held_out = model.evaluate(&val.images, &val.labels)?;
    println!("from arrays in memory: {in_memory:.0} samples/s; held-out accuracy {:.4}", held_out["accuracy"]);
    println!("streamed / in memory: {:.2}x the samples/s", streamed / in_memory);
    Ok(())
}

/// Adam with a cosine decay over the run's steps.
fn compile(model: &mut FolderCnn, epochs: usize, n: usize) -> kiln::Result<()> {
    let steps = epochs * n.div_ceil(32);
    let adam = kiln::Scheduled::new(Adam::default(), kiln::CosineDecay::new(0.003, steps as u64));
    model.compile("sparse_categorical_crossentropy", adam, &["accuracy"])
}
