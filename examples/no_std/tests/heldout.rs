//! The no_std classifiers on the held-out digits (the last fifth of the shuffled table, which
//! training never saw), against the trainable models' `predict` on the same files; and where their
//! weights live.

use kiln::prelude::*;
use kiln_digits_no_std::{
    Digits, DigitsBf16, DigitsCnn, DigitsCnnBf16, DigitsCnnInt8, DigitsF16, DigitsInt8, argmax, classify, classify_int8,
};

sequential! {
    /// The std model of examples/digits.rs, on the file the no_std crate embeds.
    #[weights("../../models/digits.safetensors")]
    struct DigitsStd: [8, 8, 1] {
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// The std model of examples/digits_cnn.rs, on the file the no_std crate embeds.
    #[weights("../../models/digits_cnn.safetensors")]
    struct DigitsCnnStd: [8, 8, 1] {
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

/// The held-out images (pixels scaled to [0, 1]) and their labels.
fn held_out() -> Vec<([f32; 64], usize)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv.gz");
    let table = kiln::data::read_csv(path, false).unwrap();
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    let from = pixels.nrows() - kiln::validation_rows(pixels.nrows(), 0.2);
    (from..pixels.nrows())
        .map(|i| {
            let mut x = [0f32; 64];
            for (v, p) in x.iter_mut().zip(pixels.row(i)) {
                *v = p / 16.0;
            }
            (x, labels[i] as usize)
        })
        .collect()
}

fn accuracy(data: &[([f32; 64], usize)], mut f: impl FnMut(&[f32; 64]) -> usize) -> f64 {
    data.iter().filter(|(x, y)| f(x) == *y).count() as f64 / data.len() as f64
}

#[test]
fn no_std_classifiers_score_as_the_std_models_do() {
    let data = held_out();
    assert_eq!(data.len(), 360);
    let mut mlp = DigitsStd::embedded();
    let mut cnn = DigitsCnnStd::embedded();
    for (x, _) in &data {
        kiln::testing::assert_close("mlp", &Digits::infer(x), mlp.predict_one(x).unwrap(), 1e-5);
        kiln::testing::assert_close("cnn", &DigitsCnn::infer(x), cnn.predict_one(x).unwrap(), 1e-5);
    }
    let std_mlp = accuracy(&data, |x| argmax(mlp.predict_one(x).unwrap()));
    let std_cnn = accuracy(&data, |x| argmax(cnn.predict_one(x).unwrap()));
    let acc = [
        ("MLP f32", accuracy(&data, classify), std_mlp),
        ("MLP bf16", accuracy(&data, |x| argmax(&DigitsBf16::infer(x))), std_mlp),
        ("MLP f16", accuracy(&data, |x| argmax(&DigitsF16::infer(x))), std_mlp),
        ("MLP int8", accuracy(&data, classify_int8), std_mlp),
        ("CNN f32", accuracy(&data, |x| argmax(&DigitsCnn::infer(x))), std_cnn),
        ("CNN bf16", accuracy(&data, |x| argmax(&DigitsCnnBf16::infer(x))), std_cnn),
        ("CNN int8", accuracy(&data, |x| argmax(&DigitsCnnInt8::infer(x))), std_cnn),
    ];
    for (name, a, reference) in acc {
        println!("{name}: held-out accuracy {a:.4} (std f32 model {reference:.4})");
        if name.ends_with("f32") {
            assert_eq!(a, reference, "{name}");
        } else {
            assert!((a - reference).abs() <= 0.005, "{name}: {a} against {reference}");
        }
    }
}

#[test]
fn constants_count_the_layers() {
    let mlp = DigitsStd::new();
    // f32: every parameter, 4 bytes each; scratch: the two Dense outputs (Flatten reads the input).
    assert_eq!(Digits::WEIGHT_BYTES, 4 * mlp.count_params());
    assert_eq!(Digits::WEIGHT_BYTES, 4 * (64 * 64 + 64 + 64 * 10 + 10));
    assert_eq!(Digits::SCRATCH_BYTES, 4 * (64 + 10));
    assert_eq!(Digits::SCRATCH_BYTES, DigitsStd::SCRATCH_BYTES);
    // int8 and bf16: kernels at 1 or 2 bytes a value, int8 with an f32 scale per output channel.
    assert_eq!(DigitsInt8::WEIGHT_BYTES, (64 * 64 + 4 * 64) + 4 * 64 + (64 * 10 + 4 * 10) + 4 * 10);
    assert_eq!(DigitsBf16::WEIGHT_BYTES, 2 * (64 * 64) + 4 * 64 + 2 * (64 * 10) + 4 * 10);
    // The CNN: kernels are the `.kernel` tensors, the rest (biases, BatchNormalization) stays f32.
    let cnn = DigitsCnnStd::new();
    let (mut int8, mut all) = (0, 0);
    for (name, p) in cnn.weights() {
        let n = p.value.len();
        all += 4 * n;
        // int8 kernels keep their rows in pairs (an odd number of input channels gets a zero row).
        let shape = cnn.get_weight(&name).unwrap().shape().to_vec();
        int8 += match name.ends_with(".kernel") {
            true => {
                let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                n / (rows * cols) * rows.next_multiple_of(2) * cols + 4 * cols
            }
            false => 4 * n,
        };
    }
    assert_eq!(DigitsCnn::WEIGHT_BYTES, all);
    assert_eq!(DigitsCnnInt8::WEIGHT_BYTES, int8);
    // The largest two outputs alive at once: the first Conv2D's and BatchNormalization's [8, 8, 32].
    assert_eq!(DigitsCnn::SCRATCH_BYTES, 4 * (2 * 8 * 8 * 32));
    assert_eq!(DigitsCnn::SCRATCH_LEN * 4, DigitsCnn::SCRATCH_BYTES);
}

#[cfg(target_os = "linux")]
#[test]
fn weights_are_read_in_place_from_the_binary() {
    // The mapping that holds the weights is the test binary's own, read-only: nothing was
    // copied to the heap or the stack when the model started.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
    for (name, data) in [("f32", Digits::weight_data()), ("int8", DigitsInt8::weight_data())] {
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let line = maps
            .lines()
            .find(|l| {
                let range = l.split_whitespace().next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
                a <= start && end <= b
            })
            .unwrap_or_else(|| panic!("{name}: no mapping holds the weights"));
        let perms = line.split_whitespace().nth(1).unwrap();
        assert!(line.ends_with(exe.to_str().unwrap()), "{name}: weights in `{line}`, not in {}", exe.display());
        assert!(!perms.contains('w'), "{name}: weights in a writable mapping `{line}`");
        assert_eq!(start % 64, 0, "{name}: weights not aligned");
    }
    // The same call twice reads the same bytes: there is no per-call copy either.
    assert_eq!(Digits::weight_data().as_ptr(), Digits::weight_data().as_ptr());
}

#[test]
fn firmware_sample_is_a_held_out_seven() {
    let data = held_out();
    let (x, y) = data.iter().find(|(_, y)| *y == 7).unwrap();
    let pixels: Vec<u8> = x.iter().map(|v| (v * 16.0).round() as u8).collect();
    let source = include_str!("../src/firmware/bare.rs");
    let listed: Vec<u8> = source
        .split("static SEVEN: [u8; 64] = [")
        .nth(1)
        .and_then(|s| s.split("];").next())
        .unwrap()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(*y, 7);
    assert_eq!(listed, pixels, "bare.rs should embed the first held-out 7");
    assert_eq!(classify(x), 7);
    assert_eq!(classify_int8(x), 7);
}

/// The PyTorch CNN imported from ONNX, int8 kernels, against onnxruntime's f32 outputs for the
/// fixture's rows: the same class for every row, and the logits close.
#[test]
fn an_imported_onnx_model_runs_without_std_in_int8() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/onnx/torch_mnist1d_cnn_trained.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Vec<f32>> =
        text.lines().skip(1).step_by(2).map(|l| l.split_whitespace().map(|w| w.parse().unwrap()).collect()).collect();
    let (input, output) = (&rows[0], &rows[1]);
    let (per, classes) = (40, 10);
    let mut worst = 0f32;
    for (x, want) in input.chunks(per).zip(output.chunks(classes)) {
        let got = kiln_digits_no_std::Mnist1dInt8::infer(x.try_into().unwrap());
        assert_eq!(argmax(&got), argmax(want));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        worst = worst.max(got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale);
    }
    println!("int8 against f32 onnxruntime: largest logit difference {:.2}% of the largest logit", 100.0 * worst);
    assert!(worst < 0.05, "{worst}");
}
