"""Keras 3's elementwise math and reductions (`keras.ops`) on fixed values, for kiln's test.

    python examples/keras/math_reference.py > tests/fixtures/keras/math.txt

For each case `c`: lines `c.x` (two samples; strictly positive for the ops that need it), `c.out`,
`c.dy`, and the gradient of sum(out * dy): `c.dx`. The binary case `divide` also has `c.b` (after
`c.x`) and `c.db` (after `c.dx`). Reduction axes count the batch as axis 0, as Keras does.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(29)


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def normal(shape):
    return rng.normal(0, 1, shape).astype("float32")


def positive(shape):
    return (np.abs(rng.normal(0, 1, shape)) + 0.5).astype("float32")


ops = keras.ops
SHAPE = (2, 3, 4)

# (name, draw x, draw b or None, computation)
CASES = [
    ("exp", normal, None, lambda x: ops.exp(x)),
    ("log", positive, None, lambda x: ops.log(x)),
    ("sqrt", positive, None, lambda x: ops.sqrt(x)),
    ("square", normal, None, lambda x: ops.square(x)),
    ("abs", normal, None, lambda x: ops.abs(x)),
    ("negative", normal, None, lambda x: ops.negative(x)),
    ("clip", normal, None, lambda x: ops.clip(x, -0.5, 0.7)),
    ("power", positive, None, lambda x: ops.power(x, 1.5)),
    ("scale", normal, None, lambda x: x * 2.5),
    ("shift", normal, None, lambda x: x + 0.25),
    ("rsub", normal, None, lambda x: 1.5 - x),
    ("rdiv", positive, None, lambda x: 2.0 / x),
    ("div_scalar", normal, None, lambda x: x / 4.0),
    ("divide", normal, positive, lambda x, b: ops.divide(x, b)),
    ("sum1", normal, None, lambda x: ops.sum(x, axis=1)),
    ("sum2k", normal, None, lambda x: ops.sum(x, axis=2, keepdims=True)),
    ("mean_last_k", normal, None, lambda x: ops.mean(x, axis=-1, keepdims=True)),
    ("max1", normal, None, lambda x: ops.max(x, axis=1)),
    ("min_last", normal, None, lambda x: ops.min(x, axis=-1)),
    ("lse2k", normal, None, lambda x: ops.logsumexp(x, axis=2, keepdims=True)),
    ("lse1", normal, None, lambda x: ops.logsumexp(x, axis=1)),
    ("mean1_rank3", normal, None, lambda x: ops.mean(x, axis=2)),
    # Broadcasting (NumPy's rule; per sample [4, 1] * [1, 5], [3, 4] / [3, 1], [3, 4] + [4]).
    ("bcast_mul", normal, normal, lambda x, b: ops.multiply(x, b)),
    ("bcast_div", normal, positive, lambda x, b: ops.divide(x, b)),
    # kiln broadcasts within a sample: a [4] sample against [3, 4] ones is Keras' [n, 1, 4].
    ("bcast_add_rank", normal, normal, lambda x, b: ops.add(x, ops.expand_dims(b, 1))),
    # Composites a `call` body writes from the ops above.
    ("log_softmax", normal, None, lambda x: ops.log_softmax(x, axis=-1)),
    ("l2_normalize", normal, None, lambda x: ops.normalize(x, axis=-1, order=2)),
    # Axes of a sample: softmax on the middle axis, log_softmax, batched matmul with a
    # transpose, slice + concatenate.
    ("softmax_mid", normal, None, lambda x: ops.softmax(x, axis=1)),
    ("log_softmax_mid", normal, None, lambda x: ops.log_softmax(x, axis=1)),
    ("matmul_tb", normal, normal, lambda a, b: ops.matmul(a, ops.transpose(b, (0, 2, 1)))),
    ("matmul_ta", normal, normal, lambda a, b: ops.matmul(ops.transpose(a, (0, 2, 1)), b)),
    ("slice_concat", normal, None, lambda x: ops.concatenate([x[:, :, 0:2], x[:, :, 3:4]], axis=-1)),
    ("concat_mid", normal, normal, lambda a, b: ops.concatenate([a, b], axis=1)),
    # A tensor against a number.
    ("maximum_scalar", normal, None, lambda x: ops.maximum(x, 0.2)),
    ("minimum_scalar", normal, None, lambda x: ops.minimum(x, -0.1)),
    ("transpose_021", normal, None, lambda x: ops.transpose(x, (0, 2, 1))),
    # matmul whose leading axes broadcast: per sample [2, 3, 4] by [1, 4, 5], and by [4, 5]
    # (kiln aligns a sample's axes; Keras, given the batch, needs the axis made explicit).
    ("matmul_bcast", normal, normal, lambda a, b: ops.matmul(a, b)),
    ("matmul_bcast_rank", normal, normal, lambda a, b: ops.matmul(a, ops.expand_dims(b, 1))),
    # A transpose of samples of rank 4.
    ("transpose_rank4", normal, None, lambda x: ops.transpose(x, (0, 3, 1, 4, 2))),
]
SHAPES = {
    "mean1_rank3": (2, 3, 4, 2),
    "bcast_mul": (2, 4, 1),
    "matmul_ta": (2, 4, 3),
    "matmul_bcast": (2, 2, 3, 4),
    "matmul_bcast_rank": (2, 2, 3, 4),
    "transpose_rank4": (2, 2, 3, 4, 5),
}
B_SHAPES = {
    "bcast_mul": (2, 1, 5),
    "bcast_div": (2, 3, 1),
    "bcast_add_rank": (2, 4),
    "matmul_tb": (2, 5, 4),
    "matmul_ta": (2, 4, 5),
    "concat_mid": (2, 2, 4),
    "matmul_bcast": (2, 1, 4, 5),
    "matmul_bcast_rank": (2, 4, 5),
}

print(f"# keras {keras.__version__}")
for name, draw_x, draw_b, fn in CASES:
    shape = SHAPES.get(name, SHAPE)
    x = tf.constant(draw_x(shape))
    inputs = [x] if draw_b is None else [x, tf.constant(draw_b(B_SHAPES.get(name, shape)))]
    with tf.GradientTape() as tape:
        for t in inputs:
            tape.watch(t)
        out = fn(*inputs)
        dy = tf.constant(normal(out.shape))
        total = tf.reduce_sum(out * dy)
    grads = tape.gradient(total, inputs)
    line(f"{name}.x", x)
    if draw_b is not None:
        line(f"{name}.b", inputs[1])
    line(f"{name}.out", out)
    line(f"{name}.dy", dy)
    line(f"{name}.dx", grads[0])
    if draw_b is not None:
        line(f"{name}.db", grads[1])
