"""Keras 3's PReLU on fixed values, for kiln's test.

    python examples/keras/prelu_reference.py > tests/fixtures/keras/prelu.txt

For each case `c`: lines `c.x` (two samples), `c.alpha` (the slopes as set), `c.out`, `c.dy`, and
the gradients of sum(out * dy): `c.dx` and `c.dalpha`.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(13)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


CASES = [
    ("vector", keras.layers.PReLU(), (2, 5)),
    ("steps", keras.layers.PReLU(shared_axes=[1]), (2, 3, 4)),
    ("image", keras.layers.PReLU(shared_axes=[1, 2]), (2, 2, 3, 4)),
]

print(f"# keras {keras.__version__}")
for name, layer, shape in CASES:
    x = tf.constant(rng.normal(0, 1, shape).astype("float32"))
    layer.build(shape)
    alpha = rng.normal(0.2, 0.1, layer.alpha.shape).astype("float32")
    layer.alpha.assign(alpha)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
        total = tf.reduce_sum(out * dy)
    dx, dalpha = tape.gradient(total, [x, layer.alpha])
    line(f"{name}.x", x)
    line(f"{name}.alpha", alpha)
    line(f"{name}.out", out)
    line(f"{name}.dy", dy)
    line(f"{name}.dx", dx)
    line(f"{name}.dalpha", dalpha)
