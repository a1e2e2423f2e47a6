"""Keras 3's knowledge-distillation loss (keras.io, "Knowledge Distillation") on committed logits,
for the test of `examples/distillation.rs`.

    python examples/keras/distillation_reference.py > tests/fixtures/keras/distillation.txt

The `Distiller` below is keras.io's, `compute_loss` word for word, compiled as the example
compiles it: `SparseCategoricalCrossentropy(from_logits=True)` for the labels, `KLDivergence()`
(both distributions clipped to [1e-7, 1]) for the softened outputs, alpha = 0.1, temperature = 10.
Its teacher and student are identities here, so the logits written below are exactly those the
loss sees: `x` is the teacher's logits, `y_pred` the student's.

For each case `c`: lines `c.teacher` and `c.student` (rows of 10 logits), `c.labels` (one class
per row), `c.loss` (the distillation loss, `alpha * CE + (1 - alpha) * KL * T^2`), its two parts
`c.student_loss` and `c.distillation_loss` (KL * T^2), and `c.grad` (d loss / d student logits,
from `tf.GradientTape`). `typical` has logits of a few units; in `confident_teacher` the teacher's
softened probabilities fall below 1e-7 in places (so Keras' clip decides the value), and in
`confident_student` the student's do (so the clip also cuts the gradient).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

rng = np.random.default_rng(26)
CLASSES = 10
ALPHA = 0.1
TEMPERATURE = 10


class Distiller(keras.Model):
    """keras.io's distiller: the student trained on a mix of the labels and the teacher."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)

        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)

        loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        # The two parts, for the fixture (not in keras.io's code).
        self.parts = (student_loss, distillation_loss)
        return loss

    def call(self, x):
        return self.student(x)


def identity():
    return keras.Sequential([keras.Input((CLASSES,)), keras.layers.Identity()])


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def confident(scale):
    """Logits with one class far above the rest: softmax(z / 10) of the others below 1e-7."""

    def draw(rows):
        z = rng.normal(0.0, 2.0, (rows, CLASSES))
        z[np.arange(rows), rng.integers(0, CLASSES, rows)] += scale
        return z

    return draw


def normal(sd):
    return lambda rows: rng.normal(0.0, sd, (rows, CLASSES))


# (case, rows, draw the teacher's logits, draw the student's)
CASES = [
    ("typical", 6, normal(4.0), normal(2.0)),
    ("confident_teacher", 4, confident(200.0), normal(3.0)),
    ("confident_student", 4, normal(4.0), confident(200.0)),
]

distiller = Distiller(student=identity(), teacher=identity())
distiller.compile(
    optimizer=keras.optimizers.Adam(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    distillation_loss_fn=keras.losses.KLDivergence(),
    alpha=ALPHA,
    temperature=TEMPERATURE,
)

print(f"# keras {keras.__version__}; alpha {ALPHA}, temperature {TEMPERATURE}")
for name, rows, draw_teacher, draw_student in CASES:
    teacher = tf.constant(draw_teacher(rows).astype("float32"))
    student = tf.constant(draw_student(rows).astype("float32"))
    labels = tf.constant(rng.integers(0, CLASSES, rows).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(student)
        loss = distiller.compute_loss(x=teacher, y=labels, y_pred=student)
    grad = tape.gradient(loss, student)
    student_loss, distillation_loss = distiller.parts
    line(f"{name}.teacher", teacher)
    line(f"{name}.student", student)
    line(f"{name}.labels", labels)
    line(f"{name}.loss", loss)
    line(f"{name}.student_loss", student_loss)
    line(f"{name}.distillation_loss", distillation_loss)
    line(f"{name}.grad", grad)
