//! Saving, loading and checkpoints: round trips, exact resumption, atomic writes, and every kind
//! of bad file as an error naming the tensor and the problem (never a panic).

use std::collections::HashMap;
use std::path::PathBuf;

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};

sequential! {
    pub struct Net: [6] {
        Dense(8, activation = relu),
        Dense(3, activation = softmax),
    }
}

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-io-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn data(n: usize) -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x = Array2::from_shape_fn((n, 6), |_| rng.random_range(-1.0..1.0));
    let y = Array1::from_shape_fn(n, |i| ((x[[i, 0]] + x[[i, 1]] > 0.0) as u8 + (x[[i, 2]] > 0.5) as u8) as f32);
    (x, y)
}

fn bits<M: Model>(m: &M) -> Vec<u32> {
    let mut w = Vec::new();
    m.visit_weights(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
    w
}

#[test]
fn weights_round_trip_with_names_shapes_and_metadata() {
    let path = dir("round").join("w.safetensors");
    let (x, y) = data(64);
    let mut a = Net::with_seed(1);
    a.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    a.fit(&x, &y, Fit { epochs: 2, verbose: 0, ..Fit::default() }).unwrap();
    a.save_weights(&path).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, ["dense.bias", "dense.kernel", "dense_1.bias", "dense_1.kernel"]);
    assert_eq!(st.tensor("dense.kernel").unwrap().shape(), &[6, 8]);
    assert_eq!(st.tensor("dense.kernel").unwrap().dtype(), Dtype::F32);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["kiln.model"], "Net");
    assert_eq!(meta["kiln.architecture"], kiln::io::architecture_hash(&a));
    assert!(meta.contains_key("kiln.version"));

    // The same model gives the same bytes.
    let again = path.with_file_name("again.safetensors");
    a.save_weights(&again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes);

    let mut b = Net::with_seed(2);
    assert_ne!(bits(&a), bits(&b));
    b.load_weights(&path).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
}

#[test]
fn resumed_training_is_bit_identical_to_uninterrupted() {
    let path = dir("resume").join("ckpt.safetensors");
    let (x, y) = data(100);
    let opts = || Fit { epochs: 1, batch_size: 16, verbose: 0, ..Fit::default() };
    let compiled = || {
        let mut m = Net::with_seed(7);
        m.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
        m
    };
    let mut straight = compiled();
    straight.fit(&x, &y, Fit { epochs: 3, ..opts() }).unwrap();

    let mut first = compiled();
    first.fit(&x, &y, Fit { epochs: 2, ..opts() }).unwrap();
    first.save_checkpoint(&path).unwrap();
    let at_checkpoint = bits(&first);
    drop(first);
    let mut resumed = compiled();
    resumed.load_checkpoint(&path).unwrap();
    let last = resumed.fit(&x, &y, opts()).unwrap();
    assert_eq!(bits(&resumed), bits(&straight));
    assert!(last.last("loss").unwrap().is_finite());

    // A checkpoint needs the optimizer it was saved with.
    let mut other = Net::with_seed(7);
    other.compile("sparse_categorical_crossentropy", "sgd", &[]).unwrap();
    let e = other.load_checkpoint(&path).unwrap_err().to_string();
    assert!(e.contains("holds adam state, but the model is compiled with sgd"), "{e}");
    // Plain weights load from a checkpoint too.
    other.load_weights(&path).unwrap();
    assert_eq!(bits(&other), at_checkpoint);
}

#[test]
fn a_failed_save_leaves_the_old_file_intact() {
    let d = dir("atomic");
    let path = d.join("w.safetensors");
    let m = Net::with_seed(3);
    m.save_weights(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A writer that fails halfway through.
    let r = kiln::io::atomic_write(&path, |w| {
        w.write_all(&before[..before.len() / 2])?;
        Err(std::io::Error::other("disk full"))
    });
    assert!(r.unwrap_err().to_string().contains("disk full"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("w.safetensors")], "no temporary file is left behind");
    // A folder that does not exist is an error, not a panic.
    assert!(m.save_weights(d.join("missing/w.safetensors")).is_err());
}

/// A file with the given tensors (F32 unless stated) and no metadata.
fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}

