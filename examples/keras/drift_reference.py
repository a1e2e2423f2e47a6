"""Keras 3 references for kiln's drift tests (issue #28), in float32 with op determinism.

    python examples/keras/drift_reference.py > tests/fixtures/keras/drift.txt

MLP + Adam, 100 steps: an MLP (8 > Dense 32 relu > Dense 3 softmax) trained with
`train_on_batch` on 100 fixed batches of 32 rows (kiln builds the same rows from the formula in
`data`), from the initial weights written here (`mlp.init.<kiln name>`). The run is made twice:
`keras`, and `permuted`, with the rows of every batch in another order, whose distance from the
first is summation-order noise alone: the yardstick. Lines `mlp.<run>.loss` (the 100 losses
train_on_batch returned, each before its step) and `mlp.<run>.<step>.<kiln name>` (the weights
after steps 1, 10 and 100).

CNN + BatchNormalization: (8, 8, 2) > Conv2D 8 3x3 same relu > BatchNormalization > MaxPooling
2 > Conv2D 8 3x3 relu > GlobalAveragePooling > Dense 3 softmax, on one batch of 256 samples
after one Adam step from the weights written here (`cnn.w.<kiln name>`): the gradient of the
loss in training mode computed by TensorFlow in float32 (`cnn.f32.<name>`) and in float64
(`cnn.f64.<name>`), the exact reference kiln's gradients are measured against.
"""

import os

os.environ["TF_DETERMINISTIC_OPS"] = "1"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.experimental.enable_op_determinism()

L = keras.layers
STEPS, BATCH, FEATURES = 100, 32, 8


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def data(rows, width):
    """Rows of `width` values k/8 (exact in float32) whose pattern depends on the label."""
    i = np.arange(rows)[:, None]
    j = np.arange(width)[None, :]
    label = (np.arange(rows) * 11) % 3
    x = (((i * 7 + j * 13 + label[:, None] * 5) % 17) - 8) / 8.0
    return x.astype("float32"), label.astype("int32")


def names(model):
    out = []
    for layer in model.layers:
        for w in layer.weights:
            out.append((f"{layer.name}.{w.name}", w))
    return out


def mlp():
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), L.Dense(32, activation="relu"), L.Dense(3, activation="softmax")]
    )
    init = [w.numpy() for _, w in names(model)]
    for (n, _), v in zip(names(model), init):
        line(f"mlp.init.{n}", v)
    x, y = data(STEPS * BATCH, FEATURES)
    rng = np.random.default_rng(3)
    perms = [rng.permutation(BATCH) for _ in range(STEPS)]
    for run in ["keras", "permuted"]:
        for (_, w), v in zip(names(model), init):
            w.assign(v)
        model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
        losses = []
        for s in range(STEPS):
            xb, yb = x[s * BATCH : (s + 1) * BATCH], y[s * BATCH : (s + 1) * BATCH]
            if run == "permuted":
                xb, yb = xb[perms[s]], yb[perms[s]]
            losses.append(model.train_on_batch(xb, yb))
            if s + 1 in (1, 10, 100):
                for n, w in names(model):
                    line(f"mlp.{run}.{s + 1}.{n}", w.numpy())
        line(f"mlp.{run}.loss", losses)


def cnn_model(dtype):
    keras.backend.clear_session()  # layer names from `conv2d` again, as kiln names them
    return keras.Sequential(
        [
            keras.Input((8, 8, 2), dtype=dtype),
            L.Conv2D(8, 3, padding="same", activation="relu", dtype=dtype),
            L.BatchNormalization(dtype=dtype),
            L.MaxPooling2D(2, dtype=dtype),
            L.Conv2D(8, 3, activation="relu", dtype=dtype),
            L.GlobalAveragePooling2D(dtype=dtype),
            L.Dense(3, activation="softmax", dtype=dtype),
        ]
    )


def cnn():
    keras.utils.set_random_seed(11)
    model = cnn_model("float32")
    x, y = data(256 * 128, 1)
    x = x.reshape(256, 8, 8, 2)
    y = y[::128][:256]
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    weights = [w.numpy() for _, w in names(model)]
    for (n, _), v in zip(names(model), weights):
        line(f"cnn.w.{n}", v)
    line("cnn.labels", y)
    for dtype in ["float32", "float64"]:
        m = cnn_model(dtype)
        for (_, w), v in zip(names(m), weights):
            w.assign(v.astype(dtype))
        loss = keras.losses.SparseCategoricalCrossentropy()
        trainable = [w for _, w in names(m) if w.trainable]
        with tf.GradientTape() as tape:
            p = m(x.astype(dtype), training=True)
            value = loss(y, p)
        grads = tape.gradient(value, trainable)
        kiln = [n for n, w in names(m) if w.trainable]
        for n, g in zip(kiln, grads):
            line(f"cnn.{'f32' if dtype == 'float32' else 'f64'}.{n}", g.numpy())


print("# keras", keras.__version__, "tensorflow", tf.__version__)
mlp()
cnn()
