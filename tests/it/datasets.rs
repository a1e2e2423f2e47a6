//! Datasets through `fit_dataset`, `evaluate_dataset` and `predict_dataset`: the same bits as
//! arrays, seeded shuffle buffers, passes under `steps_per_epoch`, prefetching that overlaps the
//! step, errors that keep the finished epochs, and a 20 GB stream in bounded memory.

use std::time::{Duration, Instant};

use kiln::data::{Batch, Dataset, Sample, from_arrays, from_generator};
use kiln::ndarray::{Array1, Array2, ArrayD, Axis, IxDyn, s};
use kiln::prelude::*;
use kiln::{Callback, Logs, Trainee};

sequential! {
    /// The digits MLP.
    pub struct Mlp: [64] {
        Dense(32, activation = relu),
        Dense(10, activation = softmax),
    }
}

sequential! {
    /// A linear model of wide rows, for the long stream.
    pub struct Wide: [4096] {
        Dense(1),
    }
}

/// The first `n` shuffled digits: pixels in [0, 1] and labels.
fn digits(n: usize) -> (Array2<f32>, Array1<f32>) {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    (x.slice(s![..n, ..]).mapv(|v| v / 16.0), y.slice(s![..n]).to_owned())
}

fn compiled() -> Mlp {
    let mut m = Mlp::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    m
}

/// Every weight's values by name, comparable bit for bit.
fn values<M: Model>(m: &M) -> Vec<(String, Vec<f32>)> {
    m.weights().into_iter().map(|(n, p)| (n, p.value)).collect()
}

fn quiet(epochs: usize) -> Fit<'static> {
    Fit { epochs, verbose: 0, shuffle: false, ..Fit::default() }
}

/// The digits as samples, read lazily from shared arrays.
fn samples(x: &Array2<f32>, y: &Array1<f32>) -> impl Dataset<Item = Sample> + 'static {
    let (x, y) = (x.clone(), y.clone());
    from_generator(move || {
        let (x, y) = (x.clone(), y.clone());
        (0..x.nrows())
            .map(move |i| Ok(Sample::new(x.row(i).to_owned().into_dyn(), ArrayD::from_elem(IxDyn(&[]), y[i]))))
    })
}

#[test]
fn a_dataset_in_order_trains_as_the_same_arrays_do() {
    let (x, y) = digits(600);
    let mut a = compiled();
    let ha = a.fit(&x, &y, Fit { batch_size: 32, ..quiet(3) }).unwrap();
    let mut b = compiled();
    let mut ds = from_arrays(vec![x.clone().into_dyn()], vec![y.clone().into_dyn()], 32).unwrap();
    let hb = b.fit_dataset(&mut ds, quiet(3)).unwrap();
    assert_eq!(ha.history, hb.history);
    assert_eq!(values(&a), values(&b));
    // Samples stacked by `batch` are the same batches.
    let mut c = compiled();
    let hc = c.fit_dataset(&mut samples(&x, &y).batch(32).prefetch(2), quiet(3)).unwrap();
    assert_eq!(ha.history, hc.history);
    assert_eq!(values(&a), values(&c));
    // evaluate and predict read a dataset as they read arrays.
    let logs = a.evaluate(&x, &y).unwrap();
    assert_eq!(logs, a.evaluate_dataset(&mut ds).unwrap());
    assert_eq!(a.predict(&x).unwrap(), a.predict_dataset(&mut ds).unwrap());
}

#[test]
fn a_shuffled_prefetched_stream_learns_the_digits_with_validation() {
    let (x, y) = digits(1500);
    let (xt, yt) = (x.slice(s![..1200, ..]).to_owned(), y.slice(s![..1200]).to_owned());
    let (xv, yv) = (x.slice(s![1200.., ..]).to_owned(), y.slice(s![1200..]).to_owned());
    let mut m = compiled();
    let mut train = samples(&xt, &yt).shuffle(1200, 3).batch(32).prefetch(4);
    let mut val = from_arrays(vec![xv.clone().into_dyn()], vec![yv.clone().into_dyn()], 100).unwrap();
    let h = m.fit_dataset_with(&mut train, Some(&mut val), quiet(10), &mut []).unwrap();
    let acc = h.last("val_accuracy").unwrap();
    assert!(acc > 0.9, "held-out accuracy {acc}");
    // The last epoch's validation is an evaluation of the weights it ended with.
    let logs = m.evaluate_with(&xv, &yv, kiln::Evaluate { batch_size: 100, verbose: 0 }).unwrap();
    assert_eq!(h.last("val_loss").unwrap(), logs["loss"]);
    // The seeded shuffle makes the run reproducible.
    let mut again = compiled();
    let mut train = samples(&xt, &yt).shuffle(1200, 3).batch(32).prefetch(4);
    again.fit_dataset_with(&mut train, Some(&mut val), quiet(10), &mut []).unwrap();
    assert_eq!(values(&m), values(&again));
}

