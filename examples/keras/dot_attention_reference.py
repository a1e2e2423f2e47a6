"""Keras 3's Attention (dot-product) and AdditiveAttention layers on fixed values, for kiln's test.

    python examples/keras/dot_attention_reference.py > tests/fixtures/keras/dot_attention.txt

For each case `c`: lines `c.q`, `c.v` (and `c.k`), the masks given (`c.qmask`, `c.vmask`), `c.scale`
where `use_scale`, `c.out`, `c.dy`, and the gradients of sum(out * dy): `c.dq`, `c.dv` (`c.dk`,
`c.dscale`).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(17)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def case(name, layer, tq, tv, d, dv, key=False, causal=False, masks=None, scale=None):
    q = tf.constant(rng.normal(0, 1, (2, tq, d)).astype("float32"))
    v = tf.constant(rng.normal(0, 1, (2, tv, dv)).astype("float32"))
    k = tf.constant(rng.normal(0, 1, (2, tv, d)).astype("float32")) if key else None
    inputs = [q, v] + ([k] if key else [])
    layer.build([t.shape for t in inputs])
    if scale is not None:
        layer.scale.assign(scale)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        kwargs = {"use_causal_mask": causal}
        if masks is not None:
            kwargs["mask"] = [tf.constant(m) for m in masks]
        out = layer(inputs, **kwargs)
        dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
        total = tf.reduce_sum(out * dy)
    weights = [layer.scale] if scale is not None else []
    grads = tape.gradient(total, inputs + weights)
    line(f"{name}.q", q)
    line(f"{name}.v", v)
    if key:
        line(f"{name}.k", k)
    if masks is not None:
        line(f"{name}.qmask", np.array(masks[0], dtype="float32"))
        line(f"{name}.vmask", np.array(masks[1], dtype="float32"))
    if scale is not None:
        line(f"{name}.scale", [scale])
    line(f"{name}.out", out)
    line(f"{name}.dy", dy)
    for n, g in zip(["dq", "dv"] + (["dk"] if key else []) + (["dscale"] if scale is not None else []), grads):
        line(f"{name}.{n}", g)


print(f"# keras {keras.__version__}")
case("plain", keras.layers.Attention(), 3, 5, 4, 4)
case("keyed_scaled_causal", keras.layers.Attention(use_scale=True), 4, 4, 3, 5, key=True, causal=True, scale=0.7)
case("masked", keras.layers.Attention(), 3, 5, 4, 4,
     masks=[[[True, True, False], [True, True, True]], [[True, True, True, False, False], [True, False, True, True, True]]])
case("additive", keras.layers.AdditiveAttention(), 3, 5, 4, 4,
     scale=np.array([0.5, -1.2, 0.8, 0.3], dtype="float32"))
case("additive_keyed_masked", keras.layers.AdditiveAttention(use_scale=False), 3, 4, 3, 5, key=True,
     masks=[[[True, False, True], [True, True, True]], [[True, True, False, True], [False, True, True, True]]])
