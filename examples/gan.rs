//! A small DCGAN on the shipped 8×8 digits, after keras.io's "DCGAN to generate face images":
//! a generator (Dense → Reshape → Conv2DTranspose → Conv2D) and a discriminator (Conv2D →
//! LeakyReLU → … → Dense, one logit), trained by alternating steps with an Adam optimizer each.
//!
//! The generator's step is the one `fit` cannot express: its loss is computed on the
//! discriminator's output and differentiated through the discriminator, whose weights stay as they
//! are, into the generator's — `forward_train` on both, `backward_train` back through both, one
//! `apply`. Prints each epoch's losses and the discriminator's accuracy on held-out real digits
//! and fresh fakes, and draws a grid of generated digits to `target/kiln-gan/digits.png`.
//!
//! Run with `cargo run --release --example gan`.

use kiln::Stream;
use kiln::ndarray::{Array1, Array2, Array4, ArrayView4, Axis, concatenate, s};
use kiln::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// The latent space the generator draws from.
pub const LATENT: usize = 16;

sequential! {
    /// A latent vector to an 8×8 image with values in [0, 1].
    pub struct Generator: [16] {
        Dense(256),
        LeakyReLU(0.2),
        Reshape([4, 4, 16]),
        Conv2DTranspose(32, 4, strides = 2, padding = same),
        LeakyReLU(0.2),
        Conv2D(1, 3, padding = same, activation = sigmoid),
    }
}

sequential! {
    /// An 8×8 image to one logit: real (> 0) or generated.
    pub struct Discriminator: [8, 8, 1] {
        Conv2D(32, 3, strides = 2, padding = same),
        LeakyReLU(0.2),
        Conv2D(64, 3, strides = 2, padding = same),
        LeakyReLU(0.2),
        Flatten,
        Dropout(0.2),
        Dense(1),
    }
}

sequential! {
    /// A classifier of real digits, to judge the generated ones.
    pub struct Judge: [8, 8, 1] {
        Conv2D(16, 3, padding = same, activation = relu),
        MaxPooling2D(2),
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

/// The share of `n` generated digits that a classifier trained on the real digits assigns a
/// class with probability at least 0.9, and the same share of `n` real digits.
pub fn recognised(gan: &mut Gan, n: usize) -> kiln::Result<(f32, f32)> {
    let (x, labels) = digits(1)?;
    let mut judge = Judge::with_seed(3);
    judge.compile("sparse_categorical_crossentropy", "adam", &["accuracy"])?;
    judge.fit(&x, &labels, Fit { epochs: 40, verbose: 0, ..Fit::default() })?;
    let sure = |p: Array2<f32>| p.rows().into_iter().filter(|r| r.iter().any(|v| *v >= 0.9)).count() as f32 / n as f32;
    let fakes = gan.generate(n)?;
    Ok((sure(judge.predict(&fakes)?), sure(judge.predict(&x.slice(s![..n, .., .., ..]))?)))
}

/// The two models, their optimizers, and the stream latent vectors are drawn from.
pub struct Gan {
    /// Makes digits.
    pub generator: Generator,
    /// Tells real digits from generated ones.
    pub discriminator: Discriminator,
    g_opt: Adam,
    d_opt: Adam,
    noise: Stream,
}

/// One epoch's figures.
#[derive(Clone, Copy, Debug)]
pub struct EpochLogs {
    /// Mean discriminator and generator losses over the epoch's steps.
    pub d_loss: f32,
    /// See `d_loss`.
    pub g_loss: f32,
    /// The discriminator's accuracy on held-out real digits and as many fresh fakes.
    pub d_accuracy: f32,
}

impl Gan {
    /// Both models and their optimizers from `seed` (Adam with β₁ = 0.5, as DCGANs are usually
    /// trained, and a learning rate of 1e-3 for these small models).
    pub fn new(seed: u64) -> Self {
        let adam = || Adam::new(1e-3).beta_1(0.5);
        Gan {
            generator: Generator::with_seed(seed),
            discriminator: Discriminator::with_seed(seed + 1),
            g_opt: adam(),
            d_opt: adam(),
            noise: Stream::new(seed + 2),
        }
    }

    /// `n` latent vectors from N(0, 1).
    pub fn latent(&mut self, n: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((n, LATENT), || self.noise.normal())
    }

    /// `n` generated digits, `[n, 8, 8, 1]`.
    pub fn generate(&mut self, n: usize) -> kiln::Result<Array4<f32>> {
        let z = self.latent(n);
        self.generator.predict(&z)
    }

    /// One alternating step on a batch of real digits; returns the discriminator's and the
    /// generator's losses.
    pub fn train_step(&mut self, real: ArrayView4<'_, f32>) -> kiln::Result<(f32, f32)> {
        let bce = Loss::BinaryCrossentropy.with_from_logits(true);
        let k = real.shape()[0];
        // The discriminator on real digits (label 1) and fakes (label 0), in one batch.
        let fake = self.generate(k)?;
        let x = concatenate(Axis(0), &[real, fake.view()])
            .map_err(|e| kiln::Error::InvalidData { what: "batch".into(), reason: e.to_string() })?;
        let labels = Array2::from_shape_fn((2 * k, 1), |(i, _)| if i < k { 1.0f32 } else { 0.0 });
        let logits = self.discriminator.forward_train(&x)?;
        let (d_loss, dy) = bce.value_and_grad(&logits, &labels)?;
        let d = self.discriminator.backward_train(&dy)?;
        self.d_opt.apply(&mut self.discriminator, &d.grads)?;

        // The generator, through the discriminator: fakes it would call real. The
        // discriminator's own gradients are computed on the way and left unused.
        let z = self.latent(k);
        let fake = self.generator.forward_train(&z)?;
        let logits = self.discriminator.forward_train(&fake)?;
        let (g_loss, dy) = bce.value_and_grad(&logits, &Array2::<f32>::ones((k, 1)))?;
        let through = self.discriminator.backward_train(&dy)?;
        let g = self.generator.backward_train(&through.input_grads[0])?;
        self.g_opt.apply(&mut self.generator, &g.grads)?;
        Ok((d_loss, g_loss))
    }

    /// The discriminator's accuracy on `real` and as many fresh fakes (inference mode).
    pub fn d_accuracy(&mut self, real: ArrayView4<'_, f32>) -> kiln::Result<f32> {
        let k = real.shape()[0];
        let fake = self.generate(k)?;
        let on_real = self.discriminator.predict(&real)?;
        let on_fake = self.discriminator.predict(&fake)?;
        let right = on_real.iter().filter(|l| **l > 0.0).count() + on_fake.iter().filter(|l| **l <= 0.0).count();
        Ok(right as f32 / (2 * k) as f32)
    }
}

/// The shipped digits as `[n, 8, 8, 1]` images in [0, 1] with their labels, shuffled with `seed`.
pub fn digits(seed: u64) -> kiln::Result<(Array4<f32>, Array1<f32>)> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, seed))?;
    let n = pixels.nrows();
    let x = (pixels / 16.0)
        .into_shape_with_order((n, 8, 8, 1))
        .map_err(|e| kiln::Error::InvalidData { what: "x".into(), reason: format!("not [n, 8, 8, 1]: {e}") })?;
    Ok((x, labels))
}