/// The ids of one pass of a shuffled range.
fn pass(ds: &mut impl Dataset<Item = usize>) -> Vec<usize> {
    ds.restart().unwrap();
    std::iter::from_fn(|| ds.next_item().map(|r| r.unwrap())).collect()
}

#[test]
fn shuffle_buffers_are_seeded_and_draw_a_new_order_each_pass() {
    let ids = || from_generator(|| (0..100usize).map(Ok));
    let mut a = ids().shuffle(100, 5);
    let (p1, p2) = (pass(&mut a), pass(&mut a));
    let mut b = ids().shuffle(100, 5);
    assert_eq!(p1, pass(&mut b), "the same seed gives the same first pass");
    assert_eq!(p2, pass(&mut b), "and the same second pass");
    assert_ne!(p1, p2, "each pass draws a new order");
    assert_ne!(p1, pass(&mut ids().shuffle(100, 6)), "another seed, another order");
    for p in [&p1, &p2] {
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "every item once");
    }
    // A small buffer only mixes nearby items: no item moves ahead by more than the buffer.
    let local = pass(&mut ids().shuffle(10, 5));
    assert!(local.iter().enumerate().all(|(i, &v)| v <= i + 9), "{local:?}");
    // take, repeat and map compose as in tf.data.
    let mut r = ids().take(3).repeat().take(7).map(|v| Ok(v * 2));
    assert_eq!(pass(&mut r), vec![0, 2, 4, 0, 2, 4, 0]);
}

/// Counts the batches each epoch reads.
#[derive(Default)]
struct Batches(Vec<usize>);

impl Callback for Batches {
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut dyn Trainee) -> kiln::Result<()> {
        self.0.push(0);
        Ok(())
    }
    fn on_train_batch_end(&mut self, _b: usize, _logs: &Logs, _model: &mut dyn Trainee) -> kiln::Result<()> {
        *self.0.last_mut().unwrap() += 1;
        Ok(())
    }
}

#[test]
fn steps_per_epoch_carries_a_pass_over_epochs_and_repeat_streams_without_end() {
    let (x, y) = digits(320);
    let mut m = compiled();
    let mut ds = from_arrays(vec![x.clone().into_dyn()], vec![y.clone().into_dyn()], 32).unwrap();
    let mut count = Batches::default();
    let opts = Fit { steps_per_epoch: Some(4), ..quiet(5) };
    m.fit_dataset_with(&mut ds, None, opts, &mut [&mut count]).unwrap();
    // Ten batches a pass: 4 + 4 + 2 (the pass ran out), then a new pass.
    assert_eq!(count.0, vec![4, 4, 2, 4, 4]);
    let mut endless = samples(&x, &y).batch(32).repeat();
    let mut count = Batches::default();
    let opts = Fit { steps_per_epoch: Some(15), ..quiet(2) };
    m.fit_dataset_with(&mut endless, None, opts, &mut [&mut count]).unwrap();
    assert_eq!(count.0, vec![15, 15]);
}

#[test]
fn a_dataset_that_fails_mid_epoch_stops_fit_with_the_finished_epochs() {
    let (x, y) = digits(320);
    let (x, y) = (x.into_dyn(), y.into_dyn());
    let mut passes = 0;
    let mut failing = from_generator(move || {
        passes += 1;
        let (x, y, pass) = (x.clone(), y.clone(), passes);
        (0..10).map(move |b| match (pass, b) {
            (2, 5) => {
                Err(kiln::Error::InvalidData { what: "shard-0005.bin".into(), reason: "truncated record".into() })
            }
            _ => Ok(Batch::new(
                x.slice_axis(Axis(0), (b * 32..b * 32 + 32).into()).to_owned(),
                y.slice_axis(Axis(0), (b * 32..b * 32 + 32).into()).to_owned(),
            )),
        })
    });
    let err = compiled().fit_dataset(&mut failing, quiet(3)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("shard-0005.bin") && text.contains("batch 5 of epoch 2"), "{text}");
    match err {
        kiln::Error::Dataset { epoch: 2, batch: 5, history, .. } => assert_eq!(history.epoch, vec![0]),
        other => panic!("{other:?}"),
    }
    // A batch that does not fit the model names the shapes.
    let mut wrong = from_arrays(vec![ArrayD::zeros(IxDyn(&[8, 63]))], vec![ArrayD::zeros(IxDyn(&[8]))], 4).unwrap();
    let text = compiled().fit_dataset(&mut wrong, quiet(1)).unwrap_err().to_string();
    assert!(text.contains("63") && text.contains("64") && text.contains("batch 0 of epoch 1"), "{text}");
    // Options that belong to arrays are refused before any training.
    let mut ds = from_arrays(vec![ArrayD::zeros(IxDyn(&[8, 64]))], vec![ArrayD::zeros(IxDyn(&[8]))], 4).unwrap();
    let text = compiled().fit_dataset(&mut ds, Fit { validation_split: 0.2, ..quiet(1) }).unwrap_err().to_string();
    assert!(text.contains("validation_split") && text.contains("validation dataset"), "{text}");
}