fn good() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        ("dense.kernel", Dtype::F32, vec![6, 8], f32s(48, 0.1)),
        ("dense.bias", Dtype::F32, vec![8], f32s(8, 0.0)),
        ("dense_1.kernel", Dtype::F32, vec![8, 3], f32s(24, 0.2)),
        ("dense_1.bias", Dtype::F32, vec![3], f32s(3, 0.0)),
    ]
}

fn load(bytes: &[u8], test: &str) -> Result<Net, String> {
    let path = dir("bad").join(format!("{test}.safetensors"));
    std::fs::write(&path, bytes).unwrap();
    let mut m = Net::with_seed(5);
    let before = bits(&m);
    match m.load_weights(&path) {
        Ok(()) => Ok(m),
        Err(e) => {
            assert_eq!(bits(&m), before, "a failed load changed the model");
            Err(e.to_string())
        }
    }
}

#[test]
fn every_bad_file_is_an_error_naming_the_problem() {
    let ok = file(&good());
    assert!(load(&ok, "good").is_ok());

    let e = load(&ok[..ok.len() - 10], "truncated").unwrap_err();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let e = load(&ok[..5], "tiny").unwrap_err();
    assert!(e.contains("not a valid safetensors file"), "{e}");

    let mut huge = ok.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = load(&huge, "header_length").unwrap_err();
    assert!(e.contains("header too large") || e.contains("invalid header length"), "{e}");

    let mut magic = ok.clone();
    magic[8] = b'[';
    let e = load(&magic, "magic").unwrap_err();
    assert!(e.contains("not a valid safetensors file: invalid JSON in header"), "{e}");

    let mut not_json = ok.clone();
    not_json[9] = b'#';
    let e = load(&not_json, "not_json").unwrap_err();
    assert!(e.contains("invalid JSON in header"), "{e}");

    let e = load(&file(&good()[1..]), "missing").unwrap_err();
    assert!(e.contains("tensor `dense.kernel` is missing"), "{e}");

    let mut extra = good();
    extra.push(("dense_2.kernel", Dtype::F32, vec![2], f32s(2, 0.0)));
    let e = load(&file(&extra), "extra").unwrap_err();
    assert!(e.contains("tensor `dense_2.kernel` is not a parameter of Net"), "{e}");

    let mut shape = good();
    shape[0] = ("dense.kernel", Dtype::F32, vec![8, 6], f32s(48, 0.1));
    let e = load(&file(&shape), "shape").unwrap_err();
    assert!(
        e.contains("tensor `dense.kernel` has shape [8, 6] in the file, but Net's parameter has shape [6, 8]"),
        "{e}"
    );

    let mut dtype = good();
    dtype[1] = ("dense.bias", Dtype::F64, vec![8], vec![0; 64]);
    let e = load(&file(&dtype), "dtype").unwrap_err();
    assert!(e.contains("tensor `dense.bias` has dtype F64"), "{e}");

    let mut nan = good();
    let mut b = f32s(8, 0.0);
    b[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    nan[1] = ("dense.bias", Dtype::F32, vec![8], b);
    let e = load(&file(&nan), "nan").unwrap_err();
    assert!(e.contains("tensor `dense.bias` holds NaN at index 3"), "{e}");

    // Offsets that point past the data: rewrite one offset in the header, same length.
    let text = String::from_utf8_lossy(&ok).into_owned();
    let (from, to) = ("[236,332]", "[236,932]");
    assert!(text.contains(from), "fixture changed: {text}");
    let offsets = text.replacen(from, to, 1).into_bytes();
    let e = load(&offsets, "offsets").unwrap_err();
    assert!(e.contains("not a valid safetensors file"), "{e}");

    let missing_file = Net::new().load_weights("/nonexistent/kiln.safetensors").unwrap_err().to_string();
    assert!(missing_file.starts_with("/nonexistent/kiln.safetensors:"), "{missing_file}");
}

/// Mutated files never panic the loader: flipped bytes, truncations, insertions and header edits,
/// from a fixed seed: 1,000 in the test run, `KILN_FUZZ_ITERS` for more (`examples/bitflips`
/// flips every bit of a weights file and a checkpoint).
#[test]
fn mutated_files_never_panic() {
    let iters: usize = std::env::var("KILN_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let base = file(&good());
    let path = dir("fuzz").join("m.safetensors");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    let (mut ok, mut err) = (0, 0);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        let mut b = base.clone();
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..5) {
                0 if !b.is_empty() => {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                1 => b.truncate(rng.random_range(0..=b.len())),
                2 => {
                    let i = rng.random_range(0..=b.len());
                    b.insert(i, rng.random());
                }
                3 if b.len() > 8 => {
                    // Aim at the header, where the structure is.
                    let hl = (u64::from_le_bytes(b[..8].try_into().unwrap()) as usize).min(b.len() - 8);
                    let i = 8 + rng.random_range(0..hl.max(1));
                    if i < b.len() {
                        b[i] = *b"{}[],:\"0123456789-e.".get(rng.random_range(0..20)).unwrap();
                    }
                }
                _ if b.len() >= 8 => b[..8].copy_from_slice(&rng.random_range(0u64..4096).to_le_bytes()),
                _ => {}
            }
        }
        std::fs::write(&path, &b).unwrap();
        let mut m = Net::new();
        match m.load_weights(&path) {
            Ok(()) => ok += 1,
            Err(_) => err += 1,
        }
    }
    println!("{iters} mutated files in {:.2}s: {ok} loaded, {err} refused, 0 panics", start.elapsed().as_secs_f64());
}