/// Trains a GAN from `seed` for `epochs` epochs of batches of 64 on the first 1,500 shuffled
/// digits, the rest held out for the discriminator's accuracy; returns it with each epoch's
/// figures.
pub fn train(seed: u64, epochs: usize, verbose: bool) -> kiln::Result<(Gan, Vec<EpochLogs>)> {
    let (x, _) = digits(seed)?;
    let (train, held_out) = (x.slice(s![..1500, .., .., ..]), x.slice(s![1500.., .., .., ..]));
    let mut gan = Gan::new(seed);
    let mut order: Vec<usize> = (0..train.shape()[0]).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut logs = Vec::new();
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let (mut d_sum, mut g_sum, mut steps) = (0.0, 0.0, 0);
        for rows in order.chunks(64) {
            let batch = train.select(Axis(0), rows);
            let (d, g) = gan.train_step(batch.view())?;
            (d_sum, g_sum, steps) = (d_sum + d, g_sum + g, steps + 1);
        }
        let e = EpochLogs {
            d_loss: d_sum / steps as f32,
            g_loss: g_sum / steps as f32,
            d_accuracy: gan.d_accuracy(held_out)?,
        };
        if verbose {
            println!(
                "epoch {:>3}: d_loss {:.3}, g_loss {:.3}, discriminator accuracy on held-out real + fake {:.3}",
                epoch + 1,
                e.d_loss,
                e.g_loss,
                e.d_accuracy
            );
        }
        logs.push(e);
    }
    Ok((gan, logs))
}

/// Draws `images` (`[n, 8, 8, 1]`, values in [0, 1]) as a grid of `cols` columns, each pixel 4×4,
/// to a grayscale PNG.
pub fn draw_grid(images: &Array4<f32>, cols: usize, path: &std::path::Path) -> kiln::Result<()> {
    const SCALE: usize = 4;
    let n = images.shape()[0];
    let rows = n.div_ceil(cols);
    let cell = 8 * SCALE + 2;
    let (w, h) = (cols * cell, rows * cell);
    let mut pixels = vec![0u8; w * h];
    for (i, img) in images.outer_iter().enumerate() {
        let (r0, c0) = ((i / cols) * cell + 1, (i % cols) * cell + 1);
        for y in 0..8 * SCALE {
            for x in 0..8 * SCALE {
                let v = img[[y / SCALE, x / SCALE, 0]].clamp(0.0, 1.0);
                pixels[(r0 + y) * w + c0 + x] = (v * 255.0).round() as u8;
            }
        }
    }
    let io = |e: std::io::Error| kiln::Error::Io { path: path.display().to_string(), source: e };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let bad = |e: png::EncodingError| kiln::Error::Io { path: path.display().to_string(), source: e.into() };
    encoder.write_header().and_then(|mut wr| wr.write_image_data(&pixels)).map_err(bad)
}

fn main() -> kiln::Result<()> {
    // The epochs to train: `cargo run --release --example gan -- 100`.
    let epochs = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(60);
    let (mut gan, _) = train(1, epochs, true)?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kiln-gan");
    std::fs::create_dir_all(&dir).map_err(|e| kiln::Error::Io { path: dir.display().to_string(), source: e })?;
    let (fake, real) = recognised(&mut gan, 256)?;
    println!(
        "a classifier of real digits is sure (p >= 0.9) of {fake:.3} of 256 generated digits ({real:.3} of real ones)"
    );
    let grid = gan.generate(64)?;
    draw_grid(&grid, 8, &dir.join("digits.png"))?;
    println!("drew 64 generated digits to {}", dir.join("digits.png").display());
    Ok(())
}
