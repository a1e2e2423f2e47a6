//! The readers of `kiln::data`: NumPy `.npy` / `.npz` files of every numeric dtype, and
//! `image_dataset_from_directory` against what NumPy and Keras 3 read from the same files
//! (`tests/fixtures/data/`, `tests/fixtures/keras/image_folder.txt`, both from
//! `examples/keras/data_reference.py`), its split, and the errors bad data gives.

use std::path::{Path, PathBuf};

use kiln::data::{
    Batch, ColorMode, Dataset, ImageFolder, Subset, image_batches_from_directory, image_dataset_from_directory,
    read_npy, read_npz,
};

const FIXTURE: &str = include_str!("../fixtures/keras/image_folder.txt");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("{key} missing from image_folder.txt"))
}

/// Asserts every value is within `levels` of Keras' (absolute, in 0..255 levels), and on
/// average within `mean`.
fn within(name: &str, got: &[f32], want: &[f32], levels: f32, mean: f32) {
    assert_eq!(got.len(), want.len(), "{name}: lengths differ");
    let diffs: Vec<f32> = got.iter().zip(want).map(|(g, w)| (g - w).abs()).collect();
    let worst = diffs.iter().copied().fold(0.0f32, f32::max);
    let average = diffs.iter().sum::<f32>() / diffs.len() as f32;
    assert!(worst <= levels, "{name}: kiln and Keras differ by {worst} levels (allowed {levels})");
    assert!(average <= mean, "{name}: kiln and Keras differ by {average} levels on average (allowed {mean})");
}

/// A fresh scratch folder under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-data-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn npy_files_of_every_numeric_dtype_read_as_numpy_reads_them() {
    for name in ["f32", "f64", "i64", "u8_fortran", "i16_big"] {
        let a = read_npy(format!("{DATA}/{name}.npy")).unwrap();
        let shape: Vec<usize> = reference(&format!("npy.{name}.shape")).iter().map(|d| *d as usize).collect();
        assert_eq!(a.shape(), &shape[..], "{name}");
        let values: Vec<f32> = a.iter().copied().collect();
        assert_eq!(values, reference(&format!("npy.{name}")), "{name}");
    }
    let npz = read_npz(format!("{DATA}/mnist_like.npz")).unwrap();
    assert_eq!(npz.keys().collect::<Vec<_>>(), ["x_train", "y_train"]);
    assert_eq!(npz["x_train"].shape(), &[3, 4, 4]);
    assert_eq!(npz["x_train"].iter().copied().collect::<Vec<_>>(), reference("npz.x_train"));
    assert_eq!(npz["y_train"].iter().copied().collect::<Vec<_>>(), reference("npz.y_train"));
    // Bad files name the file and what is wrong.
    let e = read_npy(format!("{DATA}/strings.npy")).unwrap_err().to_string();
    assert!(e.contains("strings.npy") && e.contains("dtype kiln does not read"), "{e}");
    let e = read_npy(format!("{DATA}/missing.npy")).unwrap_err().to_string();
    assert!(e.contains("missing.npy"), "{e}");
    let e = read_npz(format!("{DATA}/f32.npy")).unwrap_err().to_string();
    assert!(e.contains("f32.npy: not a valid .npz (zip) file"), "{e}");
    let dir = scratch("npy");
    std::fs::write(dir.join("cut.npy"), &std::fs::read(format!("{DATA}/f64.npy")).unwrap()[..100]).unwrap();
    let e = read_npy(dir.join("cut.npy")).unwrap_err().to_string();
    assert!(e.contains("cut.npy: not a valid .npy array"), "{e}");
}

#[test]
fn image_folders_read_as_keras_reads_them() {
    let opts = ImageFolder { image_size: (4, 6), shuffle: false, ..ImageFolder::default() };
    let (set, none) = image_dataset_from_directory(format!("{DATA}/images"), &opts).unwrap();
    assert!(none.is_none());
    assert_eq!(set.class_names, ["cats", "dogs", "zebras"]);
    assert_eq!(set.labels.to_vec(), reference("rgb.labels"));
    assert_eq!(set.images.shape(), &[4, 4, 6, 3]);
    let (got, want) = (set.images.iter().copied().collect::<Vec<_>>(), reference("rgb.images"));
    // PNG and BMP decode to the same bytes as TensorFlow's, and resize to the same values.
    let per = 4 * 6 * 3;
    for (i, file) in set.files.iter().enumerate() {
        let jpeg = file.extension().is_some_and(|e| e == "jpg");
        // JPEG: TensorFlow decodes with libjpeg's fast integer IDCT, which differs from its own
        // accurate one on this file by up to 8 levels, 3.36 on average; zune-jpeg's differs from
        // the fast one by as much (9.4, 3.35).
        let (levels, mean) = if jpeg { (12.0, 4.0) } else { (1e-3, 1e-4) };
        within(&file.display().to_string(), &got[i * per..][..per], &want[i * per..][..per], levels, mean);
    }
    let gray = ImageFolder { color_mode: ColorMode::Grayscale, ..opts };
    let (set, _) = image_dataset_from_directory(format!("{DATA}/gray"), &gray).unwrap();
    assert_eq!((set.images.shape(), set.class_names.clone()), (&[2, 4, 6, 1][..], vec!["ones".into(), "twos".into()]));
    let (got, want) = (set.images.iter().copied().collect::<Vec<_>>(), reference("grayscale.images"));
    within("one-channel PNG", &got[..24], &want[..24], 1e-3, 1e-4);
    // An RGB file made gray with TensorFlow's weights.
    within("three-channel PNG as grayscale", &got[24..], &want[24..], 1e-3, 1e-4);
}

