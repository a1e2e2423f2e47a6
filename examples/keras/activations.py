"""Keras 3's activations and their derivatives at fixed points, for kiln's parity test.

    python examples/keras/activations.py > tests/fixtures/keras/activations.csv

Each row: kiln's activation name, x, f(x), f'(x) (by tf.GradientTape), as Keras computes them in
float32. `leaky_relu_layer` is the LeakyReLU layer with its default negative_slope (0.3).
Needs TensorFlow / Keras 3; kiln's tests read the CSV and never need Python.
"""

import keras
import numpy as np
import tensorflow as tf

XS = np.array([-3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0], dtype=np.float32)

ACTIVATIONS = {
    "linear": keras.activations.linear,
    "relu": keras.activations.relu,
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),
    "elu": keras.activations.elu,
    "selu": keras.activations.selu,
    "leaky_relu": keras.activations.leaky_relu,
    "softplus": keras.activations.softplus,
    "swish": keras.activations.swish,
    "leaky_relu_layer": keras.layers.LeakyReLU(),
}


def main():
    print(f"# keras {keras.__version__}, tensorflow {tf.__version__}")
    print("name,x,f,df")
    for name, fn in ACTIVATIONS.items():
        x = tf.Variable(XS)
        with tf.GradientTape() as tape:
            y = fn(x)
        dy = tape.gradient(y, x)
        for xi, yi, di in zip(XS, np.asarray(y), np.asarray(dy)):
            print(f"{name},{float(xi)!r},{float(yi)!r},{float(di)!r}")


if __name__ == "__main__":
    main()
