"""Keras 3's learning-rate schedules at fixed steps, for kiln's schedule tests.

    python examples/keras/schedules_reference.py > tests/fixtures/keras/schedules.txt

Each line: a schedule as kiln's test builds it, then its learning rate at steps 0, 1, 2, ... 40.
"""

import keras

S = keras.optimizers.schedules
CASES = {
    "exponential": S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
    "exponential_staircase": S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
    "piecewise": S.PiecewiseConstantDecay([5, 15, 30], [0.1, 0.05, 0.01, 0.001]),
    "polynomial": S.PolynomialDecay(0.1, decay_steps=20, end_learning_rate=0.001, power=2.0),
    "polynomial_cycle": S.PolynomialDecay(0.1, decay_steps=15, end_learning_rate=0.01, power=1.0, cycle=True),
    "inverse_time": S.InverseTimeDecay(0.1, decay_steps=5, decay_rate=0.5),
    "inverse_time_staircase": S.InverseTimeDecay(0.1, decay_steps=5, decay_rate=0.5, staircase=True),
    "cosine": S.CosineDecay(0.1, decay_steps=30, alpha=0.1),
    "cosine_warmup": S.CosineDecay(0.0, decay_steps=25, alpha=0.0, warmup_target=0.1, warmup_steps=10),
    "cosine_restarts": S.CosineDecayRestarts(0.1, first_decay_steps=6, t_mul=2.0, m_mul=0.8, alpha=0.05),
    "cosine_restarts_t1": S.CosineDecayRestarts(0.1, first_decay_steps=7, t_mul=1.0, m_mul=0.5),
}

print(f"# keras {keras.__version__}")
for name, schedule in CASES.items():
    print(name, " ".join(repr(float(schedule(step))) for step in range(41)))