/// A step that takes `0` (a slow model): sleeps after each batch.
struct Slow(Duration);

impl Callback for Slow {
    fn on_train_batch_end(&mut self, _b: usize, _logs: &Logs, _model: &mut dyn Trainee) -> kiln::Result<()> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[test]
fn prefetching_overlaps_reading_with_the_step() {
    let (read, step, n) = (Duration::from_millis(15), Duration::from_millis(15), 20u32);
    let slow_source = move || {
        from_generator(move || {
            (0..n).map(move |_| {
                std::thread::sleep(read);
                Ok(Batch::new(ArrayD::zeros(IxDyn(&[8, 64])), ArrayD::zeros(IxDyn(&[8]))))
            })
        })
    };
    let epoch = |ds: &mut dyn Dataset<Item = Batch>| {
        let mut m = compiled();
        let start = Instant::now();
        m.fit_dataset_with(ds, None, quiet(1), &mut [&mut Slow(step)]).unwrap();
        start.elapsed()
    };
    let serial = epoch(&mut slow_source());
    let overlapped = epoch(&mut slow_source().prefetch(2));
    // Without prefetching an epoch takes n (X + Y); with it about n max(X, Y) (and one X to start).
    assert!(serial >= (read + step) * n, "{serial:?}");
    assert!(overlapped < (read + step) * n * 4 / 5, "prefetched {overlapped:?}, serial {serial:?}");
}

/// The peak resident memory of this process, from the kernel.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// 20 GB of rows made on the fly (never stored) through `fit_dataset`: run in a process of its
/// own by `a_20_gb_stream_trains_in_bounded_memory`, so that its peak memory is its own.
#[test]
#[ignore = "run in its own process by a_20_gb_stream_trains_in_bounded_memory"]
fn stream_20_gb_in_own_process() {
    const ROWS: usize = 512;
    const BATCHES: usize = 20 * 1000 * 1000 * 1000 / (ROWS * 4096 * 4) + 1;
    let mut m = Wide::new();
    m.compile("mse", kiln::Sgd::new(0.05), &[]).unwrap();
    // The target is the first feature; the rows are zeros but for a few features per row.
    let mut ds = from_generator(|| {
        (0..BATCHES).map(|b| {
            let mut x = ArrayD::<f32>::zeros(IxDyn(&[ROWS, 4096]));
            let mut y = ArrayD::<f32>::zeros(IxDyn(&[ROWS, 1]));
            for r in 0..ROWS {
                let v = ((b * ROWS + r) % 7) as f32 / 7.0;
                x[[r, 0]] = v;
                x[[r, 1 + (r * 31) % 4095]] = 1.0 - v;
                y[[r, 0]] = v;
            }
            Ok(Batch::new(x, y))
        })
    })
    .prefetch(4);
    let h = m.fit_dataset(&mut ds, quiet(1)).unwrap();
    let gb = (BATCHES * ROWS * 4096 * 4) as f64 / 1e9;
    let peak = peak_rss_bytes().unwrap();
    println!("streamed {gb:.1} GB; peak resident memory {:.0} MB; loss {:?}", peak as f64 / 1e6, h.get("loss"));
    assert!(gb >= 20.0);
    assert!(peak < 1 << 30, "peak resident memory {peak} bytes");
    assert!(h.last("loss").unwrap() < 0.01, "{:?}", h.get("loss"));
}

#[test]
#[cfg(target_os = "linux")]
fn a_20_gb_stream_trains_in_bounded_memory() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["datasets::stream_20_gb_in_own_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 passed"), "{text}");
}

/// A training step of your own (`fit_with`) on a dataset: the same bits as on the same arrays
/// in order, the compiled loss and metrics reported as in `fit`.
#[test]
fn a_closure_step_trains_on_a_dataset_as_on_arrays() {
    let (x, y) = digits(320);
    let step = |m: &mut Mlp, opt: &mut dyn kiln::Optimizer, batch: kiln::StepBatch<'_>| {
        let labels = batch.target(0);
        let (_, grads) = m.loss_and_grads(&batch.x[0], &labels, &kiln::Loss::SparseCategoricalCrossentropy)?;
        opt.apply(m, &grads)
    };
    let mut a = compiled();
    let ha = a.fit_with(&x, &y, quiet(2), step).unwrap();
    let mut b = compiled();
    let mut ds = from_arrays(vec![x.clone().into_dyn()], vec![y.clone().into_dyn()], 32).unwrap();
    let hb = b.fit_dataset_with_step(&mut ds, None, quiet(2), step, &mut []).unwrap();
    assert_eq!(ha.history, hb.history);
    assert!(hb.get("accuracy").is_some());
    assert_eq!(values(&a), values(&b));
}
