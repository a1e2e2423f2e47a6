"""Keras 3's Embedding, SimpleRNN, LSTM and GRU on fixed values, for kiln's recurrent tests.

    python examples/keras/recurrent_reference.py > tests/fixtures/keras/recurrent.txt

For each case `c`: lines `c.x` and `c.dy` (input and output gradient), the weights as set
(`c.kernel`, `c.recurrent_kernel`, `c.bias`; `c.embeddings`), the output `c.out`, the gradients of
sum(out * dy) (`c.dx` and `c.d<weight>`), and each weight after one Adam(0.01) step on those
gradients (`c.adam.<weight>`). Shapes: x is [2, 5, 3] (ids [2, 5] for the Embedding), 4 units.
The `*_state*` cases use `return_state`: `c.out` and `c.dy` hold each sample's output followed by
its final states, as kiln lays them out. The `*_init*` cases call the layer with `initial_state`:
`c.h0` (and `c.c0`, an LSTM's cell) are the states given, `c.dh0` (`c.dc0`) their gradients.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(7)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


CASES = [
    ("simple", lambda: keras.layers.SimpleRNN(4)),
    ("simple_seq_back", lambda: keras.layers.SimpleRNN(4, return_sequences=True, go_backwards=True)),
    ("lstm", lambda: keras.layers.LSTM(4)),
    ("lstm_seq", lambda: keras.layers.LSTM(4, return_sequences=True)),
    ("lstm_seq_back", lambda: keras.layers.LSTM(4, return_sequences=True, go_backwards=True)),
    ("gru", lambda: keras.layers.GRU(4)),
    ("gru_v1", lambda: keras.layers.GRU(4, reset_after=False)),
    ("gru_seq_back", lambda: keras.layers.GRU(4, return_sequences=True, go_backwards=True)),
    ("gru_v1_seq", lambda: keras.layers.GRU(4, reset_after=False, return_sequences=True)),
    ("bidi_lstm_seq", lambda: keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))),
    ("bidi_gru_sum", lambda: keras.layers.Bidirectional(keras.layers.GRU(4), merge_mode="sum")),
    ("bidi_rnn_mul_seq", lambda: keras.layers.Bidirectional(
        keras.layers.SimpleRNN(4, return_sequences=True), merge_mode="mul")),
]


def weight_names(layer):
    """kiln's names: the cell's (`kernel`, ...), prefixed by the direction in a Bidirectional."""
    if isinstance(layer, keras.layers.Bidirectional):
        inner = [w.name for w in layer.forward_layer.trainable_weights]
        return [f"{d}_{n}" for d in ("forward", "backward") for n in inner]
    return [w.name for w in layer.trainable_weights]

def packed(parts):
    """Several outputs per sample one after the other, as kiln lays them out."""
    return np.concatenate([np.reshape(p, (p.shape[0], -1)) for p in parts], axis=1)


def case(name, make, states=()):
    """One layer's lines; with `return_state`, its outputs [out, h(, c)] and `dy` are packed per
    sample (each sample's output, then its final states), the total sum(part · dy_part). With
    `states` (their names: `h0`, `c0`; `fh0`, .. for a Bidirectional), the layer is called with
    those `initial_state`s: lines `c.<state>` and their gradients `c.d<state>`."""
    layer = make()
    x = rng.normal(0, 1, (2, 5, 3)).astype("float32")
    layer.build(x.shape)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    s0 = [rng.normal(0, 1, (2, 4)).astype("float32") for _ in states]
    xt, st = tf.constant(x), [tf.constant(s) for s in s0]
    with tf.GradientTape() as tape:
        tape.watch(xt)
        for s in st:
            tape.watch(s)
        outs = layer(xt, initial_state=st) if st else layer(xt)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        dys = [tf.constant(rng.normal(0, 1, o.shape).astype("float32")) for o in outs]
        total = tf.add_n([tf.reduce_sum(o * d) for o, d in zip(outs, dys)])
    grads = tape.gradient(total, [xt] + st + layer.trainable_weights)
    names = weight_names(layer)
    state_names = list(states)
    line(f"{name}.x", x)
    for n, s in zip(state_names, s0):
        line(f"{name}.{n}", s)
    line(f"{name}.dy", packed([d.numpy() for d in dys]))
    for n, v in zip(names, weights):
        line(f"{name}.{n}", v)
    line(f"{name}.out", packed([o.numpy() for o in outs]))
    line(f"{name}.dx", grads[0])
    for n, g in zip(state_names, grads[1:1 + len(states)]):
        line(f"{name}.d{n}", g)
    for n, g in zip(names, grads[1 + len(states):]):
        line(f"{name}.d{n}", g)
    opt = keras.optimizers.Adam(0.01)
    opt.apply_gradients(zip(grads[1 + len(states):], layer.trainable_weights))
    for n, w in zip(names, layer.trainable_weights):
        line(f"{name}.adam.{n}", w.numpy())


print(f"# keras {keras.__version__}")
for name, make in CASES:
    case(name, make)

# Embedding: ids [2, 5] in 0..7 (a repeated id accumulates its gradient), table [7, 4].
layer = keras.layers.Embedding(7, 4)
ids = np.array([[0, 3, 3, 6, 1], [2, 3, 5, 0, 0]], dtype="int32")
layer.build(ids.shape)
table = rng.normal(0, 0.5, (7, 4)).astype("float32")
layer.set_weights([table])
with tf.GradientTape() as tape:
    out = layer(tf.constant(ids))
    dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
    total = tf.reduce_sum(out * dy)
(g,) = tape.gradient(total, layer.trainable_weights)
g = tf.convert_to_tensor(g)
line("embedding.x", ids)
line("embedding.dy", dy)
line("embedding.embeddings", table)
line("embedding.out", out)
line("embedding.dembeddings", g)
opt = keras.optimizers.Adam(0.01)
opt.apply_gradients([(g, layer.embeddings)])
line("embedding.adam.embeddings", layer.embeddings.numpy())

# return_state: the outputs [out, h(, c)] packed per sample as kiln lays them out.
STATE_CASES = [
    ("simple_state_seq", lambda: keras.layers.SimpleRNN(4, return_sequences=True, return_state=True)),
    ("lstm_state", lambda: keras.layers.LSTM(4, return_state=True)),
    ("lstm_state_seq_back", lambda: keras.layers.LSTM(
        4, return_sequences=True, return_state=True, go_backwards=True)),
    ("gru_state_seq", lambda: keras.layers.GRU(4, return_sequences=True, return_state=True)),
    ("gru_v1_state", lambda: keras.layers.GRU(4, reset_after=False, return_state=True)),
]
for name, make in STATE_CASES:
    case(name, make)

# initial_state: an encoder's states handed to a decoder (the `*_init*` cases).
INITIAL_CASES = [
    ("simple_init_seq", lambda: keras.layers.SimpleRNN(4, return_sequences=True), ["h0"]),
    ("lstm_init", lambda: keras.layers.LSTM(4), ["h0", "c0"]),
    ("lstm_init_seq_back_state", lambda: keras.layers.LSTM(
        4, return_sequences=True, return_state=True, go_backwards=True), ["h0", "c0"]),
    ("gru_init_seq", lambda: keras.layers.GRU(4, return_sequences=True), ["h0"]),
    ("gru_v1_init", lambda: keras.layers.GRU(4, reset_after=False), ["h0"]),
]
for name, make, states in INITIAL_CASES:
    case(name, make, states)

# Bidirectional with return_state: [merged output, forward states, backward states] per sample.
BIDI_STATE_CASES = [
    ("bidi_lstm_state_seq", lambda: keras.layers.Bidirectional(
        keras.layers.LSTM(4, return_sequences=True, return_state=True))),
    ("bidi_gru_state_ave", lambda: keras.layers.Bidirectional(
        keras.layers.GRU(4, return_state=True), merge_mode="ave")),
]
for name, make in BIDI_STATE_CASES:
    case(name, make)

# Bidirectional with initial_state: the forward direction's states, then the backward one's.
BIDI_INITIAL_CASES = [
    ("bidi_lstm_init_seq", lambda: keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
     ["fh0", "fc0", "bh0", "bc0"]),
    ("bidi_gru_init_sum", lambda: keras.layers.Bidirectional(keras.layers.GRU(4), merge_mode="sum"), ["fh0", "bh0"]),
]
for name, make, states in BIDI_INITIAL_CASES:
    case(name, make, states)
