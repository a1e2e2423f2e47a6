//! Callbacks: EarlyStopping and ReduceLROnPlateau against Keras 3 on scripted sequences (the
//! stopping epoch and every learning rate, from `examples/keras/callbacks_reference.py`), and in
//! real training: the best weights restored bit for bit, checkpoints of the best epochs only, a
//! learning-rate schedule, a CSV log, and clear errors for what cannot work.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::{
    Callback, CsvLogger, EarlyStopping, LambdaCallback, LearningRateScheduler, Logs, ModelCheckpoint,
    ReduceLrOnPlateau, Trainee,
};
use rand::{Rng, SeedableRng};

const SEQ: [f64; 12] = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.71, 0.72, 0.69, 0.7, 0.75, 0.8];

/// A model stand-in for scripted sequences: a learning rate, a stop flag, one weight.
struct Fake {
    lr: f32,
    stopped: bool,
    weights: Vec<Vec<f32>>,
}

impl Trainee for Fake {
    fn model_name(&self) -> &'static str {
        "Fake"
    }
    fn get_weights(&self) -> Vec<Vec<f32>> {
        self.weights.clone()
    }
    fn set_weights(&mut self, weights: &[Vec<f32>]) -> kiln::Result<()> {
        self.weights = weights.to_vec();
        Ok(())
    }
    fn save_weights(&self, _: &std::path::Path) -> kiln::Result<()> {
        Ok(())
    }
    fn save_checkpoint(&self, _: &std::path::Path) -> kiln::Result<()> {
        Ok(())
    }
    fn learning_rate(&self) -> f32 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f32) -> kiln::Result<()> {
        self.lr = lr;
        Ok(())
    }
    fn stop_training(&mut self) {
        self.stopped = true;
    }
}

fn fake() -> Fake {
    Fake { lr: 0.1, stopped: false, weights: vec![vec![0.0]] }
}

/// Runs a callback over the scripted `val_loss` sequence; returns the stop epoch and the rates.
fn script(cb: &mut dyn Callback) -> (Option<usize>, Vec<f32>) {
    let mut m = fake();
    cb.on_train_begin(&mut m).unwrap();
    let mut lrs = Vec::new();
    for (e, v) in SEQ.iter().enumerate() {
        let logs = Logs::from([("val_loss".to_string(), *v)]);
        m.weights = vec![vec![e as f32]];
        cb.on_epoch_end(e, &logs, &mut m).unwrap();
        lrs.push(m.lr);
        if m.stopped {
            return (Some(e), lrs);
        }
    }
    (None, lrs)
}

fn keras(line: &str) -> String {
    let text = include_str!("../fixtures/keras/callbacks.txt");
    text.lines().find(|l| l.starts_with(line)).map(|l| l[line.len()..].trim().to_string()).expect(line)
}

#[test]
fn early_stopping_stops_where_keras_does() {
    let cases: [(&str, EarlyStopping); 4] = [
        ("early patience=2", EarlyStopping::new("val_loss").patience(2)),
        ("early patience=3 min_delta=0.05", EarlyStopping::new("val_loss").patience(3).min_delta(0.05)),
        ("early patience=1 baseline=0.75", EarlyStopping::new("val_loss").patience(1).baseline(0.75)),
        ("early patience=2 start_from_epoch=4", EarlyStopping::new("val_loss").patience(2).start_from_epoch(4)),
    ];
    for (name, mut cb) in cases {
        let want: i64 = keras(name).parse().unwrap();
        let (stopped, _) = script(&mut cb);
        assert_eq!(stopped.map_or(-1, |e| e as i64), want, "{name}");
    }
    // restore_best_weights puts back the best epoch's weights (epoch 1 here).
    let mut cb = EarlyStopping::new("val_loss").patience(2).restore_best_weights(true);
    let mut m = fake();
    cb.on_train_begin(&mut m).unwrap();
    for (e, v) in SEQ.iter().enumerate().take(4) {
        m.weights = vec![vec![e as f32]];
        cb.on_epoch_end(e, &Logs::from([("val_loss".to_string(), *v)]), &mut m).unwrap();
    }
    assert!(m.stopped);
    assert_eq!(m.weights, vec![vec![1.0]]);
}

