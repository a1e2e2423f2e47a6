//! Forecasting next month's sunspot number from the previous 36 months with an LSTM, on the
//! monthly series 1749–2009 shipped in `examples/data/sunspots_monthly.csv`.
//!
//! The model trains on windows whose target lies in the first 80% of the series and is scored
//! on the last 20%, next to the persistence baseline (next month = this month), which it must
//! beat. The forecast is drawn against the truth in `target/kiln-sunspots/forecast.png`.
//!
//! Run with `cargo run --release --example sunspots`.

use kiln::ndarray::{Array1, Array3, s};
use kiln::plot::{Series, line_chart, write_chart};
use kiln::prelude::*;

/// Months of history per forecast.
const WINDOW: usize = 36;

sequential! {
    /// 36 months of (scaled) sunspot numbers to the next month's.
    pub struct Forecaster: [36, 1] {
        LSTM(32),
        Dense(1),
    }
}

/// Every window of `WINDOW` months in `series`, and the month after each.
fn windows(series: &[f32]) -> (Array3<f32>, Array1<f32>) {
    let n = series.len() - WINDOW;
    let x = Array3::from_shape_fn((n, WINDOW, 1), |(i, t, _)| series[i + t]);
    let y = Array1::from_shape_fn(n, |i| series[i + WINDOW]);
    (x, y)
}

fn mae(a: impl Iterator<Item = f32>, b: impl Iterator<Item = f32>) -> f64 {
    let (sum, n) = a.zip(b).fold((0.0, 0), |(s, n), (a, b)| (s + (a - b).abs() as f64, n + 1));
    sum / n as f64
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sunspots_monthly.csv"), true)?;
    let raw: Vec<f32> = table.column(2).to_vec();
    // Scaled by the largest training value, so the network sees numbers around 0..1.
    let split = raw.len() * 8 / 10;
    let scale = raw[..split].iter().copied().fold(0.0f32, f32::max);
    let series: Vec<f32> = raw.iter().map(|v| v / scale).collect();
    let (x, y) = windows(&series);
    // Window i predicts month i + WINDOW: training targets are the months before `split`.
    let n_train = split - WINDOW;
    let (x_train, y_train) = (x.slice(s![..n_train, .., ..]), y.slice(s![..n_train]));
    let (x_test, y_test) = (x.slice(s![n_train.., .., ..]), y.slice(s![n_train..]));

    let mut model = Forecaster::new();
    model.summary();
    model.compile("mse", Adam::new(0.003), &["mae"])?;
    let opts = Fit { epochs: 40, batch_size: 32, validation_split: 0.1, verbose: 2, ..Fit::default() };
    model.fit(&x_train, &y_train, opts)?;

    let forecast = model.predict(&x_test)?;
    let truth: Vec<f32> = y_test.iter().map(|v| v * scale).collect();
    let predicted: Vec<f32> = forecast.iter().map(|v| v * scale).collect();
    // Persistence: the last month of each window.
    let persistence: Vec<f32> = x_test.slice(s![.., WINDOW - 1, 0]).iter().map(|v| v * scale).collect();
    let model_mae = mae(predicted.iter().copied(), truth.iter().copied());
    let base_mae = mae(persistence.iter().copied(), truth.iter().copied());
    let first = &table.row(split);
    println!(
        "held-out months {}-{:02} to 2009-06 ({} forecasts): LSTM MAE {model_mae:.2}, persistence MAE {base_mae:.2} ({:+.1}%)",
        first[0],
        first[1] as u32,
        truth.len(),
        (model_mae / base_mae - 1.0) * 100.0
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kiln-sunspots");
    std::fs::create_dir_all(&dir).map_err(|e| kiln::Error::Io { path: dir.display().to_string(), source: e })?;
    let as_f64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (t, p) = (as_f64(&truth), as_f64(&predicted));
    let chart = line_chart(
        "Monthly sunspot number: LSTM forecast of the next month on the held-out 20%",
        "months into the held-out period",
        "sunspot number",
        0.0,
        &[Series { label: "observed", values: &t }, Series { label: "LSTM forecast", values: &p }],
    );
    write_chart(&chart, dir.join("forecast.png"))?;
    println!("drew forecast.png in {}", dir.display());
    if model_mae >= base_mae {
        return Err(kiln::Error::InvalidData {
            what: "forecast".into(),
            reason: "the LSTM did not beat persistence".into(),
        });
    }
    Ok(())
}
