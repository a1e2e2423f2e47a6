"""TensorFlow / Keras 3 figure for kiln's W5b workload, to run beside `cargo run --release
--example bench -- W5b`: three Conv2D + BatchNormalization blocks on 32x32x3, batch 64, Adam,
5,000 uniform samples, one warm-up epoch, then the median of three timed epochs."""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np

L = keras.layers
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((5_000, 32, 32, 3), dtype=np.float32)
y = rng.integers(0, 10, 5_000)
model = keras.Sequential(
    [
        keras.Input((32, 32, 3)),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.GlobalAveragePooling2D(),
        L.Dense(10, activation="softmax"),
    ]
)
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
fit = lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0)
fit()
times = []
for _ in range(3):
    t = time.perf_counter()
    fit()
    times.append(time.perf_counter() - t)
med = statistics.median(times)
spread = (max(times) - min(times)) / med * 100
print(f"W5b deep CNN train (bs64) {len(x) / med:12.1f} samples/s   (spread {spread:.0f}%; runs {' '.join(f'{t:.3g}' for t in times)} s)")
