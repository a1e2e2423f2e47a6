"""Keras 3's optimizers stepped by hand on one weight vector, for kiln's optimizer tests.

    python examples/keras/optimizers_reference.py > tests/fixtures/keras/optimizers.txt

Each line: a case name as kiln's test builds it, then the weights after each of the five steps
(three values per step), starting from w = [0.5, -1.0, 2.0]. Lines starting `matrix` do the same
for a [2, 3] weight (Adafactor factors its second moments), six values per step.
"""

import keras
import numpy as np

O = keras.optimizers
GRADS = [
    [0.1, -0.2, 0.3],
    [0.05, 0.4, -0.1],
    [-0.3, 0.1, 0.2],
    [0.2, -0.05, -0.4],
    [0.0, 0.3, 0.1],
]
CASES = {
    "sgd": O.SGD(),
    "sgd_momentum": O.SGD(learning_rate=0.1, momentum=0.9),
    "sgd_nesterov": O.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": O.Adam(),
    "adam_amsgrad": O.Adam(learning_rate=0.01, amsgrad=True),
    "adamw": O.AdamW(),
    "rmsprop": O.RMSprop(),
    "rmsprop_momentum_centered": O.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "adagrad": O.Adagrad(),
    "nadam": O.Nadam(),
    "adamax": O.Adamax(),
    "lion": O.Lion(),
    "lion_tuned": O.Lion(learning_rate=0.01, beta_1=0.5, beta_2=0.9),
    "adafactor": O.Adafactor(),
    "adafactor_lr": O.Adafactor(learning_rate=0.5, clip_threshold=0.5),
}

print(f"# keras {keras.__version__}")
for name, opt in CASES.items():
    w = keras.Variable(np.array([0.5, -1.0, 2.0], dtype="float32"))
    values = []
    for g in GRADS:
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, dtype="float32")), w)])
        values.extend(float(v) for v in keras.ops.convert_to_numpy(w))
    print(name, " ".join(repr(v) for v in values))

MATRIX_GRADS = [np.array(g, dtype="float32").reshape(2, 3) for g in (
    [0.1, -0.2, 0.3, 0.05, 0.4, -0.1],
    [-0.3, 0.1, 0.2, 0.2, -0.05, -0.4],
    [0.0, 0.3, 0.1, -0.1, 0.2, 0.05],
    [0.25, -0.15, 0.05, 0.3, -0.2, 0.1],
    [-0.05, 0.1, -0.3, 0.15, 0.0, 0.2],
)]
for name, opt in {"adafactor": O.Adafactor(), "adafactor_lr": O.Adafactor(learning_rate=0.5, clip_threshold=0.5)}.items():
    w = keras.Variable(np.array([[0.5, -1.0, 2.0], [0.3, 0.7, -0.4]], dtype="float32"))
    values = []
    for g in MATRIX_GRADS:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
        values.extend(float(v) for v in keras.ops.convert_to_numpy(w).ravel())
    print("matrix", name, " ".join(repr(v) for v in values))
