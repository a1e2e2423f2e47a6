//! `compile`: resolving the loss, optimizer and metrics (by name or as values) for every output.

use crate::error::{Error, Result};
use crate::losses::Loss;
use crate::metrics::{MetricSpec, Probs, RunningMetric};
use crate::model::Meta;
use crate::model::dynamic::DynModel;
use crate::optimizers::{IntoOptimizer, Optimizer};

/// Anything `compile` accepts as a loss: a Keras name or a [`Loss`].
pub trait IntoLoss {
    /// Resolves the loss.
    fn into_loss(self) -> Result<Loss>;
}

impl IntoLoss for Loss {
    fn into_loss(self) -> Result<Loss> {
        Ok(self)
    }
}

impl IntoLoss for &str {
    fn into_loss(self) -> Result<Loss> {
        Loss::from_name(self)
    }
}

/// The full form of `compile`, for models with several outputs: one loss for all outputs or one
/// per output (by the output's name), loss weights, and metrics for all or per output. Names are
/// resolved, and errors reported, by [`Model::compile_with`](crate::Model::compile_with).
#[derive(Debug)]
pub struct Compile {
    optimizer: Result<Box<dyn Optimizer>>,
    loss: Option<Result<Loss>>,
    output_losses: Vec<(String, Result<Loss>)>,
    weights: Vec<(String, f32)>,
    metrics: Vec<MetricSpec>,
    output_metrics: Vec<(String, Vec<MetricSpec>)>,
}

/// Keras' defaults: `rmsprop`, no metrics. A loss is still needed: kiln reports a missing one
/// when compiling (Keras waits until training starts).
///
/// ```ignore
/// model.compile_with(Compile::default().loss("mse"))?;
/// ```
impl Default for Compile {
    fn default() -> Self {
        Compile::new("rmsprop")
    }
}

impl Compile {
    /// Starts a configuration with the optimizer (a name or a value).
    pub fn new(optimizer: impl IntoOptimizer) -> Self {
        Compile {
            optimizer: optimizer.into_optimizer(),
            loss: None,
            output_losses: Vec::new(),
            weights: Vec::new(),
            metrics: Vec::new(),
            output_metrics: Vec::new(),
        }
    }

    /// The loss of every output without a loss of its own.
    pub fn loss(mut self, loss: impl IntoLoss) -> Self {
        self.loss = Some(loss.into_loss());
        self
    }

    /// The loss of the output named `output`.
    pub fn output_loss(mut self, output: &str, loss: impl IntoLoss) -> Self {
        self.output_losses.push((output.to_string(), loss.into_loss()));
        self
    }

    /// The weight of `output`'s loss in the total loss (default 1).
    pub fn loss_weight(mut self, output: &str, weight: f32) -> Self {
        self.weights.push((output.to_string(), weight));
        self
    }

    /// Metrics computed on every output.
    pub fn metrics(mut self, names: &[&str]) -> Self {
        self.metrics.extend(names.iter().map(|&s| MetricSpec::from(s)));
        self
    }

    /// One metric on every output, by name or with arguments (`Metric::auc(Curve::Pr, 200)`).
    pub fn metric(mut self, metric: impl Into<MetricSpec>) -> Self {
        self.metrics.push(metric.into());
        self
    }

    /// One metric on the output named `output` only.
    pub fn output_metric(mut self, output: &str, metric: impl Into<MetricSpec>) -> Self {
        self.output_metrics.push((output.to_string(), vec![metric.into()]));
        self
    }

    /// Metrics computed on the output named `output` only.
    pub fn output_metrics(mut self, output: &str, names: &[&str]) -> Self {
        self.output_metrics.push((output.to_string(), names.iter().map(|&s| MetricSpec::from(s)).collect()));
        self
    }
}

#[derive(Clone, Debug)]
pub(crate) struct OutputSpec {
    pub loss: Loss,
    pub weight: f32,
    pub metrics: Vec<MetricSpec>,
}

#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub outputs: Vec<OutputSpec>,
    pub optimizer: Box<dyn Optimizer>,
    /// Per output: the loss hands back the fused softmax gradient (see `train::fuses`).
    pub fused: Vec<bool>,
}

impl Compiled {
    /// Each output's loss, in output order.
    pub fn losses(&self) -> Vec<Loss> {
        self.outputs.iter().map(|o| o.loss).collect()
    }

    /// Fresh metric states, keyed as Keras does (`accuracy`, or `class_accuracy` with several
    /// outputs), each with the output it reads.
    pub fn metric_states(&self, meta: &Meta) -> Vec<(usize, RunningMetric)> {
        let multi = meta.outputs.len() > 1;
        let mut out = Vec::new();
        for (k, spec) in self.outputs.iter().enumerate() {
            let width = meta.outputs[k].last();
            for metric in &spec.metrics {
                let name = metric.name();
                let key = if multi { format!("{}_{name}", meta.outputs[k].name) } else { name.to_string() };
                let kind = metric.kind(&spec.loss, width);
                out.push((k, RunningMetric::resolved(&key, kind, Probs::of(&spec.loss, width))));
            }
        }
        out
    }
}

