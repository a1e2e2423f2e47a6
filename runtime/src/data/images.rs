//! Keras' `image_dataset_from_directory`: a folder of images per class read into memory as
//! `f32` arrays `[n, height, width, channels]` (values 0..255, as Keras gives them) with integer
//! labels from the class folders in Keras' (alphanumeric) order. PNG, JPEG and BMP are decoded
//! by the `image` crate.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};

use super::folders::{Split, Subset, bad, class_files, entries, io_error};
use crate::error::{Error, Result};

/// The channels images are read with (Keras' `color_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMode {
    /// One channel (`"grayscale"`); colour files are converted as TensorFlow's PNG decoder
    /// does, `⌊0.299 R + 0.587 G + 0.114 B⌋` (its JPEG decoder rounds instead: a level apart).
    Grayscale,
    /// Three channels (`"rgb"`, Keras' default).
    #[default]
    Rgb,
}

impl ColorMode {
    fn channels(self) -> usize {
        match self {
            ColorMode::Grayscale => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// The options of [`image_dataset_from_directory`], Keras' arguments and defaults.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// `(height, width)` every image is resized to, bilinearly as Keras does (default `(256, 256)`).
    pub image_size: (usize, usize),
    /// One or three channels.
    pub color_mode: ColorMode,
    /// The fraction held out for validation (0: none). Needs a `subset`, as in Keras.
    pub validation_split: f32,
    /// Which part of the split to return; `None` without a split.
    pub subset: Option<Subset>,
    /// Shuffle the files (with `seed`) before splitting, as Keras does by default.
    pub shuffle: bool,
    /// The seed of that shuffle: the same seed gives the same split (default [`crate::DEFAULT_SEED`]).
    /// The order is kiln's own, not NumPy's.
    pub seed: u64,
}

impl Default for ImageFolder {
    fn default() -> Self {
        ImageFolder {
            image_size: (256, 256),
            color_mode: ColorMode::Rgb,
            validation_split: 0.0,
            subset: None,
            shuffle: true,
            seed: crate::DEFAULT_SEED,
        }
    }
}

/// Images read from class folders.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// `[n, height, width, channels]`, values 0..255.
    pub images: Array4<f32>,
    /// Each image's class, an index into `class_names` (as `f32`, what
    /// `sparse_categorical_crossentropy` takes).
    pub labels: Array1<f32>,
    /// The class folders' names in label order (Keras' `class_names`).
    pub class_names: Vec<String>,
    /// Each image's file, in the order of `images`.
    pub files: Vec<PathBuf>,
}

/// The extensions read, lower case; Keras also reads GIF, which kiln refuses by name.
const FORMATS: [&str; 4] = ["bmp", "jpeg", "jpg", "png"];

/// The image files under a class folder, its subfolders included, as Keras walks it: folder
/// by folder in sorted order, files sorted within each.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let all = entries(dir)?;
    for path in all.iter().filter(|p| p.is_file()) {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        if FORMATS.contains(&ext.as_str()) {
            out.push(path.clone());
        } else if ext == "gif" {
            return Err(bad(path, "GIF images are not read by kiln (PNG, JPEG and BMP are)"));
        }
    }
    for sub in all.iter().filter(|p| p.is_dir()) {
        image_files(sub, out)?;
    }
    Ok(())
}

fn check(opts: &ImageFolder) -> Result<()> {
    if opts.image_size.0 == 0 || opts.image_size.1 == 0 {
        return Err(Error::InvalidArgument { name: "image_size", reason: format!("{:?} has a zero side", opts.image_size) });
    }
    Ok(())
}

/// Reads a folder holding one folder of images per class, as Keras'
/// `image_dataset_from_directory(dir, labels="inferred", label_mode="int", ...)`: the class
/// names are the folders' names in sorted order and each image's label is its folder's index;
/// every image is decoded (PNG, JPEG, BMP), given `color_mode`'s channels and resized
/// bilinearly to `image_size` (TensorFlow's `resize`, as Keras does). With a `validation_split`,
/// the files are shuffled with `seed` and the last fraction is held out; `subset` picks the part
/// returned first, and `Subset::Both` returns the validation part second.
///
/// An unreadable image, a class folder without images, a folder without class folders or a
/// GIF is an error naming the file or folder.
///
/// ```ignore
/// use kiln::data::{ColorMode, ImageFolder, Subset, image_dataset_from_directory};
/// let (train, val) = image_dataset_from_directory("flowers/", &ImageFolder {
///     image_size: (64, 64), color_mode: ColorMode::Rgb,
///     validation_split: 0.2, subset: Some(Subset::Both), ..ImageFolder::default()
/// })?;
/// model.fit(&train.images, &train.labels, Fit { validation_data: validation_data(&val.unwrap().images, ..), .. })?;
/// ```
pub fn image_dataset_from_directory(
    dir: impl AsRef<Path>,
    opts: &ImageFolder,
) -> Result<(ImageSet, Option<ImageSet>)> {
    let (class_names, train, validation) = listing(dir.as_ref(), opts)?;
    let read = |part: &[(PathBuf, usize)]| load(part, &class_names, opts);
    Ok(match opts.subset {
        None | Some(Subset::Training) => (read(&train)?, None),
        Some(Subset::Validation) => (read(&validation)?, None),
        Some(Subset::Both) => (read(&train)?, Some(read(&validation)?)),
    })
}

