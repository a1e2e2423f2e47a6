"""Keras 3's LayerNormalization on fixed values, for kiln's layer test.

    python examples/keras/layer_norm_reference.py > tests/fixtures/keras/layer_norm.txt

Lines: `x`, `gamma`, `beta`, `dy` (the inputs), then for each epsilon case `out`, `dx`, `dgamma`,
`dbeta`: the output and the gradients of sum(out * dy).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(3)
x = rng.normal(0, 2, (2, 4, 6)).astype("float32")
x[0, 0] = 0.5 + rng.normal(0, 2e-2, 6)  # a nearly constant row: epsilon matters
gamma = rng.normal(1, 0.3, 6).astype("float32")
beta = rng.normal(0, 0.5, 6).astype("float32")
dy = rng.normal(0, 1, (2, 4, 6)).astype("float32")

print(f"# keras {keras.__version__}")
for name, v in [("x", x), ("gamma", gamma), ("beta", beta), ("dy", dy)]:
    print(name, " ".join(repr(float(t)) for t in v.ravel()))
for eps in [1e-3, 1e-5]:
    layer = keras.layers.LayerNormalization(epsilon=eps)
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = layer(xt)
        total = tf.reduce_sum(out * dy)
    dx, dg, db = tape.gradient(total, [xt, layer.gamma, layer.beta])
    for name, v in [("out", out), ("dx", dx), ("dgamma", dg), ("dbeta", db)]:
        print(f"{name}_{eps}", " ".join(repr(float(t)) for t in np.ravel(v)))
