"""Keras 3 models with `Embedding(mask_zero=True)` on padded id sequences, and one with
`Masking` on padded float steps, for kiln's masking tests: the mask carried to LSTM,
Bidirectional(GRU), GRU, MultiHeadAttention (through Add and LayerNormalization) and
GlobalAveragePooling1D.

    python examples/keras/masking_reference.py > tests/fixtures/keras/masking.txt

For each model `m`: `m.ids` and `m.labels` (the batch), each weight as set (`m.<kiln name>`),
the predictions `m.pred`, the loss `m.loss` (sparse categorical cross-entropy) and its gradient
with respect to each weight (`m.d.<kiln name>`).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(5)
L = keras.layers
IDS = np.array([[3, 1, 5, 0, 0, 0], [0, 0, 2, 6, 1, 4], [4, 0, 3, 0, 2, 2]], dtype="int32")
LABELS = np.array([1, 0, 1], dtype="int32")


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def kiln_names(layer):
    """kiln's weight names: `<layer>.<weight>` (a Bidirectional's directions and an attention's
    projections prefixed as kiln names them)."""
    if isinstance(layer, L.Bidirectional):
        inner = [w.name for w in layer.forward_layer.trainable_weights]
        return [f"{layer.name}.{d}_{n}" for d in ("forward", "backward") for n in inner]
    if isinstance(layer, L.MultiHeadAttention):
        return [f"{layer.name}.{'_'.join(w.path.split('/')[-2:])}" for w in layer.trainable_weights]
    return [f"{layer.name}.{w.name}" for w in layer.trainable_weights]


def build(name):
    if name == "floats":
        x = keras.Input((6, 3))
        h = L.Masking(name="masking")(x)
        h = L.GRU(3, return_sequences=True, name="gru")(h)
        h = L.GlobalAveragePooling1D(name="global_average_pooling1d")(h)
        return keras.Model(x, L.Dense(2, activation="softmax", name="dense")(h))
    ids = keras.Input((6,), dtype="int32")
    h = L.Embedding(7, 4, mask_zero=True, name="embedding")(ids)
    if name == "lstm":
        h = L.LSTM(3, return_sequences=True, name="lstm")(h)
        h = L.GlobalAveragePooling1D(name="global_average_pooling1d")(h)
    elif name == "bigru":
        h = L.Bidirectional(L.GRU(3), name="bidirectional")(h)
    else:
        a = L.MultiHeadAttention(num_heads=2, key_dim=2, name="multi_head_attention")(h, h)
        h = L.LayerNormalization(name="layer_normalization")(L.Add(name="add")([h, a]))
        h = L.GlobalAveragePooling1D(name="global_average_pooling1d")(h)
    out = L.Dense(2, activation="softmax", name="dense")(h)
    return keras.Model(ids, out)


print(f"# keras {keras.__version__}")
# Float steps, the padded ones all zeros, for Masking.
FLOATS = rng.normal(0, 1, (3, 6, 3)).astype("float32")
FLOATS[0, 3:] = 0.0
FLOATS[1, :2] = 0.0
FLOATS[2, 1] = 0.0

for name in ["lstm", "bigru", "attention", "floats"]:
    model = build(name)
    inputs = FLOATS if name == "floats" else IDS
    line(f"{name}.ids", inputs)
    line(f"{name}.labels", LABELS)
    weights, names = [], []
    for layer in model.layers:
        for n, w in zip(kiln_names(layer), layer.trainable_weights):
            v = rng.normal(0, 0.5, w.shape).astype("float32")
            w.assign(v)
            weights.append(w)
            names.append(n)
            line(f"{name}.{n}", v)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        pred = model(inputs, training=True)
        loss = loss_fn(LABELS, pred)
    grads = tape.gradient(loss, weights)
    line(f"{name}.pred", pred)
    line(f"{name}.loss", [float(loss)])
    for n, g in zip(names, grads):
        line(f"{name}.d.{n}", tf.convert_to_tensor(g))
