//! The digits classifier of `examples/digits.rs` trained by several processes over MPI: every
//! process holds a replica and the same data, takes its shard of each batch of 32, and the
//! gradients are summed over the processes every step, so the replicas stay one model. Process 0
//! prints; it also trains the same model alone on the same batches for comparison.
//!
//! ```sh
//! # Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin libclang-dev
//! cargo build --release --features mpi --example digits_mpi
//! mpirun -np 2 target/release/examples/digits_mpi
//! mpirun -np 2 target/release/examples/digits_mpi --check   # what CI runs (also with -np 3)
//! ```
//!
//! `--check` trains ten steps and fails unless the replicas are identical, their loss and weights
//! are within 1e-5 of one process's on the same global batches, the logs cover every row,
//! `evaluate` shared between the processes gives one process's figures, and a checkpoint was
//! written once.

use std::sync::Arc;
use std::time::Instant;

use kiln::distributed::{Collective, Mpi};
use kiln::ndarray::{Array2, Array4, Axis, s};
use kiln::prelude::*;

sequential! {
    /// 8x8 grey-level digit images to the probabilities of the 10 digits.
    pub struct Digits: [8, 8, 1] {
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn fail(msg: String) -> kiln::Error {
    kiln::Error::InvalidData { what: "digits_mpi --check".into(), reason: msg }
}

/// Every weight's values, in order.
fn values(m: &Digits) -> Vec<f32> {
    m.weights().into_iter().flat_map(|(_, p)| p.value).collect()
}

fn check(mpi: &Arc<Mpi>, x: &Array4<f32>, y: &Array2<f32>) -> kiln::Result<()> {
    let (rank, size) = (mpi.rank(), mpi.size());
    // Ten steps of 32 rows, with a checkpoint after the epoch.
    let (x, y) = (x.slice(s![..320, .., .., ..]), y.slice(s![..320, ..]));
    let opts = || Fit { epochs: 1, batch_size: 32, verbose: 0, ..Fit::default() };
    let dir = std::env::temp_dir().join("kiln-digits-mpi-check");
    if rank == 0 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    let barrier = || mpi.all_gather(&[0.0], &mut vec![0.0; size]);
    barrier();

    let mut model = Digits::new();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"])?;
    model.distribute(mpi.clone());
    let mut ckpt = kiln::ModelCheckpoint::new(dir.join("after-{epoch}.safetensors"));
    let h = model.fit_with_callbacks(&x, &y, opts(), &mut [&mut ckpt])?;
    kiln::distributed::check_replicas(&**mpi, &model, "after ten steps")?;
    barrier();

    let mut alone = Digits::new();
    alone.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"])?;
    let h1 = alone.fit(&x, &y, opts())?;
    let drift = values(&model).iter().zip(values(&alone)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let (loss, loss1) = (h.last("loss").unwrap_or(f64::NAN), h1.last("loss").unwrap_or(f64::NAN));
    let (acc, acc1) = (h.last("accuracy").unwrap_or(f64::NAN), h1.last("accuracy").unwrap_or(f64::NAN));
    if rank == 0 {
        println!(
            "{size} processes, 10 steps: replicas identical; weights within {drift:.1e} of one process; \
             loss {loss:.7} against {loss1:.7}; accuracy {acc:.4} against {acc1:.4}"
        );
    }
    if !(drift < 1e-5 && (loss - loss1).abs() < 1e-5 && (acc - acc1).abs() < 1e-5) {
        return Err(fail(format!("rank {rank}: drift {drift}, loss {loss} / {loss1}, accuracy {acc} / {acc1}")));
    }
    // evaluate: each process takes a share of the rows; all report the figures of every row.
    let shared = model.evaluate(&x, &y)?;
    let mut copy = model.clone();
    copy.train_state_mut().set_group(None);
    for (key, whole) in copy.evaluate(&x, &y)? {
        let got = shared.get(&key).copied().unwrap_or(f64::NAN);
        if (got - whole).abs() >= 1e-5 {
            return Err(fail(format!("rank {rank}: evaluate's {key} {got}, one process {whole}")));
        }
    }
    let files: Vec<_> = std::fs::read_dir(&dir).map_err(|e| fail(e.to_string()))?.collect();
    if files.len() != 1 {
        return Err(fail(format!("{} checkpoint files, not 1", files.len())));
    }
    barrier();
    if rank == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn main() -> kiln::Result<()> {
    let mpi = Mpi::init()?;
    let (rank, size) = (mpi.rank(), mpi.size());
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7))?;
    let n = pixels.nrows();
    let x = (pixels / 16.0).into_shape_with_order((n, 8, 8, 1)).expect("64 pixels per row");
    let y = labels.insert_axis(Axis(1));
    if std::env::args().any(|a| a == "--check") {
        return check(&mpi, &x, &y);
    }

    let fit = |group: Option<Arc<Mpi>>| -> kiln::Result<(f64, f64)> {
        let mut model = Digits::new();
        model.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"])?;
        if let Some(g) = group {
            model.distribute(g);
        }
        let start = Instant::now();
        model.fit(&x, &y, Fit { epochs: 30, batch_size: 32, validation_split: 0.2, verbose: 0, ..Fit::default() })?;
        let took = start.elapsed().as_secs_f64();
        let from = n - kiln::validation_rows(n, 0.2);
        let scores = model.evaluate(&x.slice(s![from.., .., .., ..]), &y.slice(s![from.., ..]))?;
        Ok((scores["accuracy"], took))
    };
    let (acc, took) = fit(Some(mpi.clone()))?;
    if rank == 0 {
        println!("{size} processes: 30 epochs in {took:.2} s, held-out accuracy {acc:.4}");
        let (acc1, took1) = fit(None)?;
        println!("1 process on the same batches: 30 epochs in {took1:.2} s, held-out accuracy {acc1:.4}");
    }
    Ok(())
}