#[test]
fn a_validation_split_is_seeded_disjoint_and_complete() {
    let split = |seed, subset| {
        let opts = ImageFolder {
            image_size: (2, 2),
            validation_split: 0.25,
            subset: Some(subset),
            seed,
            ..ImageFolder::default()
        };
        image_dataset_from_directory(format!("{DATA}/images"), &opts).unwrap()
    };
    let (train, val) = split(7, Subset::Both);
    let val = val.unwrap();
    assert_eq!((train.files.len(), val.files.len()), (3, 1), "int(0.25 × 4) held out, as Keras");
    let mut all: Vec<_> = train.files.iter().chain(&val.files).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4);
    assert_eq!(split(7, Subset::Training).0.files, train.files);
    assert_eq!(split(7, Subset::Validation).0.files, val.files);
    assert_eq!(train.images.shape(), &[3, 2, 2, 3]);
}

/// The images of one pass of a streamed folder, with their labels, concatenated.
fn one_pass(ds: &mut impl Dataset<Item = Batch>) -> (Vec<f32>, Vec<f32>) {
    ds.restart().unwrap();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    while let Some(b) = ds.next_item() {
        let b = b.unwrap();
        images.extend(b.x[0].iter().copied());
        labels.extend(b.y[0].iter().copied());
    }
    (images, labels)
}

#[test]
fn a_streamed_folder_holds_the_same_images_and_split_a_new_order_each_pass() {
    let opts = ImageFolder {
        image_size: (3, 3),
        validation_split: 0.25,
        subset: Some(Subset::Both),
        ..ImageFolder::default()
    };
    let (train, val) = image_dataset_from_directory(format!("{DATA}/images"), &opts).unwrap();
    let (val, in_memory) = (val.unwrap(), train);
    // Without shuffling, a pass is the arrays, in batches of 2 (the last holds the remainder).
    let fixed = ImageFolder { shuffle: false, ..opts.clone() };
    let (arrays, _) = image_dataset_from_directory(format!("{DATA}/images"), &fixed).unwrap();
    let (mut stream, _) = image_batches_from_directory(format!("{DATA}/images"), &fixed, 2).unwrap();
    assert_eq!(stream.cardinality(), Some(2));
    let (images, labels) = one_pass(&mut stream);
    assert_eq!(images, arrays.images.iter().copied().collect::<Vec<_>>());
    assert_eq!(labels, arrays.labels.to_vec());
    // Shuffled: the split is the arrays' split; each pass holds the same images in a new order.
    let (mut stream, held) = image_batches_from_directory(format!("{DATA}/images"), &opts, 2).unwrap();
    let held = held.unwrap();
    assert_eq!(held.files().map(|(p, _)| p.to_path_buf()).collect::<Vec<_>>(), val.files);
    let mut want: Vec<_> = in_memory.files.clone();
    want.sort();
    let mut got: Vec<_> = stream.files().map(|(p, _)| p.to_path_buf()).collect();
    got.sort();
    assert_eq!(got, want);
    let passes: Vec<(Vec<f32>, Vec<f32>)> = (0..4).map(|_| one_pass(&mut stream)).collect();
    assert!(passes.iter().any(|p| p.1 != passes[0].1), "four passes in one order: {passes:?}");
    for (_, labels) in &passes {
        let mut sorted = labels.clone();
        sorted.sort_by(f32::total_cmp);
        let mut want = in_memory.labels.to_vec();
        want.sort_by(f32::total_cmp);
        assert_eq!(sorted, want);
    }
    // A file that stops decoding between passes is an error naming it.
    let dir = scratch("stream");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::copy(format!("{DATA}/images/cats/a.png"), dir.join("a/x.png")).unwrap();
    let (mut stream, _) =
        image_batches_from_directory(&dir, &ImageFolder { image_size: (2, 2), ..ImageFolder::default() }, 4).unwrap();
    assert!(stream.next_item().unwrap().is_ok());
    std::fs::write(dir.join("a/x.png"), "cut").unwrap();
    stream.restart().unwrap();
    let e = stream.next_item().unwrap().unwrap_err().to_string();
    assert!(e.contains("x.png: cannot decode the image"), "{e}");
}

