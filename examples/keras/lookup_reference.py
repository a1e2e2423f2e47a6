"""What Keras 3 makes of categories and numbers, for kiln's lookup tests (`tests/it/lookup.rs`).

    python examples/keras/lookup_reference.py

writes `tests/fixtures/keras/lookup.txt`: for `keras.layers.StringLookup` and `IntegerLookup`
adapted on the values below, the vocabulary (`<case>.vocab`, tab separated after the key) and the
output for PROBE (`<case>.out`, `<case>.shape`); `CategoryEncoding` outputs; and
`Discretization` bin boundaries from `adapt` (`<case>.bins`) and bucket ids.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "keras", "lookup.txt")

WORDS = ["b", "a", "c", "a", "b", "d", "setosa", "versicolor", "setosa", "versicolor", "a", "zz"]
WORD_PROBE = ["a", "zz", "unseen", "setosa", "d"]
WORD_ROWS = [["a", "b", "a"], ["unseen", "d", "d"], ["zz", "zz", "c"]]
INTS = [7, 3, 3, 9, 7, 100, -4, 3, 0, 9, 12, 12]
INT_PROBE = [3, 12, 5, -4, 0]
INT_ROWS = [[3, 3, 9], [5, 100, 100], [0, -4, 7]]


def line(out, name, v):
    out.write(name + " " + " ".join(repr(float(t)) for t in np.ravel(v)) + "\n")


def words(out, name, vocab):
    out.write(name + "\t" + "\t".join(str(t) for t in vocab) + "\n")


def emit(out, case, layer, x):
    y = np.asarray(layer(x))
    words(out, case + ".vocab", layer.get_vocabulary())
    line(out, case + ".shape", y.shape)
    line(out, case + ".out", y)


with open(OUT, "w") as out:
    out.write(f"# keras {keras.__version__}\n")
    for case, kw, x in [
        ("string_int", {}, WORD_PROBE),
        ("string_max", dict(max_tokens=4), WORD_PROBE),
        ("string_one_hot", dict(output_mode="one_hot"), WORD_PROBE),
        ("string_multi_hot", dict(output_mode="multi_hot"), WORD_ROWS),
        ("string_count", dict(output_mode="count", max_tokens=5), WORD_ROWS),
    ]:
        layer = keras.layers.StringLookup(**kw)
        layer.adapt(WORDS)
        emit(out, case, layer, np.array(x))
    for case, kw, x in [
        ("int_int", {}, INT_PROBE),
        ("int_max", dict(max_tokens=4), INT_PROBE),
        ("int_one_hot", dict(output_mode="one_hot"), INT_PROBE),
        ("int_multi_hot", dict(output_mode="multi_hot"), INT_ROWS),
        ("int_count", dict(output_mode="count"), INT_ROWS),
    ]:
        layer = keras.layers.IntegerLookup(**kw)
        layer.adapt(np.array(INTS))
        emit(out, case, layer, np.array(x))
    ids = np.array([[0, 3, 3], [1, 1, 2], [4, 0, 4]])
    for mode in ["one_hot", "multi_hot", "count"]:
        x = ids[:, 0] if mode == "one_hot" else ids
        y = np.asarray(keras.layers.CategoryEncoding(num_tokens=5, output_mode=mode)(x))
        line(out, f"encoding_{mode}.shape", y.shape)
        line(out, f"encoding_{mode}.out", y)
    rng = np.random.default_rng(0)
    data = rng.normal(size=1000).astype("float32") * 3.0 + 1.0
    line(out, "discretize.data", data)
    probe = np.array([-10.0, -1.5, 0.0, 0.999, 1.0, 2.5, 100.0], dtype="float32")
    line(out, "discretize.probe", probe)
    for case, kw in [("q4", dict(num_bins=4)), ("q3", dict(num_bins=3)), ("q7", dict(num_bins=7, epsilon=0.05)),
                     ("q10", dict(num_bins=10, epsilon=0.001))]:
        layer = keras.layers.Discretization(**kw)
        layer.adapt(data)
        line(out, f"discretize_{case}.bins", layer.bin_boundaries)
        line(out, f"discretize_{case}.out", np.asarray(layer(probe)))
    small = np.array([5.0, 1.0, 3.0, 3.0, 2.0], dtype="float32")
    layer = keras.layers.Discretization(num_bins=3)
    layer.adapt(small)
    line(out, "discretize_small.bins", layer.bin_boundaries)
    fixed = keras.layers.Discretization(bin_boundaries=[0.0, 1.0, 2.5])
    line(out, "discretize_fixed.out", np.asarray(fixed(probe)))
    print("wrote", OUT)

# Hashing (FarmHash64 fingerprints modulo the bins), appended after the cases above.
with open(OUT, "a") as out:
    texts = np.array(["", "a", "hello world", "setosa", "a much longer string of more than sixty-four bytes, to reach the long path"])
    for case, kw in [("hash_7", dict(num_bins=7)), ("hash_mask", dict(num_bins=5, mask_value=""))]:
        line(out, f"{case}.out", np.asarray(keras.layers.Hashing(**kw)(texts)))
    ints = np.array([0, 7, -3, 123456789])
    line(out, "hash_ints.out", np.asarray(keras.layers.Hashing(num_bins=11)(ints)))
    print("appended hashing")
