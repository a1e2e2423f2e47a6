//! Data-parallel training with replicas on threads (`ThreadGroup`), the same code path MPI
//! processes take: replicas stay identical, a run with a given number of replicas is
//! bit-reproducible, losses and metrics match one process on the same global batches, state
//! weights (moving statistics) stay in step, files are written once, custom steps all-reduce.

use kiln::distributed::{Group, ThreadGroup};
use kiln::ndarray::{Array2, Array4, s};
use kiln::prelude::*;
use kiln::{Callback, Logs, ModelCheckpoint, Trainee};

sequential! {
    /// The digits MLP.
    pub struct Mlp: [64] {
        Dense(32, activation = relu),
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// A small CNN with BatchNormalization (state the replicas must keep equal).
    pub struct Cnn: [8, 8, 1] {
        Conv2D(8, 3, padding = same, activation = relu),
        BatchNormalization,
        MaxPooling2D(2),
        Flatten,
        Dense(10, activation = softmax),
    }
}

/// The first `n` shuffled digits: pixels in [0, 1] and labels.
fn digits(n: usize) -> (Array2<f32>, Array2<f32>) {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    (x.slice(s![..n, ..]).mapv(|v| v / 16.0), y.slice(s![..n]).to_owned().insert_axis(kiln::ndarray::Axis(1)))
}

/// Runs `train` on `n` replicas, one thread each, and returns them with what `train` returned.
fn replicas<M: Send, T: Send>(n: usize, train: impl Fn(Group) -> (M, T) + Sync) -> Vec<(M, T)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::members(n).into_iter().map(|g| s.spawn(|| train(g))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every weight's values by name, comparable bit for bit.
fn values<M: Model>(m: &M) -> Vec<(String, Vec<f32>)> {
    m.weights().into_iter().map(|(n, p)| (n, p.value)).collect()
}

fn max_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    a.iter().zip(b).flat_map(|(x, y)| x.1.iter().zip(&y.1).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

fn quiet() -> Fit<'static> {
    Fit { epochs: 1, batch_size: 32, verbose: 0, shuffle: true, ..Fit::default() }
}

#[test]
fn replicas_stay_identical_and_follow_one_process() {
    // 10 steps of 32 rows.
    let (x, y) = digits(320);
    let mut single = Mlp::new();
    single.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h1 = single.fit(&x, &y, quiet()).unwrap();
    for n in [2, 3] {
        let runs = replicas(n, |g| {
            let mut m = Mlp::new();
            m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
            m.distribute(g);
            let h = m.fit(&x, &y, quiet()).unwrap();
            (m, h)
        });
        let w0 = values(&runs[0].0);
        for (m, h) in &runs {
            assert_eq!(values(m), w0, "{n} replicas differ");
            // Every replica logs the loss and accuracy of all the rows.
            assert_eq!(h.get("loss"), runs[0].1.get("loss"));
            assert_eq!(h.get("accuracy"), runs[0].1.get("accuracy"));
        }
        let drift = max_diff(&w0, &values(&single));
        assert!(drift < 1e-5, "{n} replicas against one process after 10 steps: {drift}");
        let (l1, ln) = (h1.last("loss").unwrap(), runs[0].1.last("loss").unwrap());
        assert!((l1 - ln).abs() < 1e-5, "loss {l1} against {ln}");
        let (a1, an) = (h1.last("accuracy").unwrap(), runs[0].1.last("accuracy").unwrap());
        assert!((a1 - an).abs() < 1e-5, "accuracy {a1} against {an}");
    }
}

#[test]
fn a_run_with_a_given_number_of_replicas_is_bit_reproducible() {
    let (x, y) = digits(200);
    let run = || {
        replicas(3, |g| {
            let mut m = Mlp::new();
            m.compile("sparse_categorical_crossentropy", "sgd", &[]).unwrap();
            m.distribute(g);
            m.fit(&x, &y, Fit { epochs: 2, batch_size: 25, ..quiet() }).unwrap();
            (values(&m), ())
        })
    };
    assert_eq!(run()[0].0, run()[0].0);
}

#[test]
fn moving_statistics_stay_in_step_and_evaluate_covers_every_row() {
    let (x, y) = digits(256);
    let x = x.into_shape_with_order((256, 8, 8, 1)).unwrap();
    let x: Array4<f32> = x;
    let runs = replicas(2, |g| {
        let mut m = Cnn::new();
        m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
        m.distribute(g);
        m.fit(&x, &y, Fit { epochs: 2, ..quiet() }).unwrap();
        let logs = m.evaluate(&x, &y).unwrap();
        (m, logs)
    });
    assert_eq!(values(&runs[0].0), values(&runs[1].0), "moving statistics included");
    // Each replica evaluated half of the rows; both report the figures of all of them.
    assert_eq!(runs[0].1, runs[1].1);
    let mut alone = runs[0].0.clone();
    alone.train_state_mut().set_group(None);
    let whole = alone.evaluate(&x, &y).unwrap();
    for (key, v) in &whole {
        assert!((v - runs[0].1[key]).abs() < 1e-6, "{key}: {v} alone, {} shared", runs[0].1[key]);
    }
}

/// Counts the epochs in which it was the process that writes files.
struct Chief(usize);

impl Callback for Chief {
    fn on_epoch_end(&mut self, _: usize, _: &Logs, model: &mut dyn Trainee) -> kiln::Result<()> {
        self.0 += model.is_chief() as usize;
        Ok(())
    }
}

#[test]
fn checkpoints_are_written_by_process_zero_alone() {
    let (x, y) = digits(128);
    let dir = std::env::temp_dir().join(format!("kiln-distributed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt-{epoch}.safetensors");
    let runs = replicas(3, |g| {
        let mut m = Mlp::new();
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.distribute(g);
        let (mut ckpt, mut chief) = (ModelCheckpoint::new(path.to_str().unwrap()), Chief(0));
        m.fit_with_callbacks(&x, &y, Fit { epochs: 2, ..quiet() }, &mut [&mut ckpt, &mut chief]).unwrap();
        (m, chief.0)
    });
    assert_eq!(runs.iter().map(|r| r.1).collect::<Vec<_>>(), [2, 0, 0]);
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["ckpt-1.safetensors", "ckpt-2.safetensors"]);
    let mut back = Mlp::new();
    back.load_weights(dir.join("ckpt-2.safetensors")).unwrap();
    assert_eq!(values(&back), values(&runs[1].0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn custom_steps_all_reduce_their_gradients() {
    let (x, y) = digits(192);
    let runs = replicas(2, |g| {
        let mut m = Mlp::new();
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.distribute(g.clone());
        m.fit_with(&x, &y, quiet(), |model, opt, batch| {
            let labels = batch.y[0].column(0);
            let (_, mut grads) = model.loss_and_grads(&batch.x[0], &labels, &Loss::SparseCategoricalCrossentropy)?;
            grads.all_reduce(&*g, batch.x[0].nrows());
            opt.apply(model, &grads)
        })
        .unwrap();
        (values(&m), ())
    });
    assert_eq!(runs[0].0, runs[1].0);
}

#[test]
fn replicas_built_from_different_seeds_are_refused() {
    let (x, y) = digits(64);
    let runs = replicas(2, |g| {
        let rank = g.rank();
        let mut m = Mlp::with_seed(rank as u64);
        m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
        m.distribute(g);
        ((), m.fit(&x, &y, quiet()).map(|_| ()).map_err(|e| e.to_string()))
    });
    for (_, r) in runs {
        let e = r.unwrap_err();
        assert!(e.contains("replicas of processes [1] differ from process 0's when fit started"), "{e}");
    }
}

/// `fit_dataset` runs data-parallel as `fit` does with arrays: every replica reads the same
/// dataset and takes its shard of each batch, so the replicas stay identical and end where
/// replicas fed the same rows as arrays end, bit for bit. Datasets of different lengths are an
/// error on every replica (none waits for the others forever).
#[test]
fn datasets_train_data_parallel_as_arrays_do() {
    let (x, y) = digits(320);
    let opts = Fit { epochs: 2, batch_size: 32, verbose: 0, shuffle: false, ..Fit::default() };
    let model = |g: Group| {
        let mut m = Mlp::new();
        m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
        m.distribute(g);
        m
    };
    let arrays = replicas(2, |g| {
        let mut m = model(g);
        let h = m.fit(&x, &y, opts.clone()).unwrap();
        (values(&m), h.get("loss").unwrap().to_vec())
    });
    let streamed = replicas(2, |g| {
        let mut m = model(g);
        let mut ds = kiln::data::from_arrays(vec![x.clone().into_dyn()], vec![y.clone().into_dyn()], 32).unwrap();
        let h = m.fit_dataset(&mut ds, opts.clone()).unwrap();
        (values(&m), h.get("loss").unwrap().to_vec())
    });
    assert_eq!(streamed[0], streamed[1], "the replicas differ");
    assert_eq!(streamed[0], arrays[0], "a dataset trains otherwise than the same rows as arrays");

    let uneven = replicas(2, |g| {
        let rows = if g.rank() == 0 { 320 } else { 256 };
        let mut m = model(g);
        let (xr, yr) = (x.slice(s![..rows, ..]).to_owned(), y.slice(s![..rows, ..]).to_owned());
        let mut ds = kiln::data::from_arrays(vec![xr.into_dyn()], vec![yr.into_dyn()], 32).unwrap();
        ((), m.fit_dataset(&mut ds, opts.clone()).unwrap_err().to_string())
    });
    for (_, err) in &uneven {
        assert!(err.contains("1 of the 2 replicas read a batch where the others ran out"), "{err}");
    }
}