#[test]
fn reduce_lr_on_plateau_gives_keras_learning_rates() {
    let cases: [(&str, ReduceLrOnPlateau); 2] = [
        ("plateau factor=0.5 patience=2", ReduceLrOnPlateau::new("val_loss").factor(0.5).patience(2)),
        (
            "plateau factor=0.5 patience=1 cooldown=2 min_lr=0.02",
            ReduceLrOnPlateau::new("val_loss").factor(0.5).patience(1).cooldown(2).min_lr(0.02),
        ),
    ];
    for (name, mut cb) in cases {
        let want: Vec<f32> = keras(name).split(' ').map(|v| v.parse::<f64>().unwrap() as f32).collect();
        let (_, lrs) = script(&mut cb);
        assert_eq!(lrs, want, "{name}");
    }
}

sequential! {
    pub struct Net: [6] {
        Dense(16, activation = relu),
        Dense(3, activation = softmax),
    }
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x = Array2::from_shape_fn((120, 6), |_| rng.random_range(-1.0..1.0));
    // Labels mostly from the first feature, a fifth of them random: validation loss turns up.
    let y =
        Array1::from_shape_fn(
            120,
            |i| if i % 5 == 0 { (i % 3) as f32 } else { ((x[[i, 0]] + 1.0) * 1.49) as u32 as f32 },
        );
    (x, y)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-callbacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn early_stopping_in_fit_restores_the_best_epochs_weights() {
    let (x, y) = data();
    let mut m = Net::with_seed(2);
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &[]).unwrap();
    let mut per_epoch: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut record = LambdaCallback::on_epoch_end(|_, _, model: &mut dyn Trainee| {
        per_epoch.push(model.get_weights());
        Ok(())
    });
    let mut early = EarlyStopping::new("val_loss").patience(3).restore_best_weights(true);
    let opts = Fit { epochs: 200, batch_size: 16, validation_split: 0.25, verbose: 0, ..Fit::default() };
    let h = m.fit_with_callbacks(&x, &y, opts, &mut [&mut record, &mut early]).unwrap();
    let stopped = early.stopped_epoch().expect("it stops before 200 epochs");
    assert_eq!(h.epoch.len(), stopped + 1, "training ends at the stopping epoch");
    let best = early.best_epoch();
    let losses = h.get("val_loss").unwrap();
    let min = losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best], min, "the best epoch has the lowest val_loss");
    let now: Vec<Vec<f32>> = m.weights().into_iter().map(|(_, p)| p.value).collect();
    assert_eq!(now, per_epoch[best], "bit-identical to the best epoch's weights");
}

#[test]
fn model_checkpoint_writes_only_improving_epochs() {
    let (x, y) = data();
    let mut m = Net::with_seed(3);
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &[]).unwrap();
    let template = scratch("best-{epoch:02}-{val_loss:.3}.safetensors");
    let mut ckpt = ModelCheckpoint::new(template.to_str().unwrap()).save_best_only(true).save_weights_only(true);
    let opts = Fit { epochs: 25, batch_size: 16, validation_split: 0.25, verbose: 0, ..Fit::default() };
    let h = m.fit_with_callbacks(&x, &y, opts, &mut [&mut ckpt]).unwrap();
    let losses = h.get("val_loss").unwrap();
    let mut best = f64::INFINITY;
    let improving: Vec<usize> = (0..losses.len())
        .filter(|&e| {
            let better = losses[e] < best;
            best = best.min(losses[e]);
            better
        })
        .collect();
    assert_eq!(ckpt.saved().len(), improving.len());
    for (path, e) in ckpt.saved().iter().zip(&improving) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(name, format!("best-{:02}-{:.3}.safetensors", e + 1, losses[*e]));
        assert!(path.exists());
    }
    // The last one holds the best weights: loading it gives the best val_loss again.
    let mut best_model = Net::with_seed(9);
    best_model.load_weights(ckpt.saved().last().unwrap()).unwrap();
    // A checkpoint (weights and optimizer state) resumes.
    let mut full = ModelCheckpoint::new(scratch("full.safetensors").to_str().unwrap());
    m.fit_with_callbacks(&x, &y, Fit { epochs: 1, verbose: 0, ..Fit::default() }, &mut [&mut full]).unwrap();
    let mut resumed = Net::with_seed(4);
    resumed.compile("sparse_categorical_crossentropy", Adam::new(0.05), &[]).unwrap();
    resumed.load_checkpoint(scratch("full.safetensors")).unwrap();
}

