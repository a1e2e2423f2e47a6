//! Every single-bit flip of a weights file and of a checkpoint, each loaded into a fresh model:
//! how many the loader refuses, how many load the very state that was saved (a flip the format
//! does not read), and how many load a different state, which must be none.
//!
//! ```text
//! cargo run --release --example bitflips
//! ```
//!
//! The state compared is everything a load sets: every weight's bits, and for a checkpoint the
//! optimizer's step count and state, the epoch count, the seed and the random stream's position.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

sequential! {
    pub struct Net: [6] {
        Dense(8, activation = relu),
        BatchNormalization,
        Dense(3, activation = softmax),
    }
}

/// The optimizer's step count and state arrays, as bits.
type OptimizerBits = Option<(u64, Vec<Vec<u32>>)>;

/// What a load sets, as bits: the weights, the epoch count, the seed, the stream's position and
/// the optimizer's state.
fn state(m: &Net) -> (Vec<u32>, u64, u64, u64, OptimizerBits) {
    let mut w = Vec::new();
    m.visit_weights(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
    let st = m.train_state();
    let opt = st.optimizer().map(|o| {
        let s = o.state();
        (s.iterations, s.arrays.iter().map(|a| a.iter().map(|v| v.to_bits()).collect()).collect())
    });
    (w, st.epochs(), st.seed(), st.stream().position(), opt)
}

/// A compiled model of another seed, to load into.
fn fresh() -> Net {
    let mut m = Net::with_seed(99);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m
}

fn main() -> kiln::Result<()> {
    let dir = std::env::temp_dir().join(format!("kiln-bitflips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| kiln::Error::Io { path: dir.display().to_string(), source })?;
    let x = Array2::from_shape_fn((40, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
    let y = Array1::from_shape_fn(40, |i| (i % 3) as f32);
    let mut m = Net::with_seed(5);
    m.compile("sparse_categorical_crossentropy", "adam", &[])?;
    m.fit(&x, &y, Fit { epochs: 2, batch_size: 8, verbose: 0, ..Fit::default() })?;
    let (weights, checkpoint) = (dir.join("w.safetensors"), dir.join("c.safetensors"));
    m.save_weights(&weights)?;
    m.save_checkpoint(&checkpoint)?;

    let start = std::time::Instant::now();
    let mut total_different = 0;
    for (what, path, is_checkpoint) in [("weights file", &weights, false), ("checkpoint", &checkpoint, true)] {
        let good =
            std::fs::read(path).map_err(|source| kiln::Error::Io { path: path.display().to_string(), source })?;
        let mut saved = fresh();
        if is_checkpoint {
            saved.load_checkpoint(path)?
        } else {
            saved.load_weights(path)?
        }
        let want = state(&saved);
        let flipped = dir.join("flipped.safetensors");
        let (mut refused, mut same, mut different) = (0usize, 0usize, 0usize);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[i] ^= 1 << bit;
                std::fs::write(&flipped, &bytes)
                    .map_err(|source| kiln::Error::Io { path: flipped.display().to_string(), source })?;
                let mut target = fresh();
                let before = state(&target);
                let r = if is_checkpoint { target.load_checkpoint(&flipped) } else { target.load_weights(&flipped) };
                match r {
                    Err(_) => {
                        refused += 1;
                        assert_eq!(state(&target), before, "a refused load changed the model (byte {i}, bit {bit})");
                    }
                    Ok(()) if state(&target) == want => same += 1,
                    Ok(()) => {
                        different += 1;
                        println!("  byte {i} bit {bit} of the {what} loaded a different state");
                    }
                }
            }
        }
        println!(
            "{what} ({} bytes, {} flips): {refused} refused, {same} loaded the saved state, {different} loaded a different state",
            good.len(),
            good.len() * 8
        );
        total_different += different;
    }
    println!("in {:.1} s", start.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(total_different, 0, "a flipped bit loaded a different state");
    Ok(())
}
