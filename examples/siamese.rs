//! A Siamese network on pairs of the shipped 8×8 digits, as in Keras' "image similarity with a
//! contrastive loss": one tower shared by both images, the Euclidean distance between their
//! embeddings and the contrastive loss written as math. A pair counts as "same digit" when the
//! distance is below half the margin. Prints the held-out pair accuracy.
//!
//! Run with `cargo run --release --example siamese`.

use kiln::ndarray::{Array1, Array2, Axis};
use kiln::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

sequential! {
    /// The tower both images go through: 64 pixels to a 16-d embedding.
    pub struct Tower: [64] {
        Dense(64, activation = relu),
        Dense(16),
    }
}

/// One tower applied to both images (a shared model: one set of weights, trained by both uses)
/// and the Euclidean distance between the embeddings.
#[kiln::model]
pub struct Siamese {
    tower: Tower,
}

#[kiln::call]
impl Siamese {
    fn call(&self, a: Input<64>, b: Input<64>) -> Output<1> {
        let d = self.tower(a) - self.tower(b);
        sqrt(sum(square(d), axis = -1, keepdims = true) + 1e-6)
    }
}

/// Hadsell, Chopra and LeCun's contrastive loss with margin 1: a similar pair (1) is pulled
/// together, a dissimilar one (0) pushed at least the margin apart.
#[kiln::loss]
fn contrastive(y_true: Input<1>, y_pred: Input<1>) -> Output<1> {
    y_true * square(y_pred) + (1.0 - y_true) * square(relu(1.0 - y_pred))
}

/// For each row, one pair with a random image of the same digit (label 1) and one with a random
/// image of another digit (label 0).
fn pairs(x: &Array2<f32>, labels: &Array1<f32>, rng: &mut StdRng) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let n = x.nrows();
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for same in [true, false] {
            let j = loop {
                let j = rng.random_range(0..n);
                if j != i && (labels[j] == labels[i]) == same {
                    break j;
                }
            };
            a.push(i);
            b.push(j);
            y.push(same as u8 as f32);
        }
    }
    let pick = |rows: &[usize]| x.select(Axis(0), rows);
    (pick(&a), pick(&b), Array2::from_shape_vec((y.len(), 1), y).expect("one label per pair"))
}

/// Trains on pairs of the first 80% of the digits and returns the accuracy on pairs of the rest.
pub fn held_out_pair_accuracy(epochs: usize) -> kiln::Result<f64> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 5))?;
    let x = pixels / 16.0;
    let split = x.nrows() * 4 / 5;
    let mut rng = StdRng::seed_from_u64(11);
    let (xa, xb, y) = pairs(
        &x.slice(kiln::ndarray::s![..split, ..]).to_owned(),
        &labels.slice(kiln::ndarray::s![..split]).to_owned(),
        &mut rng,
    );
    let (ha, hb, hy) = pairs(
        &x.slice(kiln::ndarray::s![split.., ..]).to_owned(),
        &labels.slice(kiln::ndarray::s![split..]).to_owned(),
        &mut rng,
    );
    let mut model = Siamese::with_seed(2);
    model.compile(Loss::custom(&contrastive), Adam::new(1e-3), &[])?;
    model.fit((&xa, &xb), &y, Fit { epochs, batch_size: 32, verbose: 0, ..Fit::default() })?;
    let d = model.predict((&ha, &hb))?;
    let right = d.iter().zip(hy.iter()).filter(|(d, y)| (**d < 0.5) == (**y == 1.0)).count();
    Ok(right as f64 / hy.len() as f64)
}

fn main() -> kiln::Result<()> {
    let accuracy = held_out_pair_accuracy(20)?;
    println!("held-out pair accuracy {accuracy:.3}");
    Ok(())
}
