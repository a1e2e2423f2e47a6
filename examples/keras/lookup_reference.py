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

# Salted hashing (SipHash-2-4 keyed by the salt, TensorFlow's `to_hash_bucket_strong`), and
# lookups with a mask token and several out-of-vocabulary ids, appended after the cases above.
with open(OUT, "a") as out:
    for case, kw in [("hash_salt", dict(num_bins=7, salt=[133, 137])), ("hash_salt_one", dict(num_bins=5, salt=133)),
                     ("hash_salt_mask", dict(num_bins=6, mask_value="", salt=[1, 2]))]:
        line(out, f"{case}.out", np.asarray(keras.layers.Hashing(**kw)(texts)))
    line(out, "hash_salt_ints.out", np.asarray(keras.layers.Hashing(num_bins=11, salt=[7, 9])(ints)))
    masked_words = WORDS + ["", "", "b"]
    masked_probe = ["a", "", "unseen", "zz", "never", "d", "other"]
    masked_rows = [["a", "", "a"], ["unseen", "never", "d"], ["", "", "c"]]
    for case, kw, x in [
        ("mask_string_int", dict(mask_token="", num_oov_indices=2), masked_probe),
        ("mask_string_max", dict(mask_token="", num_oov_indices=3, max_tokens=7), masked_probe),
        ("mask_string_one_hot", dict(mask_token="", output_mode="one_hot"), masked_probe),
        ("mask_string_multi_hot", dict(mask_token="", num_oov_indices=2, output_mode="multi_hot"), masked_rows),
        ("mask_string_count", dict(num_oov_indices=3, output_mode="count"), masked_rows),
        ("oov_string_int", dict(num_oov_indices=0), ["a", "zz", "d"]),
    ]:
        layer = keras.layers.StringLookup(**kw)
        layer.adapt(np.array(masked_words))
        emit(out, case, layer, np.array(x))
    masked_ints = INTS + [0, 0]
    for case, kw, x in [
        ("mask_int_int", dict(mask_token=0, num_oov_indices=3), [3, 0, 5, -7, 12, 11, 0]),
        ("mask_int_count", dict(mask_token=0, num_oov_indices=2, output_mode="count"), [[3, 0, 5], [-7, -7, 12]]),
    ]:
        layer = keras.layers.IntegerLookup(**kw)
        layer.adapt(np.array(masked_ints))
        emit(out, case, layer, np.array(x))
    print("appended salted hashing and masked lookups")

# A lookup's `invert`: ids back to values (an unknown id to the out-of-vocabulary entry).
with open(OUT, "a") as out:
    layer = keras.layers.StringLookup(mask_token="", num_oov_indices=2, invert=True)
    layer.adapt(np.array(WORDS + ["", "", "b"]))
    words(out, "invert_string.vocab", layer.get_vocabulary())
    words(out, "invert_string.out", [t.decode() for t in np.asarray(layer(np.array([0, 1, 2, 3, 4, 9, 10, 42])))])
    layer = keras.layers.IntegerLookup(invert=True)
    layer.adapt(np.array(INTS))
    line(out, "invert_int.out", np.asarray(layer(np.array([0, 1, 2, 7, 8, 100]))))
    print("appended invert")
