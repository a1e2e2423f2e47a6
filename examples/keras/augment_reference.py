"""Keras 3's image preprocessing layers on fixed values, for kiln's augmentation tests
(`tests/it/augment.rs`).

    python examples/keras/augment_reference.py > tests/fixtures/keras/augment.txt

For each case `c`: lines `c.x` (the input, two samples), `c.out` (the output) and, for Resizing
and CenterCrop, `c.dy` / `c.dx` (the gradient of sum(out * dy)). `*_inference` cases call the
random layers with training=False. `*_fixed` cases apply a random layer's training transform with
a transformation given explicitly (per image: translations in pixels, contrast factor, brightness
delta, flip), so kiln's transform is compared with Keras' for the same draw.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(29)
L = keras.layers


def line(name, v):
    print(name, " ".join(repr(float(t)) for t in np.ravel(v)))


def image(shape, lo=0.0, hi=255.0):
    return tf.constant(rng.uniform(lo, hi, shape).astype("float32"))


print(f"# keras {keras.__version__}")

# Resizing and CenterCrop: values and gradients.
SIZED = [
    ("resizing_down", L.Resizing(3, 4), (2, 7, 9, 2)),
    ("resizing_up", L.Resizing(7, 5), (2, 3, 4, 3)),
    ("resizing_crop", L.Resizing(4, 4, crop_to_aspect_ratio=True), (2, 6, 9, 1)),
    ("center_crop", L.CenterCrop(3, 4), (2, 6, 7, 2)),
    ("center_crop_up", L.CenterCrop(8, 6), (2, 5, 7, 1)),
]
for name, layer, shape in SIZED:
    x = image(shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        dy = tf.constant(rng.normal(0, 1, out.shape).astype("float32"))
        total = tf.reduce_sum(out * dy)
    line(f"{name}.x", x)
    line(f"{name}.out", out)
    line(f"{name}.dy", dy)
    line(f"{name}.dx", tape.gradient(total, x))

# Every random layer at inference: the identity.
RANDOM = [
    ("random_flip", L.RandomFlip("horizontal_and_vertical")),
    ("random_translation", L.RandomTranslation(0.2, 0.3)),
    ("random_contrast", L.RandomContrast(0.5)),
    ("random_brightness", L.RandomBrightness(0.4)),
]
for name, layer in RANDOM:
    x = image((2, 4, 5, 3))
    line(f"{name}_inference.x", x)
    line(f"{name}_inference.out", layer(x, training=False))

# Training transforms for a given draw.
x = image((2, 5, 6, 2))
for mode in ["constant", "reflect", "nearest"]:
    layer = L.RandomTranslation(0.5, 0.5, fill_mode=mode, fill_value=7.0)
    t = np.array([[1.6, -0.7], [-2.25, 3.4]], "float32")  # (width, height) per image, as Keras stores them
    out = layer.transform_images(x, {"translations": tf.constant(t)}, training=True)
    line(f"translation_{mode}_fixed.x", x)
    line(f"translation_{mode}_fixed.t", t[:, ::-1])  # (rows, columns) as kiln's translate takes them
    line(f"translation_{mode}_fixed.out", out)

layer = L.RandomContrast(0.9)
f = np.array([0.4, 1.7], "float32").reshape(2, 1, 1, 1)
line("contrast_fixed.x", x)
line("contrast_fixed.f", f)
line("contrast_fixed.out", layer.transform_images(x, {"contrast_factor": tf.constant(f)}, training=True))

layer = L.RandomBrightness(0.5)
d = np.array([-60.0, 90.0], "float32").reshape(2, 1, 1, 1)
line("brightness_fixed.x", x)
line("brightness_fixed.d", d)
line("brightness_fixed.out", layer.transform_images(x, {"rgb_delta": tf.constant(d)}, training=True))

layer = L.RandomFlip("horizontal_and_vertical")
flips = np.array([True, False]).reshape(2, 1, 1, 1)
line("flip_fixed.x", x)
line("flip_fixed.out", layer.transform_images(x, {"flips": tf.constant(flips)}, training=True))

# RandomRotation and RandomZoom: at inference, and for a given draw (angles in degrees; zooms as
# 1 + the draw, rows then columns).
for name, layer in [("random_rotation", L.RandomRotation(0.2)), ("random_zoom", L.RandomZoom(0.3))]:
    x = image((2, 4, 5, 3))
    line(f"{name}_inference.x", x)
    line(f"{name}_inference.out", layer(x, training=False))

x = image((2, 5, 6, 2))
angles = tf.constant([23.5, -110.0])
zooms = np.array([[1.3, 0.8], [0.6, 1.45]], "float32")
for mode in ["constant", "reflect", "nearest"]:
    layer = L.RandomRotation(0.5, fill_mode=mode, fill_value=7.0)
    matrix = layer._compute_affine_matrix(
        center_x=0.5, center_y=0.5, angle=angles,
        translate_x=tf.zeros([2]), translate_y=tf.zeros([2]), scale=tf.ones([2]),
        shear_x=tf.zeros([2]), shear_y=tf.zeros([2]), height=5, width=6,
    )
    out = layer.transform_images(x, {"rotation_matrix": matrix, "angle": angles}, training=True)
    line(f"rotation_{mode}_fixed.x", x)
    line(f"rotation_{mode}_fixed.angles", angles)
    line(f"rotation_{mode}_fixed.out", out)
    layer = L.RandomZoom(0.5, 0.5, fill_mode=mode, fill_value=7.0)
    t = {"height_zoom": tf.constant(zooms[:, :1]), "width_zoom": tf.constant(zooms[:, 1:])}
    line(f"zoom_{mode}_fixed.zooms", zooms)
    line(f"zoom_{mode}_fixed.out", layer.transform_images(x, t, training=True))

# RandomCrop in training for a given offset (rows, columns), one per batch as Keras 3 draws it.
x = image((2, 5, 7, 2))
layer = L.RandomCrop(3, 4)
line("crop_fixed.x", x)
line("crop_fixed.at", [1, 2])
line("crop_fixed.out", layer.transform_images(x, (1, 2), training=True))
