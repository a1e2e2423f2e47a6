"""Convert a Keras model's weights into kiln's safetensors layout.

kiln names each parameter `<layer name>.<weight name>` (`dense_1.kernel`), with Keras' own
layouts (a Dense kernel is [inputs, units]), stored as little-endian F32. Keras 3 names layers
the way kiln does (`dense`, `dense_1`, ...), so a model defined the same way in both maps one to
one.

    python examples/keras/convert.py model.keras out.safetensors

With `--fixture DIR` it instead builds the small model of kiln's Keras interop test, and writes
its weights and a batch of inputs with Keras' predictions for them into DIR. With
`--sequence-fixture DIR` it does the same for two models on samples of rank 2 (Dense applied to
the last axis, then Flatten; and one class per step), with Keras' loss on per-step labels; with
`--text-fixture DIR` for an Embedding > LSTM model and a transformer block on token ids.
Needs TensorFlow / Keras 3; kiln itself never needs Python.
"""

import json
import struct
import sys

import numpy as np


def write_safetensors(path, tensors, metadata=None):
    """Write {name: float32 array} as a safetensors file (no dependency beyond numpy)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for raw in chunks:
            f.write(raw)


def weight_names(layer):
    """kiln's names for a layer's weights, in `layer.weights` order: the weight's own name
    (`kernel`), a Bidirectional's directions prefixed (`forward_kernel`), an attention's
    projections prefixed (`query_kernel`, `attention_output_bias`)."""
    import keras

    if isinstance(layer, keras.layers.Bidirectional):
        inner = [v.name for v in layer.forward_layer.weights]
        return [f"{d}_{n}" for d in ("forward", "backward") for n in inner]
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return ["_".join(v.path.split("/")[-2:]) for v in layer.weights]
    return [v.name for v in layer.weights]


def kiln_weights(model):
    """The model's weights under kiln's parameter names."""
    out = {}
    for layer in model.layers:
        for name, var in zip(weight_names(layer), layer.weights):
            out[f"{layer.name}.{name}"] = np.asarray(var.numpy(), dtype=np.float32)
    return out


def fixture(directory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(16, activation="gelu"),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x, y, epochs=3, verbose=0)
    meta = {"source": "keras " + keras.__version__, "model": "Dense(16, gelu) > Dense(8, tanh) > Dense(3, softmax)"}
    write_safetensors(f"{directory}/weights.safetensors", kiln_weights(model), meta)
    pred = model.predict(x, verbose=0)
    write_safetensors(f"{directory}/predictions.safetensors", {"x": x, "y": pred}, meta)
    print(f"wrote {directory}/weights.safetensors and predictions.safetensors ({len(x)} rows)")


def sequence_fixture(directory):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(64, 4, 16)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    y_steps = rng.integers(0, 3, size=(64, 4))
    flat = keras.Sequential(
        [
            keras.Input(shape=(4, 16)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    flat.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    flat.fit(x, y, epochs=3, verbose=0)
    # A new session, so the second model's layers are named `dense` and `dense_1` as in kiln.
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    steps = keras.Sequential(
        [
            keras.Input(shape=(4, 16)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    steps.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    steps.fit(x, y_steps, epochs=3, verbose=0)
    loss = steps.evaluate(x, y_steps, verbose=0, batch_size=64)
    meta = {"source": "keras " + keras.__version__, "models": "flat: Dense(8, relu) > Flatten > Dense(3, softmax); steps: Dense(8, tanh) > Dense(3, softmax), on (4, 16)"}
    write_safetensors(f"{directory}/flat.safetensors", kiln_weights(flat), meta)
    write_safetensors(f"{directory}/steps.safetensors", kiln_weights(steps), meta)
    write_safetensors(
        f"{directory}/predictions.safetensors",
        {
            "x": x,
            "y_steps": y_steps.astype(np.float32),
            "flat": flat.predict(x, verbose=0),
            "steps": steps.predict(x, verbose=0),
            "steps_loss": np.array([loss], dtype=np.float32),
        },
        meta,
    )
    print(f"wrote {directory}/flat.safetensors, steps.safetensors and predictions.safetensors")


def text_fixture(directory):
    """An LSTM text model and a transformer block, trained briefly on random token ids."""
    import keras

    L = keras.layers
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 40, size=(48, 12)).astype(np.int32)
    ids[:8, 9:] = 0
    y = rng.integers(0, 2, size=48)
    keras.utils.set_random_seed(2)
    lstm = keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(40, 8), L.LSTM(16), L.Dense(1, activation="sigmoid")])
    lstm.compile(loss="binary_crossentropy", optimizer="adam")
    lstm.fit(ids, y.astype(np.float32), epochs=2, verbose=0)
    keras.backend.clear_session()
    keras.utils.set_random_seed(3)
    inp = keras.Input((12,), dtype="int32")
    h = L.Embedding(40, 16)(inp)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8)(h, h)
    n1 = L.LayerNormalization()(L.Add()([h, a]))
    f = L.Dense(16)(L.Dense(32, activation="relu")(n1))
    n2 = L.LayerNormalization()(L.Add()([n1, f]))
    out = L.Dense(2, activation="softmax")(L.GlobalAveragePooling1D()(n2))
    block = keras.Model(inp, out)
    block.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    block.fit(ids, y, epochs=2, verbose=0)
    meta = {"source": "keras " + keras.__version__, "models": "lstm: Embedding(40, 8) > LSTM(16) > Dense(1, sigmoid); block: a transformer block on Embedding(40, 16)"}
    write_safetensors(f"{directory}/text_lstm.safetensors", kiln_weights(lstm), meta)
    write_safetensors(f"{directory}/text_block.safetensors", kiln_weights(block), meta)
    write_safetensors(
        f"{directory}/text_predictions.safetensors",
        {"ids": ids.astype(np.float32), "lstm": lstm.predict(ids, verbose=0), "block": block.predict(ids, verbose=0)},
        meta,
    )
    print(f"wrote {directory}/text_lstm.safetensors, text_block.safetensors and text_predictions.safetensors")


def main(argv):
    if len(argv) == 3 and argv[1] == "--fixture":
        return fixture(argv[2])
    if len(argv) == 3 and argv[1] == "--sequence-fixture":
        return sequence_fixture(argv[2])
    if len(argv) == 3 and argv[1] == "--text-fixture":
        return text_fixture(argv[2])
    if len(argv) != 3:
        print(__doc__)
        return 2
    import keras

    model = keras.models.load_model(argv[1])
    write_safetensors(argv[2], kiln_weights(model), {"source": "keras " + keras.__version__})
    print(f"wrote {argv[2]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
