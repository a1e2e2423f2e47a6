//! Forecasting the next 12 months of sunspot numbers at once with an encoder-decoder: an LSTM
//! reads the previous 36 months and hands its final state and cell to a second LSTM (Keras'
//! `initial_state`), which writes one month per step from nothing but the step's position.
//!
//! Trained on the windows whose last target month lies in the first 80% of the monthly series
//! 1749–2009 (`examples/data/sunspots_monthly.csv`), scored on the rest, month by month of the
//! horizon, next to persistence (every future month = the last one seen), which it must beat
//! over the whole year.
//!
//! Run with `cargo run --release --example sunspots_seq2seq`. The trained model is written as
//! an ONNX file, `target/kiln-sunspots-seq2seq/seq2seq.onnx` (inputs `history` and `ahead`).

use kiln::ndarray::{Array3, s};
use kiln::prelude::*;

/// Months of history per forecast, and months forecast.
const WINDOW: usize = 36;
const HORIZON: usize = 12;

functional! {
    /// 36 months in, the next 12 out; the decoder's own input is only which month ahead it is.
    pub struct Seq2Seq {
        history = Input([36, 1]);
        ahead = Input([12, 12]);
        (_, h, c) = LSTM(48, return_state = true)(history);
        d = LSTM(48, return_sequences = true)(ahead, initial_state = [h, c]);
        months = Dense(1)(d);
        Model([history, ahead], months)
    }
}

fn mae(a: impl Iterator<Item = f32>, b: impl Iterator<Item = f32>) -> f64 {
    let (sum, n) = a.zip(b).fold((0.0, 0), |(s, n), (a, b)| (s + (a - b).abs() as f64, n + 1));
    sum / n as f64
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sunspots_monthly.csv"), true)?;
    let raw: Vec<f32> = table.column(2).to_vec();
    let split = raw.len() * 8 / 10;
    let scale = raw[..split].iter().copied().fold(0.0f32, f32::max);
    let series: Vec<f32> = raw.iter().map(|v| v / scale).collect();
    // Window i reads months i..i + 36 and forecasts i + 36..i + 48.
    let n = series.len() - WINDOW - HORIZON + 1;
    let history = Array3::from_shape_fn((n, WINDOW, 1), |(i, t, _)| series[i + t]);
    let future = Array3::from_shape_fn((n, HORIZON, 1), |(i, t, _)| series[i + WINDOW + t]);
    let ahead = Array3::from_shape_fn((n, HORIZON, HORIZON), |(_, t, k)| (t == k) as u8 as f32);
    let n_train = split - WINDOW - HORIZON + 1;
    let train = (history.slice(s![..n_train, .., ..]), ahead.slice(s![..n_train, .., ..]));
    let test = (history.slice(s![n_train.., .., ..]), ahead.slice(s![n_train.., .., ..]));

    let mut model = Seq2Seq::new();
    model.summary();
    model.compile("mse", Adam::new(0.003), &["mae"])?;
    let opts = Fit { epochs: 40, batch_size: 32, validation_split: 0.1, verbose: 2, ..Fit::default() };
    model.fit((&train.0, &train.1), &future.slice(s![..n_train, .., ..]), opts)?;

    let forecast = model.predict((&test.0, &test.1))?;
    let truth = future.slice(s![n_train.., .., ..]);
    let last_seen = test.0.slice(s![.., WINDOW - 1, 0]);
    println!("held-out windows: {}; mean absolute error in sunspots, by months ahead:", truth.shape()[0]);
    println!("| months ahead | encoder-decoder | persistence |");
    println!("| --- | --- | --- |");
    let (mut model_all, mut base_all) = (0.0, 0.0);
    for t in 0..HORIZON {
        let want = truth.slice(s![.., t, 0]);
        let m = mae(forecast.slice(s![.., t, 0]).iter().map(|v| v * scale), want.iter().map(|v| v * scale));
        let b = mae(last_seen.iter().map(|v| v * scale), want.iter().map(|v| v * scale));
        println!("| {} | {m:.2} | {b:.2} |", t + 1);
        (model_all, base_all) = (model_all + m / HORIZON as f64, base_all + b / HORIZON as f64);
    }
    println!(
        "over the year: encoder-decoder {model_all:.2}, persistence {base_all:.2} ({:+.1}%)",
        (model_all / base_all - 1.0) * 100.0
    );
    let out = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kiln-sunspots-seq2seq"));
    std::fs::create_dir_all(out).map_err(|source| kiln::Error::Io { path: out.display().to_string(), source })?;
    model.save_onnx(out.join("seq2seq.onnx"))?;
    println!("wrote {}", out.join("seq2seq.onnx").display());
    if model_all >= base_all {
        return Err(kiln::Error::InvalidData {
            what: "forecast".into(),
            reason: "the encoder-decoder did not beat persistence".into(),
        });
    }
    Ok(())
}