fn output_index(meta: &Meta, name: &str, what: &'static str) -> Result<usize> {
    meta.outputs.iter().position(|o| o.name == name).ok_or_else(|| {
        let names: Vec<_> = meta.outputs.iter().map(|o| o.name).collect();
        Error::invalid(
            what,
            format!("{} has no output named `{name}`; its outputs are: {}", meta.name, names.join(", ")),
        )
    })
}

/// Each output's loss and loss weight, from one loss for every output (`default`) and losses and
/// weights by output name, every one checked against the output it reads. `compile` and the
/// custom loops' [`Losses`](super::Losses) resolve theirs here.
pub(super) fn output_losses(
    meta: &Meta,
    default: Option<Loss>,
    by_name: Vec<(String, Loss)>,
    weights_by_name: &[(String, f32)],
) -> Result<Vec<(Loss, f32)>> {
    let mut losses: Vec<Option<Loss>> = vec![default; meta.outputs.len()];
    for (name, loss) in by_name {
        losses[output_index(meta, &name, "loss")?] = Some(loss);
    }
    let mut weights = vec![1.0f32; meta.outputs.len()];
    for (name, w) in weights_by_name {
        if !w.is_finite() || *w < 0.0 {
            return Err(Error::invalid(
                "loss_weights",
                format!("the weight of `{name}` must be finite and >= 0, got {w}"),
            ));
        }
        weights[output_index(meta, name, "loss_weights")?] = *w;
    }
    let mut out = Vec::new();
    for (k, port) in meta.outputs.iter().enumerate() {
        let loss = losses[k].ok_or_else(|| {
            Error::invalid(
                "loss",
                format!("output `{}` has no loss: give one loss for all outputs or one per output", port.name),
            )
        })?;
        let width = port.last();
        if loss.is_sparse() && width < 2 {
            return Err(Error::invalid(
                "loss",
                format!(
                    "sparse_categorical_crossentropy needs at least 2 outputs (one per class); output `{}` of {} has {width}",
                    port.name, meta.name
                ),
            ));
        }
        // A loss written for rows of one width (`#[kiln::loss]`) reads an output of that width,
        // and training needs every loss's gradient.
        loss.check_gradient(width)?;
        if let Some(w) = loss.custom_width().filter(|&w| w != width) {
            return Err(Error::invalid(
                "loss",
                format!(
                    "loss `{}` reads rows of {w} value(s), but output `{}` of {} gives rows of {width}",
                    loss.name(),
                    port.name,
                    meta.name
                ),
            ));
        }
        out.push((loss, weights[k]));
    }
    Ok(out)
}

pub(crate) fn compile(m: &mut dyn DynModel, config: Compile) -> Result<()> {
    let meta = m.meta();
    let optimizer = config.optimizer?;
    optimizer.check()?;
    let default = config.loss.transpose()?;
    let by_name = config.output_losses.into_iter().map(|(n, l)| l.map(|l| (n, l))).collect::<Result<Vec<_>>>()?;
    let losses = output_losses(&meta, default, by_name, &config.weights)?;
    for metric in config.metrics.iter().chain(config.output_metrics.iter().flat_map(|(_, v)| v)) {
        metric.check()?;
    }
    let mut outputs: Vec<OutputSpec> =
        losses.into_iter().map(|(loss, weight)| OutputSpec { loss, weight, metrics: config.metrics.clone() }).collect();
    for (name, names) in config.output_metrics {
        outputs[output_index(&meta, &name, "metrics")?].metrics.extend(names);
    }
    // Targets must have the shape each metric reads: labels for the sparse ones, the output's
    // shape for the others.
    for (k, out) in outputs.iter().enumerate() {
        let width = meta.outputs[k].last();
        for metric in &out.metrics {
            let kind = metric.kind(&out.loss, width);
            if kind.takes_labels() != out.loss.is_sparse() {
                let (wants, has) = if kind.takes_labels() {
                    ("one integer label per row", "targets shaped like the output")
                } else {
                    ("targets shaped like the output", "integer labels")
                };
                return Err(Error::invalid(
                    "metrics",
                    format!(
                        "metric `{}` on output `{}` reads {wants}, but its loss `{}` takes {has}",
                        metric.name(),
                        meta.outputs[k].name,
                        out.loss.name()
                    ),
                ));
            }
        }
    }
    let fused = outputs.iter().enumerate().map(|(k, o)| super::fuses(&meta, &o.loss, k)).collect();
    m.train_state_mut().compiled = Some(Compiled { outputs, optimizer, fused });
    Ok(())
}
