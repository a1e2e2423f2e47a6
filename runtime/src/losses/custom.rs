//! Losses you write: the [`CustomLoss`] trait and its mean over a batch, with the gradient it
//! gives or, when it opts in, one derived by central differences. (A loss written as math,
//! `#[kiln::loss]`, implements this trait with its exact gradient generated.)

/// A loss you write (Keras' `def my_loss(y_true, y_pred)`): the loss of one sample's row of
/// predictions against its targets (the same width), and, if you can, its gradient. The batch's
/// loss is the mean over rows, as Keras reduces.
///
/// ```
/// use kiln_runtime::{CustomLoss, Loss};
///
/// /// Squared error that counts under-prediction 4 times.
/// #[derive(Debug)]
/// struct Asymmetric;
///
/// impl CustomLoss for Asymmetric {
///     fn name(&self) -> &'static str {
///         "asymmetric"
///     }
///     fn value(&self, p: &[f32], y: &[f32]) -> f32 {
///         p.iter().zip(y).map(|(p, y)| if p < y { 4.0 * (y - p).powi(2) } else { (y - p).powi(2) }).sum::<f32>()
///             / p.len() as f32
///     }
///     fn gradient(&self, p: &[f32], y: &[f32], g: &mut [f32]) -> bool {
///         let n = p.len() as f32;
///         for ((g, p), y) in g.iter_mut().zip(p).zip(y) {
///             *g = if p < y { 8.0 } else { 2.0 } * (p - y) / n;
///         }
///         true
///     }
/// }
///
/// static ASYMMETRIC: Asymmetric = Asymmetric;
/// let loss = Loss::custom(&ASYMMETRIC); // in compile, in loss_and_grads, as a metric
/// # let _ = loss;
/// ```
pub trait CustomLoss: std::fmt::Debug + Sync {
    /// The name it is logged under.
    fn name(&self) -> &'static str;
    /// The loss of one row of predictions `p` against targets `y`.
    fn value(&self, p: &[f32], y: &[f32]) -> f32;
    /// Writes d value / d p into `g` and returns true. The default returns false: then training
    /// with the loss is an error unless [`approximate_gradient`](Self::approximate_gradient)
    /// opts into central differences. A loss written as math (`#[kiln::loss]`) has its exact
    /// gradient generated.
    fn gradient(&self, _p: &[f32], _y: &[f32], _g: &mut [f32]) -> bool {
        false
    }
    /// Opts a loss without [`gradient`](Self::gradient) into a gradient derived by central
    /// differences: two `value` calls per output value, accurate to about 1e-3 relative.
    fn approximate_gradient(&self) -> bool {
        false
    }
    /// The row width the loss reads, when it reads one only (a `#[kiln::loss]` function's
    /// `Input<width>`): `compile` then refuses an output of another width. `None`: any width.
    fn width(&self) -> Option<usize> {
        None
    }
}

/// The mean of `custom` over `n` rows of `width`, and d(mean)/d(p) into `grad`.
pub(super) fn rows(
    custom: &dyn CustomLoss,
    p: &[f32],
    y: &[f32],
    n: usize,
    width: usize,
    mut grad: Option<&mut [f32]>,
) -> f64 {
    let inv_n = 1.0 / n as f32;
    let mut total = 0.0f64;
    // One row's copy to nudge, for the derived gradient.
    let mut nudged = Vec::new();
    for r in 0..n {
        let (pr, yr) = (&p[r * width..(r + 1) * width], &y[r * width..(r + 1) * width]);
        total += custom.value(pr, yr) as f64;
        if let Some(g) = grad.as_deref_mut() {
            let gr = &mut g[r * width..(r + 1) * width];
            if !custom.gradient(pr, yr, gr) {
                nudged.clear();
                nudged.extend_from_slice(pr);
                for j in 0..width {
                    let h = 1e-3 * pr[j].abs().max(1.0);
                    nudged[j] = pr[j] + h;
                    let up = custom.value(&nudged, yr) as f64;
                    nudged[j] = pr[j] - h;
                    let down = custom.value(&nudged, yr) as f64;
                    nudged[j] = pr[j];
                    gr[j] = ((up - down) / (2.0 * h as f64)) as f32;
                }
            }
            gr.iter_mut().for_each(|v| *v *= inv_n);
        }
    }
    total / n as f64
}
