use rand::Rng;

/// One trainable array (a kernel or a bias) with its gradient.
#[derive(Clone, Debug)]
pub struct Param {
    shape: Vec<usize>,
    /// The values, row-major.
    pub value: Vec<f32>,
    /// The gradient of the loss with respect to `value`, written by the last backward pass.
    pub grad: Vec<f32>,
    /// Whether optimizers update it. Frozen parameters count as non-trainable in the summary.
    pub trainable: bool,
}

impl Param {
    /// A parameter of the given shape, all zeros (Keras' `zeros` initializer).
    pub fn zeros(shape: &[usize]) -> Self {
        let len = shape.iter().product();
        Param { shape: shape.to_vec(), value: vec![0.0; len], grad: vec![0.0; len], trainable: true }
    }

    /// Keras' `glorot_uniform`: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
    pub fn glorot_uniform(fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Self {
        let mut p = Param::zeros(&[fan_in, fan_out]);
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
        for v in &mut p.value {
            *v = rng.random_range(-limit..limit);
        }
        p
    }

    /// The array's shape (Keras' layout: a Dense kernel is `[inputs, units]`).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}