#[test]
fn schedules_csv_logs_and_bad_monitors() {
    let (x, y) = data();
    let mut m = Net::with_seed(5);
    m.compile("sparse_categorical_crossentropy", Sgd::new(0.1), &["accuracy"]).unwrap();
    let mut schedule = LearningRateScheduler::new(|epoch, lr| if epoch < 2 { lr } else { lr * 0.5 });
    let mut seen = Vec::new();
    let mut record = LambdaCallback::on_epoch_end(|_, _, model: &mut dyn Trainee| {
        seen.push(model.learning_rate());
        Ok(())
    });
    let csv = scratch("log.csv");
    let mut log = CsvLogger::new(&csv, false);
    let opts = Fit { epochs: 4, verbose: 0, validation_split: 0.2, ..Fit::default() };
    let h = m.fit_with_callbacks(&x, &y, opts.clone(), &mut [&mut schedule, &mut record, &mut log]).unwrap();
    assert_eq!(seen, vec![0.1, 0.1, 0.05, 0.025]);
    // As in Keras, the history records the rate of each epoch under `learning_rate`.
    let rates: Vec<f32> = h.get("learning_rate").unwrap().iter().map(|&r| r as f32).collect();
    assert_eq!(rates, [0.1, 0.1, 0.05, 0.025]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "epoch,accuracy,loss,val_accuracy,val_loss");
    assert_eq!(lines.len(), 5);
    assert!(lines[4].starts_with("3,"));

    let mut bad = EarlyStopping::new("val_los");
    let trained = m.train_state().epochs();
    let e = m.fit_with_callbacks(&x, &y, opts.clone(), &mut [&mut bad]).unwrap_err().to_string();
    assert!(e.contains("`val_los`") && e.contains("val_loss"), "{e}");
    assert_eq!(m.train_state().epochs(), trained, "refused before the first epoch");
    let mut bad = ReduceLrOnPlateau::new("val_loss").factor(1.5);
    let e = m.fit_with_callbacks(&x, &y, opts, &mut [&mut bad]).unwrap_err().to_string();
    assert!(e.contains("factor must be in [0, 1)"), "{e}");
}