#[test]
fn bad_folders_and_files_are_errors_naming_them() {
    let read = |dir: &Path| image_dataset_from_directory(dir, &ImageFolder::default()).unwrap_err().to_string();
    let dir = scratch("empty");
    assert!(read(&dir).contains("holds no class folders"), "{}", read(&dir));
    std::fs::create_dir_all(dir.join("cats")).unwrap();
    std::fs::write(dir.join("cats/readme.txt"), "no images here").unwrap();
    let e = read(&dir);
    assert!(e.contains("cats") && e.contains("class folder holds no images"), "{e}");
    std::fs::write(dir.join("cats/broken.png"), "not a png").unwrap();
    let e = read(&dir);
    assert!(e.contains("broken.png: cannot decode the image"), "{e}");
    std::fs::write(dir.join("cats/anim.gif"), "GIF89a").unwrap();
    assert!(read(&dir).contains("anim.gif: GIF images are not read by kiln"));
    let e = read(&dir.join("nowhere"));
    assert!(e.contains("nowhere") && e.contains("not a directory"), "{e}");
    let opts = ImageFolder { validation_split: 0.2, ..ImageFolder::default() };
    let e = image_dataset_from_directory(format!("{DATA}/images"), &opts).unwrap_err().to_string();
    assert!(e.contains("`subset`") && e.contains("needs a subset"), "{e}");
    let opts = ImageFolder { image_size: (0, 4), ..ImageFolder::default() };
    let e = image_dataset_from_directory(format!("{DATA}/images"), &opts).unwrap_err().to_string();
    assert!(e.contains("`image_size`"), "{e}");
}

kiln::sequential! {
    /// `examples/digits_from_folder.rs`'s model, smaller and without BatchNormalization (whose
    /// moving statistics need more steps than this test takes): augmentation and scaling as
    /// its first layers.
    pub struct FolderCnn: [8, 8, 1] {
        RandomTranslation(0.1, 0.1, fill_mode = "constant"),
        RandomContrast(0.2),
        Rescaling(0.00392156862745098),
        Conv2D(16, 3, padding = same, activation = relu),
        MaxPooling2D(2),
        Conv2D(32, 3, padding = same, activation = relu),
        MaxPooling2D(2),
        Flatten,
        Dense(10, activation = softmax),
    }
}

/// `examples/digits_from_folder.rs`'s path on the first 600 digits for 20 epochs: PNG files written
/// per class, read back exactly, and a CNN with augmentation layers trained on them.
#[test]
fn digits_written_as_png_folders_read_back_and_train() {
    use kiln::prelude::*;
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (pixels, labels) = kiln::data::split_label(&table).unwrap();
    let dir = scratch("digits");
    let n = 600;
    for (i, (row, label)) in pixels.outer_iter().zip(&labels).take(n).enumerate() {
        let class = dir.join((*label as usize).to_string());
        std::fs::create_dir_all(&class).unwrap();
        let bytes: Vec<u8> = row.iter().map(|v| (v * 255.0 / 16.0).round() as u8).collect();
        let file = std::fs::File::create(class.join(format!("{i:04}.png"))).unwrap();
        let mut png = png::Encoder::new(file, 8, 8);
        png.set_color(png::ColorType::Grayscale);
        png.write_header().unwrap().write_image_data(&bytes).unwrap();
    }
    let opts = ImageFolder {
        image_size: (8, 8),
        color_mode: ColorMode::Grayscale,
        validation_split: 0.2,
        subset: Some(Subset::Both),
        seed: 7,
        ..ImageFolder::default()
    };
    let (train, val) = image_dataset_from_directory(&dir, &opts).unwrap();
    let val = val.unwrap();
    assert_eq!((train.labels.len(), val.labels.len()), (480, 120));
    assert_eq!(train.class_names, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    // Each file's pixels and label come back as written (8×8 to 8×8 resizes nothing).
    for (k, file) in train.files.iter().enumerate().take(20) {
        let i: usize = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let want: Vec<f32> = pixels.row(i).iter().map(|v| (v * 255.0 / 16.0).round()).collect();
        assert_eq!(train.images.index_axis(kiln::ndarray::Axis(0), k).iter().copied().collect::<Vec<_>>(), want);
        assert_eq!(train.labels[k], labels[i]);
    }
    let mut model = FolderCnn::new();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"]).unwrap();
    model.fit(&train.images, &train.labels, Fit { epochs: 20, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = model.evaluate(&val.images, &val.labels).unwrap()["accuracy"];
    assert!(acc >= 0.85, "held-out accuracy {acc}");
}
