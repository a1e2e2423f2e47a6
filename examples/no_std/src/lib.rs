//! The digits classifiers of kiln's examples, for a device: `#![no_std]`, no allocator, no
//! file to read. Each model's weights were checked against it when this crate compiled and live
//! in the binary's read-only data, where `infer` reads them in place; its scratch space is on the
//! stack, its size a constant.
//!
//! - [`Digits`]: the MLP of `examples/digits.rs` (`examples/models/digits.safetensors`).
//! - [`DigitsCnn`]: the CNN of `examples/digits_cnn.rs` (`examples/models/digits_cnn.safetensors`).
//!
//! each with f32 weights, and as `..Bf16` and `..Int8` with their kernels in bfloat16 or in int8
//! with one scale per output channel (quantised when this crate compiles); the MLP also as
//! `DigitsF16` (IEEE half precision).

#![no_std]

macro_rules! digits {
    ($($(#[$doc:meta])* $name:ident = $file:literal, $dtype:ident;)*) => {$(
        kiln::sequential! {
            $(#[$doc])*
            #[weights($file, dtype = $dtype)]
            #[inference_only]
            #[budget(ram = "1K", flash = "24K")]
            pub struct $name: [8, 8, 1] {
                Flatten,
                Dense(64, activation = relu),
                Dense(10, activation = softmax),
            }
        }
    )*};
}

digits! {
    /// The digits MLP with f32 weights.
    Digits = "../../models/digits.safetensors", f32;
    /// The digits MLP with bfloat16 kernels.
    DigitsBf16 = "../../models/digits.safetensors", bf16;
    /// The digits MLP with int8 kernels.
    DigitsInt8 = "../../models/digits.safetensors", int8;
    /// The digits MLP with IEEE half-precision kernels.
    DigitsF16 = "../../models/digits.safetensors", f16;
}

macro_rules! digits_cnn {
    ($($(#[$doc:meta])* $name:ident = $file:literal, $dtype:ident;)*) => {$(
        kiln::sequential! {
            $(#[$doc])*
            #[weights($file, dtype = $dtype)]
            #[inference_only]
            pub struct $name: [8, 8, 1] {
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
    )*};
}

digits_cnn! {
    /// The digits CNN with f32 weights.
    DigitsCnn = "../../models/digits_cnn.safetensors", f32;
    /// The digits CNN with bfloat16 kernels.
    DigitsCnnBf16 = "../../models/digits_cnn.safetensors", bf16;
    /// The digits CNN with int8 kernels.
    DigitsCnnInt8 = "../../models/digits_cnn.safetensors", int8;
}

/// A model trained elsewhere: the MNIST-1D CNN trained in PyTorch (three Conv1d of 25 channels,
/// a Dense head), imported from its ONNX file when this crate compiles, `infer`'s kernels in int8.
#[kiln::onnx("../../../tests/fixtures/onnx/torch_mnist1d_cnn_trained.onnx", dtype = int8)]
#[inference_only]
pub struct Mnist1dInt8;

/// The index of the largest value (the first, on ties).
pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

/// The digit an 8×8 image shows (pixels scaled to [0, 1]), by the f32 MLP.
pub fn classify(pixels: &[f32; 64]) -> usize {
    argmax(&Digits::infer(pixels))
}

/// The digit an 8×8 image shows, by the int8 MLP.
pub fn classify_int8(pixels: &[f32; 64]) -> usize {
    argmax(&DigitsInt8::infer(pixels))
}

#[cfg(feature = "firmware")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
