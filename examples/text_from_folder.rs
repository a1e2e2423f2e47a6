//! Text classification from a folder of text files per class, as a Keras user's texts usually
//! come: writes the shipped paragraphs of three books of the Rust documentation (The Rust
//! Programming Language, The Cargo Book, The Rustonomicon; `examples/data/rust_docs.tsv.gz`) as
//! one `.txt` file each into `target/kiln-text-from-folder/<book>/`, reads them back with
//! `text_dataset_from_directory` (a seeded fifth held out), and trains a model whose first
//! layer is a `TextVectorization` adapted on the training texts: the model takes raw strings.
//! Prints the held-out accuracy and classifies a few sentences.
//!
//! The weights (the vocabulary with them) go to `target/kiln-text-from-folder/`; with
//! `--refresh` they are written over `examples/models/rust_docs.safetensors`, which
//! `tests/it/text_models.rs` compiles in with `#[weights]`.
//!
//! Run with `cargo run --release --example text_from_folder`.

use std::io::Read;
use std::path::Path;

use kiln::data::{Subset, TextFolder, text_dataset_from_directory};
use kiln::prelude::*;

sequential! {
    /// A paragraph to the book it comes from: its words (the 2,000 most frequent, each text cut
    /// or padded to 120), their vectors averaged, a softmax over the three books.
    pub struct RustDocs: Input([], dtype = string) {
        TextVectorization(max_tokens = 2000, output_sequence_length = 120),
        Embedding(2000, 16, mask_zero = true),
        GlobalAveragePooling1D,
        Dense(3, activation = softmax),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> kiln::Error + '_ {
    move |source| kiln::Error::Io { path: path.display().to_string(), source }
}

/// Writes every paragraph of the corpus as a file of its own, one folder per book.
fn write_corpus(dir: &Path) -> kiln::Result<usize> {
    let gz = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/rust_docs.tsv.gz"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).map_err(io(gz))?).read_to_string(&mut text).map_err(io(gz))?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let (book, paragraph) = line.split_once('\t').ok_or_else(|| kiln::Error::InvalidData {
            what: gz.display().to_string(),
            reason: format!("line {} is not `book<TAB>paragraph`", i + 1),
        })?;
        let folder = dir.join(book);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let file = folder.join(format!("{i:04}.txt"));
        std::fs::write(&file, paragraph).map_err(io(&file))?;
        n += 1;
    }
    Ok(n)
}

fn main() -> kiln::Result<()> {
    let out = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kiln-text-from-folder"));
    let docs = out.join("docs");
    let _ = std::fs::remove_dir_all(&docs);
    println!("wrote {} paragraphs under {}", write_corpus(&docs)?, docs.display());
    let folder = TextFolder { validation_split: 0.2, subset: Some(Subset::Both), seed: 42, ..TextFolder::default() };
    let (train, held_out) = text_dataset_from_directory(&docs, &folder)?;
    let held_out = held_out.ok_or_else(|| kiln::Error::InvalidArgument {
        name: "subset",
        reason: "Subset::Both returns the held-out texts".into(),
    })?;
    println!(
        "classes {:?}: {} training texts, {} held out",
        train.class_names,
        train.texts.len(),
        held_out.texts.len()
    );

    let mut model = RustDocs::new();
    model.adapt(&train.texts)?;
    model.summary();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"])?;
    model.fit(&train.texts, &train.labels, Fit { epochs: 20, batch_size: 32, verbose: 0, ..Fit::default() })?;
    let acc = model.evaluate(&held_out.texts, &held_out.labels)?["accuracy"];
    println!("held-out accuracy: {acc:.4}");

    let sentences = [
        "Add the crate to the dependencies section of Cargo.toml and run cargo build.",
        "Dereferencing a raw pointer is undefined behavior unless it is aligned and points to initialized memory.",
        "A closure can capture values from the scope in which it is defined.",
    ];
    let p = model.predict(&sentences)?;
    for (s, row) in sentences.iter().zip(p.rows()) {
        let best = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
        println!("{:>8} ({:.2}): {s}", train.class_names[best], row[best]);
    }

    let refresh = std::env::args().any(|a| a == "--refresh");
    let path = if refresh {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/models/rust_docs.safetensors")).to_path_buf()
    } else {
        out.join("rust_docs.safetensors")
    };
    model.save_weights(&path)?;
    println!("weights and vocabulary: {}", path.display());
    if acc < 0.85 {
        return Err(kiln::Error::InvalidData {
            what: "held-out texts".into(),
            reason: format!("accuracy {acc} < 0.85"),
        });
    }
    Ok(())
}
