"""Small NumPy and image files for kiln's reader tests (`tests/it/data_folder.rs`), and what
NumPy and Keras 3 read from them.

    python examples/keras/data_reference.py

writes `tests/fixtures/data/` (.npy / .npz files and a folder of images per class: PNG, JPEG and
BMP) and `tests/fixtures/keras/image_folder.txt`: for each case, `c.images` (as
`keras.utils.image_dataset_from_directory(.., shuffle=False, batch_size=None)` gives them),
`c.labels` and `c.shape`, and `npy.<name>` the values NumPy reads.
"""

import os
import struct

import keras
import numpy as np
import tensorflow as tf

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")
DATA = os.path.join(ROOT, "data")
rng = np.random.default_rng(29)


def line(out, name, v):
    out.write(name + " " + " ".join(repr(float(t)) for t in np.ravel(v)) + "\n")


def bmp(path, img):
    """A 24-bit BMP, rows bottom-up, padded to 4 bytes (TensorFlow decodes it)."""
    h, w, _ = img.shape
    row = (3 * w + 3) // 4 * 4
    data = b"".join(
        img[y, :, ::-1].tobytes() + b"\0" * (row - 3 * w) for y in range(h - 1, -1, -1)
    )
    header = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + data)


def images():
    pix = lambda h, w, c: rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    folders = {"cats": [], "dogs": [], "zebras": []}
    for name in folders:
        os.makedirs(os.path.join(DATA, "images", name), exist_ok=True)
    tf.io.write_file(os.path.join(DATA, "images", "cats", "b.png"), tf.io.encode_png(pix(5, 7, 3)))
    tf.io.write_file(os.path.join(DATA, "images", "cats", "a.png"), tf.io.encode_png(pix(6, 4, 1)))
    smooth = np.clip(np.add.outer(np.arange(8) * 20, np.arange(8) * 9)[..., None] + [0, 30, 60], 0, 255)
    tf.io.write_file(
        os.path.join(DATA, "images", "dogs", "c.jpg"), tf.io.encode_jpeg(smooth.astype(np.uint8), quality=95)
    )
    bmp(os.path.join(DATA, "images", "zebras", "d.bmp"), pix(3, 5, 3))
    # TensorFlow decodes no BMP as grayscale: the grayscale case reads PNG files of one and three channels.
    for name, img in [("ones", pix(6, 4, 1)), ("twos", pix(5, 7, 3))]:
        os.makedirs(os.path.join(DATA, "gray", name), exist_ok=True)
        tf.io.write_file(os.path.join(DATA, "gray", name, "x.png"), tf.io.encode_png(img))
    with open(os.path.join(DATA, "images", "zebras", "notes.txt"), "w") as f:
        f.write("not an image: skipped, as Keras skips it\n")


def arrays(out):
    cases = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        "f64": np.array([[1.5, -2.25], [1e-3, 7.0]], dtype=np.float64),
        "i64": np.array([3, -1, 7], dtype=np.int64),
        "u8_fortran": np.asfortranarray(np.arange(12, dtype=np.uint8).reshape(3, 4)),
        "i16_big": np.arange(4, dtype=">i2"),
    }
    for name, a in cases.items():
        np.save(os.path.join(DATA, f"{name}.npy"), a)
        line(out, f"npy.{name}", a.astype(np.float64))
        line(out, f"npy.{name}.shape", a.shape)
    np.savez_compressed(
        os.path.join(DATA, "mnist_like.npz"),
        x_train=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        y_train=np.array([1, 0, 2], dtype=np.int64),
    )
    z = np.load(os.path.join(DATA, "mnist_like.npz"))
    for k in z.files:
        line(out, f"npz.{k}", z[k].astype(np.float64))
    np.save(os.path.join(DATA, "strings.npy"), np.array(["a", "b"]))


os.makedirs(DATA, exist_ok=True)
images()
with open(os.path.join(ROOT, "keras", "image_folder.txt"), "w") as out:
    out.write(f"# keras {keras.__version__}\n")
    arrays(out)
    for mode, folder in [("rgb", "images"), ("grayscale", "gray")]:
        ds = keras.utils.image_dataset_from_directory(
            os.path.join(DATA, folder), image_size=(4, 6), color_mode=mode, shuffle=False, batch_size=None
        )
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
        line(out, f"{mode}.images", np.stack(xs))
        line(out, f"{mode}.labels", np.array(ys))
        out.write(f"{mode}.class_names {' '.join(ds.class_names)}\n")
