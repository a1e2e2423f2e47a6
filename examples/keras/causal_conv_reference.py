"""Keras 3's Conv1D with padding="causal" on fixed values, for kiln's convolution tests.

    python examples/keras/causal_conv_reference.py > tests/fixtures/keras/causal_conv.txt

For each case `c`: `c.x` ([2, 7, 3]), `c.kernel`, `c.bias`, `c.out`.
"""

import keras
import numpy as np

rng = np.random.default_rng(13)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


print(f"# keras {keras.__version__}")
for name, kwargs in [("k3_d2", dict(kernel_size=3, dilation_rate=2)), ("k2_s2", dict(kernel_size=2, strides=2))]:
    layer = keras.layers.Conv1D(4, padding="causal", **kwargs)
    x = rng.normal(0, 1, (2, 7, 3)).astype("float32")
    layer.build(x.shape)
    kernel = rng.normal(0, 0.5, layer.kernel.shape).astype("float32")
    bias = rng.normal(0, 0.5, layer.bias.shape).astype("float32")
    layer.set_weights([kernel, bias])
    line(f"{name}.x", x)
    line(f"{name}.kernel", kernel)
    line(f"{name}.bias", bias)
    line(f"{name}.out", layer(x))
