use rand::Rng;

/// What a weight is for: Keras' `trainable` flag, split so that a user's freezing and a layer's
/// own non-trainable state cannot be confused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Updated by the optimizer (a kernel, a bias).
    Trainable,
    /// A trainable weight the user froze (`trainable = false`): kept as it is until unfrozen.
    Frozen,
    /// State the layer updates itself (BatchNormalization's moving mean and variance): saved and
    /// loaded, counted as non-trainable, never touched by an optimizer or weight decay, and never
    /// unfrozen by `set_trainable(true)`.
    State,
}

/// What a weight's values must be besides finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Finite,
    NonNegative,
    Increasing,
}

/// One weight array (a kernel, a bias, a moving statistic) with its gradient.
#[derive(Clone, Debug)]
pub struct Param {
    shape: Vec<usize>,
    /// The values, row-major.
    pub value: Vec<f32>,
    /// The gradient of the loss with respect to `value`, written by the last backward pass
    /// (empty for [`Role::State`]).
    pub grad: Vec<f32>,
    role: Role,
    /// Added to the loss in training (Keras' `kernel_regularizer`).
    pub regularizer: Option<super::Regularizer>,
    /// Applied after each optimizer step (Keras' `kernel_constraint`).
    pub constraint: Option<super::Constraint>,
    /// What its values must be besides finite.
    rule: Rule,
}

impl Param {
    /// A weight of no values, which allocates nothing: what stands in a model's place while its
    /// weights are lent to another application of it (see [`crate::layers::ModelBuffers`]).
    pub(crate) fn empty() -> Self {
        Param {
            shape: Vec::new(),
            value: Vec::new(),
            grad: Vec::new(),
            role: Role::Trainable,
            regularizer: None,
            constraint: None,
            rule: Rule::Finite,
        }
    }

    /// A trainable weight of the given shape, all zeros (Keras' `zeros` initializer).
    pub fn zeros(shape: &[usize]) -> Self {
        let len = shape.iter().product();
        Param {
            shape: shape.to_vec(),
            value: vec![0.0; len],
            grad: vec![0.0; len],
            role: Role::Trainable,
            regularizer: None,
            constraint: None,
            rule: Rule::Finite,
        }
    }

    /// Non-trainable state of the given shape, every value `fill` (Keras'
    /// `add_weight(trainable=False)`): it has no gradient.
    pub fn state(shape: &[usize], fill: f32) -> Self {
        let len = shape.iter().product();
        Param {
            shape: shape.to_vec(),
            value: vec![fill; len],
            grad: Vec::new(),
            role: Role::State,
            regularizer: None,
            constraint: None,
            rule: Rule::Finite,
        }
    }

    /// Marks the weight as a variance, whose values may not be negative: `set_weight`, the
    /// loaders and the training step refuse values that are.
    pub fn non_negative(mut self) -> Self {
        self.rule = Rule::NonNegative;
        self
    }

    /// Marks the weight as bin boundaries, which must increase strictly (a Discretization's):
    /// `set_weight`, the loaders and `fit` / `predict` refuse values that do not.
    pub fn increasing(mut self) -> Self {
        self.rule = Rule::Increasing;
        self
    }

    /// Why `values` cannot be this weight's values, if they cannot: the first that is NaN or
    /// infinite, or negative in a variance.
    pub fn refuse(&self, values: &[f32]) -> Option<String> {
        if let Some(i) = crate::kernels::first_non_finite(values) {
            return Some(format!("holds {} at index {i}", values[i]));
        }
        match self.rule {
            Rule::Finite => None,
            Rule::NonNegative => {
                let i = values.iter().position(|v| *v < 0.0)?;
                Some(format!("holds {} at index {i}, but it is a variance: every value must be >= 0", values[i]))
            }
            Rule::Increasing => {
                let i = values.windows(2).position(|w| w[1] <= w[0])? + 1;
                Some(format!(
                    "holds {} at index {i} after {}, but it is bin boundaries: they must increase",
                    values[i],
                    values[i - 1]
                ))
            }
        }
    }

    /// Whether the weight is bin boundaries (a Discretization's), which a model checks before it
    /// runs (they are NaN until adapted).
    pub(crate) fn is_boundaries(&self) -> bool {
        self.rule == Rule::Increasing
    }

    /// The first value of the weight that [`refuse`](Self::refuse) would refuse.
    pub(crate) fn first_refused(&self) -> Option<f32> {
        if let Some(i) = crate::kernels::first_non_finite(&self.value) {
            return Some(self.value[i]);
        }
        match self.rule {
            Rule::Finite => None,
            Rule::NonNegative => self.value.iter().copied().find(|v| *v < 0.0),
            Rule::Increasing => self.value.windows(2).find(|w| w[1] <= w[0]).map(|w| w[1]),
        }
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

    /// Keras' `glorot_uniform` for a weight of any shape, given its fans (a convolution kernel
    /// `[kh, kw, c, f]` has fan-in `kh·kw·c` and fan-out `kh·kw·f`).
    pub fn glorot_uniform_shaped(shape: &[usize], fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Self {
        let mut p = Param::zeros(shape);
        let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
        for v in &mut p.value {
            *v = rng.random_range(-limit..limit);
        }
        p
    }

    /// The values (to change), the gradient and the shape at once, for an optimizer's update.
    pub fn update_parts(&mut self) -> (&mut [f32], &[f32], &[usize]) {
        (&mut self.value, &self.grad, &self.shape)
    }

    /// The values (to change) and the shape at once.
    pub fn value_and_shape(&mut self) -> (&mut [f32], &[usize]) {
        (&mut self.value, &self.shape)
    }

    /// Applies the weight's constraint, if it has one (Keras does after every update).
    pub fn apply_constraint(&mut self) {
        if let Some(c) = self.constraint {
            c.apply(&mut self.value, &self.shape);
        }
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

    /// The weight's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether an optimizer updates it now (trainable and not frozen).
    pub fn is_trainable(&self) -> bool {
        self.role == Role::Trainable
    }

    /// Freezes (`false`) or unfreezes (`true`) a trainable weight; non-trainable state is left
    /// as it is.
    pub fn set_trainable(&mut self, trainable: bool) {
        if self.role != Role::State {
            self.role = if trainable { Role::Trainable } else { Role::Frozen };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_never_unfrozen_and_frozen_weights_thaw() {
        let mut s = Param::state(&[3], 1.0);
        s.set_trainable(true);
        assert_eq!(s.role(), Role::State);
        assert!(!s.is_trainable() && s.grad.is_empty());
        let mut k = Param::zeros(&[2, 2]);
        k.set_trainable(false);
        assert_eq!(k.role(), Role::Frozen);
        k.set_trainable(true);
        assert!(k.is_trainable());
    }

    #[test]
    fn a_variance_refuses_negative_values_and_every_weight_non_finite_ones() {
        let v = Param::state(&[3], 1.0).non_negative();
        assert_eq!(v.refuse(&[1.0, 0.0, 2.0]), None);
        let e = v.refuse(&[1.0, -0.5, 2.0]).unwrap();
        assert!(e.contains("-0.5 at index 1") && e.contains("variance"), "{e}");
        assert!(v.refuse(&[f32::INFINITY, 1.0, 1.0]).unwrap().contains("inf at index 0"));
        assert_eq!(Param::zeros(&[2]).refuse(&[-1.0, 1.0]), None);
        assert!(Param::zeros(&[2]).refuse(&[f32::NAN, 1.0]).is_some());
    }
}
