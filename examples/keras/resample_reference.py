"""Keras 3's padding, cropping, up-sampling, RepeatVector and Permute layers on fixed values, for
kiln's resampling test.

    python examples/keras/resample_reference.py > tests/fixtures/keras/resample.txt

For each case `c`: lines `c.x` (the input, two samples), `c.out` (the output) and `c.dx` (the
gradient of sum(out * dy) for `c.dy`).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(11)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


CASES = [
    ("zero_padding2d", keras.layers.ZeroPadding2D(((1, 0), (2, 1))), (2, 3, 4, 2)),
    ("cropping2d", keras.layers.Cropping2D(((1, 0), (0, 2))), (2, 5, 6, 2)),
    ("up_sampling2d", keras.layers.UpSampling2D((2, 3)), (2, 2, 3, 2)),
    ("zero_padding1d", keras.layers.ZeroPadding1D((1, 2)), (2, 5, 3)),
    ("cropping1d", keras.layers.Cropping1D((2, 1)), (2, 6, 3)),
    ("up_sampling1d", keras.layers.UpSampling1D(3), (2, 4, 3)),
    ("repeat_vector", keras.layers.RepeatVector(4), (2, 5)),
    ("permute21", keras.layers.Permute((2, 1)), (2, 3, 4)),
    ("permute312", keras.layers.Permute((3, 1, 2)), (2, 2, 3, 4)),
]

print(f"# keras {keras.__version__}")
for name, layer, shape in CASES:
    x = tf.constant(rng.normal(0, 1, shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
        total = tf.reduce_sum(out * dy)
    line(f"{name}.x", x)
    line(f"{name}.out", out)
    line(f"{name}.dy", dy)
    line(f"{name}.dx", tape.gradient(total, x))
