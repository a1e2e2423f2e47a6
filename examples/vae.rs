//! Keras' variational autoencoder on the shipped 8×8 digits: an encoder to a 2-d latent space,
//! the sampling layer written as math in `call` (`z = z_mean + exp(0.5 * z_log_var) * ε`, ε drawn
//! from the model's seeded stream), a decoder back to the 64 pixels; the loss is the
//! reconstruction cross-entropy summed over the pixels plus the KL divergence from N(0, 1),
//! which `call` adds to the loss itself (Keras' `add_loss`), logged as `kl_loss`. Prints, for
//! each epoch, the held-out reconstruction loss and KL term.
//!
//! Run with `cargo run --release --example vae`.

use kiln::prelude::*;

#[kiln::model]
pub struct Vae {
    enc: Dense<64, 64, Relu>,
    z_mean: Dense<64, 2>,
    z_log_var: Dense<64, 2>,
    dec_hidden: Dense<2, 64, Relu>,
    dec: Dense<64, 64, Sigmoid>,
}

#[kiln::call]
impl Vae {
    fn call(&self, x: Input<64>) -> Output<64> {
        let h = self.enc(x);
        let z_mean = self.z_mean(h);
        let z_log_var = self.z_log_var(h);
        // Keras' Sampling layer: the reparameterisation trick.
        let z = z_mean + exp(0.5 * z_log_var) * random_normal(z_mean);
        // KL(q(z | x) || N(0, 1)) of each sample, summed over the latent axes.
        let kl = -0.5 * sum(1.0 + z_log_var - square(z_mean) - exp(z_log_var), axis = -1, keepdims = true);
        // Keras' `self.add_loss(kl_loss)`: the batch mean of the term joins the loss.
        self.add_loss("kl_loss", kl);
        self.dec(self.dec_hidden(z))
    }
}

/// Trains the VAE on the shipped digits (the last fifth held out) and returns its history:
/// `val_loss` is the held-out total loss (reconstruction cross-entropy summed over the pixels,
/// plus the KL term), `val_kl_loss` the held-out KL term.
pub fn train(epochs: usize, verbose: u8) -> kiln::Result<History> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, _) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3))?;
    let x = pixels / 16.0;
    let mut model = Vae::with_seed(7);
    // Keras' VAE sums the cross-entropy over the pixels: 64 times the mean over them.
    model.compile_with(Compile::new(Adam::new(1e-3)).loss("binary_crossentropy").loss_weight("dec", 64.0))?;
    model.fit(&x, &x, Fit { epochs, batch_size: 32, validation_split: 0.2, verbose, ..Fit::default() })
}

fn main() -> kiln::Result<()> {
    let history = train(40, 0)?;
    let (total, kl) = (history.get("val_loss").unwrap_or_default(), history.get("val_kl_loss").unwrap_or_default());
    for (e, (t, k)) in total.iter().zip(kl).enumerate() {
        println!("epoch {:>2}: held-out reconstruction loss {:.3}, KL term {:.3}", e + 1, t - k, k);
    }
    Ok(())
}
