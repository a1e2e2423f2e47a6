"""Keras 3's losses beyond the regression and cross-entropy basics, on fixed values, for kiln's test.

    python examples/keras/losses_extra_reference.py > tests/fixtures/keras/losses_extra.txt

For each case `c`: lines `c.y_true` and `c.y_pred` (4 rows of 5), `c.loss` (the value of
`keras.losses.<Class>(...)(y_true, y_pred)`, reduction `sum_over_batch_size`) and `c.grad` (d loss
/ d y_pred, from `tf.GradientTape`). Targets suit each loss: probabilities for `kl_divergence`
(one of them 0, which Keras clips to epsilon), counts for `poisson`, 0/1 labels for the hinges
(read as -1/1) and for `binary_focal_crossentropy`, one-hot rows for `categorical_hinge`; the
`_signed` cases give the hinges -1/1 labels, which Keras leaves as they are.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(31)
SHAPE = (4, 5)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def probabilities(shape):
    p = rng.uniform(0.05, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


def labels(shape):
    return rng.integers(0, 2, shape).astype("float64")


def signed(shape):
    return 2.0 * labels(shape) - 1.0


def one_hot(shape):
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


def normal(scale):
    return lambda shape: rng.normal(0.0, scale, shape)


def uniform(low, high):
    return lambda shape: rng.uniform(low, high, shape)


def kl_targets(shape):
    y = probabilities(shape)
    y[1, 2] = 0.0
    return y


def counts(shape):
    return rng.poisson(2.0, shape).astype("float64")


# (case, loss, draw y_true, draw y_pred)
CASES = [
    ("kl_divergence", keras.losses.KLDivergence(), kl_targets, probabilities),
    ("cosine_similarity", keras.losses.CosineSimilarity(), normal(1.0), normal(1.0)),
    ("poisson", keras.losses.Poisson(), counts, uniform(0.1, 4.0)),
    ("log_cosh", keras.losses.LogCosh(), normal(1.0), normal(2.0)),
    ("hinge", keras.losses.Hinge(), labels, normal(1.5)),
    ("hinge_signed", keras.losses.Hinge(), signed, normal(1.5)),
    ("squared_hinge", keras.losses.SquaredHinge(), labels, normal(1.5)),
    ("squared_hinge_signed", keras.losses.SquaredHinge(), signed, normal(1.5)),
    ("categorical_hinge", keras.losses.CategoricalHinge(), one_hot, normal(1.5)),
    ("binary_focal_crossentropy", keras.losses.BinaryFocalCrossentropy(), labels, uniform(0.02, 0.98)),
    (
        "binary_focal_crossentropy_gamma3",
        keras.losses.BinaryFocalCrossentropy(gamma=3.0),
        labels,
        uniform(0.02, 0.98),
    ),
    (
        "binary_focal_crossentropy_logits",
        keras.losses.BinaryFocalCrossentropy(from_logits=True),
        labels,
        normal(2.0),
    ),
]

print(f"# keras {keras.__version__}")
for name, loss, draw_true, draw_pred in CASES:
    y_true = tf.constant(draw_true(SHAPE).astype("float32"))
    y_pred = tf.constant(draw_pred(SHAPE).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred)
    grad = tape.gradient(value, y_pred)
    line(f"{name}.y_true", y_true)
    line(f"{name}.y_pred", y_pred)
    line(f"{name}.loss", value)
    line(f"{name}.grad", grad)