sequential! {
    pub struct Digits: [64] {
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

/// The README's "Controlling training" example, on the shipped digits.
#[test]
fn controlling_training_as_in_the_readme() -> kiln::Result<()> {
    use kiln::{CosineDecay, EarlyStopping, ModelCheckpoint, Scheduled};
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (x, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7))?;
    let x = x / 16.0;
    let dir = scratch("readme");
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("best-{epoch:02}-{val_auc:.4}.safetensors");
    let mut model = Digits::new();

    let adam = Scheduled::new(Adam::default(), CosineDecay::new(1e-4, 2_000).warmup(3e-3, 50));
    let y = kiln::data::one_hot(&labels, 10)?;
    model.compile_with(Compile::new(adam).loss("categorical_crossentropy").metrics(&["accuracy", "auc"]))?;
    let mut early = EarlyStopping::new("val_loss").patience(5).restore_best_weights(true);
    let mut best = ModelCheckpoint::new(template.to_str().unwrap())
        .monitor("val_auc")
        .save_best_only(true)
        .save_weights_only(true);
    let history = model.fit_with_callbacks(
        &x,
        &y,
        Fit { epochs: 200, validation_split: 0.2, verbose: 0, ..Fit::default() },
        &mut [&mut early, &mut best],
    )?;

    assert!(early.stopped_epoch().is_some(), "early stopping ends the run before 200 epochs");
    assert!(history.epoch.len() < 200);
    assert!(!best.saved().is_empty() && best.saved().iter().all(|p| p.exists()));
    let best_accuracy = history.get("val_accuracy").unwrap().iter().cloned().fold(0.0, f64::max);
    assert!(best_accuracy >= 0.95, "best held-out accuracy {best_accuracy}");
    let best_auc = history.get("val_auc").unwrap().iter().cloned().fold(0.0, f64::max);
    assert!(best_auc >= 0.99, "best held-out AUC {best_auc}");
    Ok(())
}

sequential! {
    /// With dropout, so a resumed run must also restore the random stream.
    pub struct Dropped: [64] {
        Dense(32, activation = relu),
        Dropout(0.2),
        Dense(10, activation = softmax),
    }
}

const BACKUP_EPOCHS: usize = 25;

/// The run the backup test interrupts: Adam (moments to restore), shuffling (the epoch count),
/// dropout (the stream). `pause` slows each epoch so the parent can kill it mid-run.
fn backed_up_run(backup: Option<&std::path::Path>, pause: bool) -> kiln::Result<(Vec<Vec<f32>>, History)> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (x, y) = kiln::data::split_label(&table)?;
    let (x, y) =
        (x.slice(kiln::ndarray::s![..600, ..]).to_owned() / 16.0, y.slice(kiln::ndarray::s![..600]).to_owned());
    let mut model = Dropped::with_seed(21);
    model.compile("sparse_categorical_crossentropy", "adam", &["accuracy"])?;
    let mut slow = LambdaCallback::on_epoch_end(|_, _: &Logs, _: &mut dyn Trainee| {
        if pause {
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
        Ok(())
    });
    let opts = Fit { epochs: BACKUP_EPOCHS, batch_size: 64, verbose: 0, ..Fit::default() };
    let history = match backup {
        Some(dir) => {
            let mut backup = kiln::BackupAndRestore::new(dir);
            model.fit_with_callbacks(&x, &y, opts, &mut [&mut backup, &mut slow])?
        }
        None => model.fit_with_callbacks(&x, &y, opts, &mut [&mut slow])?,
    };
    Ok((model.weights().into_iter().map(|(_, p)| p.value).collect(), history))
}

/// Run only as the child process of the backup test (it does nothing in a normal test run):
/// trains with a backup until the parent kills it.
#[test]
fn backup_child_process() {
    if let Ok(dir) = std::env::var("KILN_BACKUP_CHILD") {
        backed_up_run(Some(std::path::Path::new(&dir)), true).unwrap();
    }
}

/// A training process is killed (SIGKILL) mid-run; the same program started again resumes from
/// the last finished epoch and ends with weights bit-identical to a run never interrupted.
#[test]
fn backup_and_restore_survives_a_killed_process() -> kiln::Result<()> {
    if std::env::var("KILN_BACKUP_CHILD").is_ok() {
        return Ok(());
    }
    let dir = scratch("backup");
    let _ = std::fs::remove_dir_all(&dir);
    let backup = dir.join("backup.safetensors");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "callbacks::backup_child_process", "--test-threads=1", "--nocapture"])
        .env("KILN_BACKUP_CHILD", &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it a little after its first backup, somewhere inside a later epoch.
    let start = std::time::Instant::now();
    while !backup.exists() {
        assert!(start.elapsed().as_secs() < 120, "the child never wrote a backup");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed before it finished");
    assert!(backup.exists(), "the backup survives the kill");

    let (resumed, history) = backed_up_run(Some(&dir), false)?;
    let resumed_from = history.epoch[0];
    assert!(resumed_from > 0 && resumed_from < BACKUP_EPOCHS, "resumed at epoch {resumed_from}");
    assert_eq!(*history.epoch.last().unwrap(), BACKUP_EPOCHS - 1);
    assert!(!backup.exists(), "the backup is deleted once training ends");
    let (uninterrupted, _) = backed_up_run(None, false)?;
    assert_eq!(resumed, uninterrupted, "resumed from epoch {resumed_from}: not bit-identical");
    Ok(())
}

sequential! {
    pub struct Line: [1] { Dense(1) }
}

/// Without TerminateOnNaN a diverging run is an error; with it, `fit` returns the epochs
/// finished, and the weights are those of the last good step (finite).
#[test]
fn terminate_on_nan_ends_a_diverging_run_quietly() -> kiln::Result<()> {
    let x = Array2::from_shape_fn((8, 1), |(i, _)| i as f32);
    let y = Array2::from_shape_fn((8, 1), |(i, _)| if i % 2 == 0 { 1e18 } else { -1e18 });
    let opts = || Fit { epochs: 20, batch_size: 2, verbose: 0, shuffle: false, ..Fit::default() };
    let mut plain = Line::new();
    plain.compile("mse", Sgd::new(1.0), &[])?;
    assert!(plain.fit(&x, &y, opts()).is_err());

    let mut m = Line::new();
    m.compile("mse", Sgd::new(1.0), &[])?;
    let history = m.fit_with_callbacks(&x, &y, opts(), &mut [&mut kiln::TerminateOnNaN])?;
    assert!(history.epoch.len() < 20, "stopped early: {:?}", history.epoch);
    assert!(m.weights().iter().all(|(_, p)| p.value.iter().all(|v| v.is_finite())));
    Ok(())
}

/// Records every hook in order.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    last_batch_loss: f64,
    stop_at_batch: Option<usize>,
}