/// [`image_dataset_from_directory`] as a [`Dataset`](crate::data::Dataset) of batches, as Keras returns it: the
/// files are listed (and split) at once, and decoded a batch at a time as `fit_dataset` reads
/// them, so a folder larger than memory trains; add `.prefetch(n)` to decode on a background
/// thread while the model trains. With `shuffle`, each pass reads the files in a new order drawn
/// from `seed` and the pass number (the split itself is drawn once, as in
/// `image_dataset_from_directory`); the last batch of a pass holds the remainder.
///
/// ```ignore
/// let (train, val) = kiln::data::image_batches_from_directory("flowers/", &opts, 32)?;
/// model.fit_dataset_with(&mut train.prefetch(4), val.as_mut().map(|v| v as _), fit, &mut [])?;
/// ```
pub fn image_batches_from_directory(
    dir: impl AsRef<Path>,
    opts: &ImageFolder,
    batch_size: usize,
) -> Result<(ImageBatches, Option<ImageBatches>)> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument { name: "batch_size", reason: "must be at least 1, got 0".into() });
    }
    let (class_names, train, validation) = listing(dir.as_ref(), opts)?;
    let batches = |files: Vec<(PathBuf, usize)>, shuffle: bool| ImageBatches {
        order: (0..files.len()).collect(),
        files,
        class_names: class_names.clone(),
        opts: opts.clone(),
        batch_size,
        shuffle,
        pass: 0,
        at: 0,
    };
    // Keras shuffles the training files each epoch and reads the validation files in order.
    Ok(match opts.subset {
        None | Some(Subset::Training) => (batches(train, opts.shuffle), None),
        Some(Subset::Validation) => (batches(validation, false), None),
        Some(Subset::Both) => (batches(train, opts.shuffle), Some(batches(validation, false))),
    })
}

/// Images from class folders, decoded a batch at a time (see [`image_batches_from_directory`]).
#[derive(Clone, Debug)]
pub struct ImageBatches {
    files: Vec<(PathBuf, usize)>,
    /// The class folders' names in label order (Keras' `class_names`).
    pub class_names: Vec<String>,
    opts: ImageFolder,
    batch_size: usize,
    shuffle: bool,
    /// This pass's order of `files`, its number, and the next file of it.
    order: Vec<usize>,
    pass: u64,
    at: usize,
}

impl ImageBatches {
    /// The image files with their labels, in the order of the first pass before shuffling.
    pub fn files(&self) -> impl Iterator<Item = (&Path, usize)> {
        self.files.iter().map(|(p, l)| (p.as_path(), *l))
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl crate::data::Dataset for ImageBatches {
    type Item = crate::data::Batch;

    fn next_item(&mut self) -> Option<Result<crate::data::Batch>> {
        if self.at == 0 && self.shuffle {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            self.order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
            let seed = self.opts.seed ^ 0x1b87_3593 ^ self.pass.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            self.order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        if self.at >= self.files.len() {
            return None;
        }
        let to = (self.at + self.batch_size).min(self.files.len());
        let part: Vec<(PathBuf, usize)> = self.order[self.at..to].iter().map(|&i| self.files[i].clone()).collect();
        self.at = to;
        Some(load(&part, &self.class_names, &self.opts).map(|set| {
            crate::data::Batch::new(set.images.into_dyn(), set.labels.into_dyn())
        }))
    }

    fn restart(&mut self) -> Result<()> {
        if self.at > 0 {
            self.at = 0;
            self.pass += 1;
        }
        Ok(())
    }

    fn cardinality(&self) -> Option<usize> {
        Some(self.files.len().div_ceil(self.batch_size))
    }
}

/// The classes and the files of each part of the split.
#[allow(clippy::type_complexity)]
fn listing(dir: &Path, opts: &ImageFolder) -> Result<(Vec<String>, Vec<(PathBuf, usize)>, Vec<(PathBuf, usize)>)> {
    check(opts)?;
    let split = Split { validation_split: opts.validation_split, subset: opts.subset, shuffle: opts.shuffle, seed: opts.seed };
    class_files(dir, &split, image_files, "images (PNG, JPEG or BMP files)")
}

/// Decodes and resizes the files of one subset.
fn load(part: &[(PathBuf, usize)], class_names: &[String], opts: &ImageFolder) -> Result<ImageSet> {
    let (h, w) = opts.image_size;
    let c = opts.color_mode.channels();
    let mut images = Array4::zeros((part.len(), h, w, c));
    for ((path, _), mut out) in part.iter().zip(images.outer_iter_mut()) {
        let decoded = image::ImageReader::open(path)
            .map_err(io_error(path))?
            .with_guessed_format()
            .map_err(io_error(path))?
            .decode()
            .map_err(|e| bad(path, format!("cannot decode the image: {e}")))?;
        let (iw, ih) = (decoded.width() as usize, decoded.height() as usize);
        if iw == 0 || ih == 0 {
            return Err(bad(path, format!("the image is {iw}×{ih} pixels: it holds nothing to read")));
        }
        let pixels: Vec<f32> = match opts.color_mode {
            // A colour file made gray as TensorFlow's PNG decoder does: ⌊0.299 R + 0.587 G + 0.114 B⌋.
            ColorMode::Grayscale if decoded.color().has_color() => decoded
                .into_rgb8()
                .into_raw()
                .chunks_exact(3)
                .map(|p| ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000) as f32)
                .collect(),
            ColorMode::Grayscale => decoded.into_luma8().into_raw().into_iter().map(f32::from).collect(),
            ColorMode::Rgb => decoded.into_rgb8().into_raw().into_iter().map(f32::from).collect(),
        };
        let resized = crate::layers::resize_bilinear(&pixels, ih, iw, c, h, w);
        out.iter_mut().zip(resized).for_each(|(o, v)| *o = v);
    }
    Ok(ImageSet {
        images,
        labels: part.iter().map(|(_, l)| *l as f32).collect(),
        class_names: class_names.to_vec(),
        files: part.iter().map(|(f, _)| f.clone()).collect(),
    })
}
