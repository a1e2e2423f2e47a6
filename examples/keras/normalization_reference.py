"""Keras 3's Normalization layer adapted to fixed data, for kiln's test.

    python examples/keras/normalization_reference.py > tests/fixtures/keras/normalization.txt

Lines: `data` (what `adapt` sees, [40, 3, 4]), the adapted `mean`, `variance` and `count`, then
`x` (two samples), `out`, `dy` and `dx` (the gradient of sum(out * dy)). One feature is constant
in the data, so its variance is 0 and the 1e-7 floor of the standard deviation is used.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(5)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


data = rng.normal([3.0, -1.0, 0.0, 10.0], [2.0, 0.5, 1.0, 0.0], (40, 3, 4)).astype("float32")
layer = keras.layers.Normalization()
layer.adapt(data)
print(f"# keras {keras.__version__}")
line("data", data)
line("mean", layer.mean.numpy())
line("variance", layer.variance.numpy())
line("count", [float(layer.count.numpy())])
x = tf.constant(rng.normal(2.0, 3.0, (2, 3, 4)).astype("float32"))
with tf.GradientTape() as tape:
    tape.watch(x)
    out = layer(x)
    dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
    total = tf.reduce_sum(out * dy)
line("x", x)
line("out", out)
line("dy", dy)
line("dx", tape.gradient(total, x))