impl Callback for Recorder {
    fn on_epoch_begin(&mut self, epoch: usize, _: &mut dyn Trainee) -> kiln::Result<()> {
        self.events.push(format!("epoch_begin {epoch}"));
        Ok(())
    }
    fn on_train_batch_begin(&mut self, batch: usize, _: &mut dyn Trainee) -> kiln::Result<()> {
        self.events.push(format!("batch_begin {batch}"));
        Ok(())
    }
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut dyn Trainee) -> kiln::Result<()> {
        self.events.push(format!("batch_end {batch}"));
        self.last_batch_loss = logs["loss"];
        if self.stop_at_batch == Some(batch) {
            model.stop_training();
        }
        Ok(())
    }
    fn on_test_begin(&mut self, _: &mut dyn Trainee) -> kiln::Result<()> {
        self.events.push("test_begin".into());
        Ok(())
    }
    fn on_test_end(&mut self, logs: &Logs, _: &mut dyn Trainee) -> kiln::Result<()> {
        assert!(logs.contains_key("loss") && !logs.contains_key("val_loss"));
        self.events.push("test_end".into());
        Ok(())
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _: &mut dyn Trainee) -> kiln::Result<()> {
        // The last batch's running loss is the epoch's loss.
        assert!((logs["loss"] - self.last_batch_loss).abs() < 1e-12);
        self.events.push(format!("epoch_end {epoch}"));
        Ok(())
    }
}

#[test]
fn batch_and_test_hooks_run_in_kerass_order() -> kiln::Result<()> {
    let x = Array2::from_shape_fn((100, 1), |(i, _)| i as f32 / 100.0);
    let y = x.mapv(|v| 2.0 * v);
    let mut m = Line::new();
    m.compile("mse", "sgd", &[])?;
    let mut rec = Recorder::default();
    let opts = || Fit { epochs: 2, batch_size: 32, validation_split: 0.2, verbose: 0, ..Fit::default() };
    m.fit_with_callbacks(&x, &y, opts(), &mut [&mut rec])?;
    // 80 training rows: batches of 32, 32, 16.
    let epoch = |e: usize| {
        let mut v = vec![format!("epoch_begin {e}")];
        for b in 0..3 {
            v.push(format!("batch_begin {b}"));
            v.push(format!("batch_end {b}"));
        }
        v.extend(["test_begin".to_string(), "test_end".to_string(), format!("epoch_end {e}")]);
        v
    };
    assert_eq!(rec.events, [epoch(0), epoch(1)].concat());

    // Stopping in a batch ends that epoch after the batch, and training with it.
    let mut stopper = Recorder { stop_at_batch: Some(1), ..Recorder::default() };
    let h = m.fit_with_callbacks(&x, &y, opts(), &mut [&mut stopper])?;
    assert_eq!(h.epoch, [0]);
    assert!(!stopper.events.contains(&"batch_begin 2".to_string()));
    Ok(())
}

/// Every LambdaCallback hook, from closures that borrow locals read afterwards.
#[test]
fn lambda_callback_takes_every_hook() -> kiln::Result<()> {
    let x = Array2::from_shape_fn((40, 1), |(i, _)| i as f32 / 40.0);
    let y = x.mapv(|v| 3.0 * v);
    let mut m = Line::new();
    m.compile("mse", "sgd", &[])?;
    let (mut events, mut batches, mut epochs_begun) = (Vec::new(), 0, 0);
    let mut lambda = LambdaCallback::on_epoch_end(|_, _: &Logs, _: &mut dyn Trainee| Ok(()))
        .and_on_train_begin(|_| {
            events.push("begin");
            Ok(())
        })
        .and_on_epoch_begin(|_, _| {
            epochs_begun += 1;
            Ok(())
        })
        .and_on_train_batch_begin(|_, _| Ok(()))
        .and_on_train_batch_end(|_, logs, _| {
            assert!(logs.contains_key("loss"));
            batches += 1;
            Ok(())
        })
        .and_on_train_end(|logs, _| {
            assert!(logs.contains_key("loss"));
            Ok(())
        });
    m.fit_with_callbacks(&x, &y, Fit { epochs: 3, batch_size: 16, verbose: 0, ..Fit::default() }, &mut [&mut lambda])?;
    assert_eq!((events, batches, epochs_begun), (vec!["begin"], 9, 3));
    Ok(())
}
