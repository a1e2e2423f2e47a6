"""Keras 3's MultiHeadAttention on fixed values, for kiln's attention tests.

    python examples/keras/attention_reference.py > tests/fixtures/keras/attention.txt

For each case `c`: the inputs (`c.q`, `c.v`, and `c.k` when given), `c.dy`, the weights as set
(kiln's names: `c.query_kernel`, `c.query_bias`, ..., `c.attention_output_bias`), the output
`c.out`, the gradients of sum(out * dy) (`c.dq`, `c.dv`, `c.dk`, `c.d<weight>`), and the weights
after one Adam(0.01) step on those gradients (`c.adam.<weight>`). The `masked_*` cases add Keras'
`attention_mask` (`c.mask`, 1.0 where a query step may attend to a key step).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(11)
NAMES = ["query", "key", "value", "attention_output"]


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


CASES = [
    # name, layer kwargs, query shape, value shape, key shape (None: the value), causal
    ("cross", dict(num_heads=2, key_dim=3, value_dim=2, output_shape=5), (2, 3, 4), (2, 5, 6), (2, 5, 2), False),
    ("self_causal", dict(num_heads=2, key_dim=3), (2, 4, 6), None, None, True),
    ("no_bias", dict(num_heads=3, key_dim=2, use_bias=False), (2, 4, 5), (2, 3, 5), None, False),
]

def case(name, kwargs, qs, vs, ks, causal, masked=False):
    """One case's lines; `masked` draws an attention_mask ([B, Tq, Tv], given to kiln as the
    layer's last input, `c.mask`) in which one query row of the first sample sees nothing."""
    layer = keras.layers.MultiHeadAttention(**kwargs)
    q = rng.normal(0, 1, qs).astype("float32")
    v = q if vs is None else rng.normal(0, 1, vs).astype("float32")
    k = None if ks is None else rng.normal(0, 1, ks).astype("float32")
    mask = None
    if masked:
        mask = (rng.uniform(0, 1, (qs[0], qs[1], v.shape[1])) < 0.6).astype("float32")
        mask[0, 1, :] = 0.0
    layer.build(q.shape, v.shape, None if k is None else k.shape)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    qt, vt = tf.constant(q), tf.constant(v)
    kt = None if k is None else tf.constant(k)
    keras_mask = None if mask is None else tf.constant(mask.astype(bool))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(qt)
        tape.watch(vt)
        if kt is not None:
            tape.watch(kt)
        out = layer(qt, vt, key=kt, attention_mask=keras_mask, use_causal_mask=causal)
        dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
        total = tf.reduce_sum(out * dy)
    grads = tape.gradient(total, layer.trainable_weights)
    line(f"{name}.q", q)
    if vs is not None:
        line(f"{name}.v", v)
    if k is not None:
        line(f"{name}.k", k)
    if mask is not None:
        line(f"{name}.mask", mask)
    line(f"{name}.dy", dy)
    names = []
    for w in layer.trainable_weights:
        part, kind = w.path.split("/")[-2:]
        names.append(f"{part}_{kind}")
    for n, w in zip(names, weights):
        line(f"{name}.{n}", w)
    line(f"{name}.out", out)
    # With the value given as the query (self attention) these are the two paths' shares.
    line(f"{name}.dq", tape.gradient(total, qt))
    line(f"{name}.dv", tape.gradient(total, vt))
    if kt is not None:
        line(f"{name}.dk", tape.gradient(total, kt))
    for n, g in zip(names, grads):
        line(f"{name}.d{n}", g)
    opt = keras.optimizers.Adam(0.01)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    for n, w in zip(names, layer.trainable_weights):
        line(f"{name}.adam.{n}", w.numpy())


print(f"# keras {keras.__version__}")
for c in CASES:
    case(*c)

# Keras' `attention_mask`, alone and meeting the causal mask.
MASK_CASES = [
    ("masked_cross", dict(num_heads=2, key_dim=3, value_dim=2, output_shape=5), (2, 3, 4), (2, 5, 6), (2, 5, 2), False),
    ("masked_self_causal", dict(num_heads=2, key_dim=3), (2, 4, 6), None, None, True),
]
for c in MASK_CASES:
    case(*c, masked=True)