/// Rewrites a saved file with one metadata entry changed on purpose (the tensors and their
/// checksums kept, the checksum over the metadata made again, as a tool editing it would).
fn with_metadata(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    meta.insert(key.to_string(), value.to_string());
    let views: Vec<(String, TensorView<'_>)> = st.tensors();
    let edited = safetensors::serialize(views.clone(), Some(meta.clone())).unwrap();
    meta.insert("kiln.checksum".into(), kiln::io::metadata_checksum(&edited).unwrap());
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn a_flipped_data_byte_is_refused_by_its_checksum() {
    let path = dir("checksum").join("w.safetensors");
    Net::with_seed(4).save_weights(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let data_start = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let mut b = good.clone();
        let i = rng.random_range(data_start..b.len());
        b[i] ^= 1 << rng.random_range(0..8);
        std::fs::write(&path, &b).unwrap();
        let mut m = Net::with_seed(5);
        let before = bits(&m);
        let e = m.load_weights(&path).unwrap_err().to_string();
        assert!(e.contains("does not match its checksum: the file is corrupted"), "{e}");
        assert_eq!(bits(&m), before, "a refused file changes nothing");
    }
}

sequential! {
    /// `Net`'s names and shapes, other activations.
    pub struct OtherNet: [6] {
        Dense(8, activation = tanh),
        Dense(3, activation = softmax),
    }
}

#[test]
fn a_file_from_another_architecture_is_refused_unless_asked() {
    let path = dir("arch").join("w.safetensors");
    OtherNet::with_seed(1).save_weights(&path).unwrap();
    let mut m = Net::new();
    let e = m.load_weights(&path).unwrap_err().to_string();
    assert!(e.contains("saved by OtherNet of architecture") && e.contains("but Net has architecture"), "{e}");
    assert!(e.contains("check_architecture: false"), "{e}");
    m.load_weights_with(&path, kiln::LoadOptions { check_architecture: false }).unwrap();
    assert_eq!(m.weights()[0].1.value, OtherNet::with_seed(1).weights()[0].1.value);
}

#[test]
fn concurrent_saves_to_one_path_all_succeed_and_leave_a_whole_file() {
    let d = dir("concurrent");
    let path = d.join("w.safetensors");
    let models = [Net::with_seed(1), Net::with_seed(2)];
    std::thread::scope(|s| {
        for m in &models {
            let path = &path;
            s.spawn(move || {
                for _ in 0..100 {
                    m.save_weights(path).unwrap();
                }
            });
        }
    });
    let mut loaded = Net::new();
    loaded.load_weights(&path).unwrap();
    assert!(models.iter().any(|m| bits(m) == bits(&loaded)), "the file holds one of the two models, whole");
    let leftovers = std::fs::read_dir(&d).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[test]
fn checkpoint_counts_beyond_range_are_refused() {
    let path = dir("counts").join("c.safetensors");
    let (x, y) = data(32);
    let mut m = Net::with_seed(1);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.fit(&x, &y, Fit { epochs: 1, verbose: 0, ..Fit::default() }).unwrap();
    m.save_checkpoint(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    for (key, value, want) in [
        ("kiln.optimizer.iterations", "2147483648", "above the largest count"),
        ("kiln.optimizer.iterations", "18446744073709551615", "above the largest count"),
        ("kiln.epochs", "-1", "is not a number"),
        ("kiln.rng", "many", "is not a number"),
    ] {
        std::fs::write(&path, with_metadata(&good, key, value)).unwrap();
        let mut other = Net::with_seed(2);
        other.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        let before = bits(&other);
        let e = other.load_checkpoint(&path).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(want), "{key}={value}: {e}");
        assert_eq!(bits(&other), before);
    }
}

#[test]
fn resuming_into_a_model_built_with_another_seed_is_exact() {
    let path = dir("seed").join("c.safetensors");
    let (x, y) = data(64);
    let opts = || Fit { epochs: 2, batch_size: 16, verbose: 0, ..Fit::default() };
    let mut straight = Net::with_seed(1);
    straight.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    straight.fit(&x, &y, Fit { epochs: 4, ..opts() }).unwrap();

    let mut first = Net::with_seed(1);
    first.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    first.fit(&x, &y, opts()).unwrap();
    first.save_checkpoint(&path).unwrap();
    let mut resumed = Net::with_seed(99);
    resumed.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    resumed.load_checkpoint(&path).unwrap();
    assert_eq!(resumed.train_state().seed(), 1, "the checkpoint's seed");
    resumed.fit(&x, &y, opts()).unwrap();
    assert_eq!(bits(&resumed), bits(&straight));
}

/// Mutated checkpoints never panic `load_checkpoint`, and a model that refuses one is unchanged.
#[test]
fn mutated_checkpoints_never_panic() {
    let path = dir("fuzz-ckpt").join("c.safetensors");
    let (x, y) = data(32);
    let mut m = Net::with_seed(1);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.fit(&x, &y, Fit { epochs: 1, verbose: 0, ..Fit::default() }).unwrap();
    m.save_checkpoint(&path).unwrap();
    let base = std::fs::read(&path).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let (mut ok, mut err) = (0, 0);
    let mut target = Net::with_seed(3);
    target.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let before = bits(&target);
    for _ in 0..1000 {
        let mut b = base.clone();
        match rng.random_range(0..3) {
            0 => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            1 => b.truncate(rng.random_range(0..=b.len())),
            _ => {
                let hl = (u64::from_le_bytes(b[..8].try_into().unwrap()) as usize).min(b.len() - 8);
                let i = 8 + rng.random_range(0..hl.max(1));
                b[i] = *b"{}[],:\"0123456789-e.".get(rng.random_range(0..20)).unwrap();
            }
        }
        std::fs::write(&path, &b).unwrap();
        let mut t = target.clone();
        match t.load_checkpoint(&path) {
            Ok(()) => ok += 1,
            Err(_) => {
                err += 1;
                assert_eq!(bits(&t), before, "a refused checkpoint changes nothing");
            }
        }
    }
    println!("1000 mutated checkpoints: {ok} loaded, {err} refused, 0 panics");
    assert!(err > 900, "nearly every mutation is caught ({ok} loaded)");
}
