"""PyTorch figure for kiln's W5b workload, the counterpart of `bench_deep_cnn.py` (run it with a
Python that has torch, beside `cargo run --release --example bench -- W5b`): three Conv2D +
BatchNormalization blocks on 32x32x3 (channels first, as PyTorch stores images), batch 64, Adam,
5,000 uniform samples, one warm-up epoch, then the median of three timed epochs. As in
`../shared/bench`: slices of pre-made tensors, CrossEntropyLoss on logits. BatchNorm2d's momentum
0.01 and eps 1e-3 are Keras' momentum 0.99 and epsilon 1e-3."""

import statistics
import time

import numpy as np
import torch
from torch import nn

torch.manual_seed(0)
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.random((5_000, 3, 32, 32), dtype=np.float32))
y = torch.from_numpy(rng.integers(0, 10, 5_000))


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]


model = nn.Sequential(
    *block(3, 32),
    nn.MaxPool2d(2),
    *block(32, 64),
    nn.MaxPool2d(2),
    *block(64, 64),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(64, 10),
)
opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()


def epoch():
    for i in range(0, len(x), 64):
        opt.zero_grad()
        loss_fn(model(x[i : i + 64]), y[i : i + 64]).backward()
        opt.step()


epoch()
times = []
for _ in range(3):
    t = time.perf_counter()
    epoch()
    times.append(time.perf_counter() - t)
med = statistics.median(times)
spread = (max(times) - min(times)) / med * 100
print(f"W5b deep CNN train (bs64, torch {torch.__version__}) {len(x) / med:12.1f} samples/s   (spread {spread:.0f}%; runs {' '.join(f'{t:.3g}' for t in times)} s)")
