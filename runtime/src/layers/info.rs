//! How a layer describes itself: its name, Keras class, output shapes, parameter count, the
//! layers it reads and any nested model's layers. The model macros write one per layer; the
//! summary, the plots and the weights files' architecture check read them.

/// One layer of a model, as the model macro computed it at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name (`dense_1`), also the prefix of its parameter names.
    pub name: &'static str,
    /// Its Keras class (`Dense`, `Flatten`).
    pub kind: &'static str,
    /// Shape of one output sample (the first output's, for a layer of several).
    pub output_shape: &'static [usize],
    /// For a layer of several outputs (a recurrent layer's `return_state`), each one's shape;
    /// empty otherwise.
    pub outputs: &'static [&'static [usize]],
    /// Number of parameter values.
    pub params: usize,
    /// The layers it reads, as Keras' `Connected to` column writes them (`dense[0][0]`);
    /// empty for Sequential models.
    pub connected: &'static [&'static str],
    /// The activation a Dense or Activation layer applies (`relu`), or "".
    pub activation: &'static str,
    /// A nested model's own layers (shown by `summary_expanded`), or empty.
    pub nested: &'static [LayerInfo],
}
