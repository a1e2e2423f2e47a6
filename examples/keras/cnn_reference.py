"""Keras 3 reference values for kiln's image layers: for each small model, the initial weights,
the predictions, the loss and every gradient on one batch, and the weights (moving statistics
included) and predictions after one Adam step.

    python examples/keras/cnn_reference.py tests/fixtures/keras_cnn

Writes one safetensors file per model, with kiln's names (`conv2d.kernel`, `grad.conv2d.kernel`,
`after.conv2d.kernel`, `x`, `y`, `pred`, `loss`, `pred_after`). Needs TensorFlow / Keras 3;
kiln's tests read the files and never need Python.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from convert import kiln_weights, write_safetensors

L = keras.layers


def models():
    yield "conv_valid", (6, 6, 2), [L.Conv2D(3, 3, activation="tanh"), L.Flatten(), L.Dense(3, activation="softmax")]
    yield "conv_same_strided", (7, 7, 2), [
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(3, activation="softmax"),
    ]
    yield "pools", (8, 8, 2), [
        L.Conv2D(3, 3, padding="same"),
        L.MaxPooling2D(2),
        L.AveragePooling2D(3, strides=1, padding="same"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]
    # No bias before BatchNormalization: its gradient is zero up to rounding, which Adam would
    # turn into a full step in a direction rounding picks.
    yield "batch_norm", (5, 5, 2), [
        L.Conv2D(4, 3, use_bias=False),
        L.BatchNormalization(),
        L.GlobalAveragePooling2D(),
        L.Dense(3, activation="softmax"),
    ]
    yield "depthwise", (6, 6, 3), [
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="tanh"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]
    yield "separable_strided", (7, 7, 2), [
        L.SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]
    yield "transpose", (3, 3, 2), [
        L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="tanh"),
        L.Conv2DTranspose(2, 2, strides=1, padding="valid"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]
    yield "grouped", (5, 5, 4), [
        L.Conv2D(6, 3, groups=2, padding="same", activation="tanh"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]
    yield "conv1d_dilated", (9, 2), [L.Conv1D(4, 3, dilation_rate=2, activation="tanh"), L.Flatten(), L.Dense(3, activation="softmax")]


def main(directory):
    for name, shape, layers in models():
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input(shape=shape)] + layers)
        rng = np.random.default_rng(5)
        x = rng.uniform(-1, 1, size=(4,) + shape).astype(np.float32)
        y = np.array([0, 2, 1, 2])
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        model.compile(loss=loss_fn, optimizer=keras.optimizers.Adam())
        out = {f"{k}": v for k, v in kiln_weights(model).items()}
        out["x"], out["y"] = x, y.astype(np.float32)
        out["pred"] = np.asarray(model(x, training=False))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        for layer in model.layers:
            for var in layer.trainable_weights:
                g = grads[[id(w) for w in model.trainable_weights].index(id(var))]
                out[f"grad.{layer.name}.{var.name}"] = np.asarray(g)
        out["loss"] = np.array([float(loss)], dtype=np.float32)
        model.train_on_batch(x, y)
        out.update({f"after.{k}": v for k, v in kiln_weights(model).items()})
        out["pred_after"] = np.asarray(model(x, training=False))
        write_safetensors(f"{directory}/{name}.safetensors", out, {"source": "keras " + keras.__version__})
        print(f"wrote {directory}/{name}.safetensors")


if __name__ == "__main__":
    main(sys.argv[1])
