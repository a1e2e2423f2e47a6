"""What Keras 3 makes of text, for kiln's text tests (`tests/it/text.rs`).

    python examples/keras/text_reference.py

writes a small folder of text files per class (`tests/fixtures/data/texts/`) and
`tests/fixtures/keras/text.txt`: for each `keras.layers.TextVectorization` configuration below,
adapted on CORPUS, its vocabulary (`<case>.vocab`, one token per line after the key, tab
separated) and its output for PROBE (`<case>.out`, with `<case>.shape`); and for the folder, the
texts and labels `keras.utils.text_dataset_from_directory(.., shuffle=False)` reads
(`folder.labels`, `folder.text.<i>`); and `keras.layers.StringLookup` adapted on CATEGORIES
(`lookup.vocab`, `lookup.ids` of CATEGORIES and one unseen value).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")

CORPUS = [
    "The cat sat on the mat.",
    "The dog ate my homework!",
    "A cat, a dog; a bird?",
    "Don't stop-believing",
    "zeta alpha beta alpha beta zeta",
    "CAFÉ au lait, s'il vous plaît",
    "tabs\tand\nnewlines   and  spaces",
]
PROBE = ["the cat ate the unknown bird", "Hello", "", "café CAFÉ au au au lait"]

CASES = {
    "int": dict(max_tokens=12, output_sequence_length=6),
    "int_ragged": dict(),
    "int_short": dict(output_sequence_length=2),
    "multi_hot": dict(max_tokens=10, output_mode="multi_hot"),
    "count": dict(max_tokens=10, output_mode="count"),
    "tf_idf": dict(max_tokens=10, output_mode="tf_idf"),
    "tf_idf_all": dict(output_mode="tf_idf"),
    "lower": dict(standardize="lower", max_tokens=8, output_sequence_length=5),
    "strip": dict(standardize="strip_punctuation", max_tokens=8, output_sequence_length=5),
    "chars": dict(standardize=None, split="character", max_tokens=12, output_sequence_length=8),
}

# A column of categories with ties, for `read_table`'s `categories` (Keras' StringLookup order).
CATEGORIES = ["b", "a", "c", "a", "b", "d", "setosa", "versicolor", "setosa", "versicolor"]

FOLDER = {
    "neg": ["A dull, slow film.", "I would not watch it again"],
    "pos": ["A bright and funny film!", "Loved it.\nWould watch again.", "Wonderful"],
}


def line(out, name, v):
    out.write(name + " " + " ".join(repr(float(t)) for t in np.ravel(v)) + "\n")


def main():
    with open(os.path.join(ROOT, "keras", "text.txt"), "w", encoding="utf-8") as out:
        out.write(f"# keras {keras.__version__}\n")
        for name, kw in CASES.items():
            tv = keras.layers.TextVectorization(**kw)
            tv.adapt(CORPUS)
            vocab = [str(t) for t in tv.get_vocabulary()]
            out.write(f"{name}.vocab\t" + "\t".join(vocab) + "\n")
            y = np.array(tv(tf.constant(PROBE)), dtype=np.float32)
            line(out, f"{name}.shape", y.shape)
            line(out, f"{name}.out", y)
        lookup = keras.layers.StringLookup()
        lookup.adapt(CATEGORIES)
        out.write("lookup.vocab\t" + "\t".join(str(t) for t in lookup.get_vocabulary()) + "\n")
        line(out, "lookup.ids", np.array(lookup(tf.constant(CATEGORIES + ["zebra"]))))
        for cls, texts in FOLDER.items():
            for i, t in enumerate(texts):
                with open(os.path.join(ROOT, "data", "texts", cls, f"{i}.txt"), "w", encoding="utf-8") as f:
                    f.write(t)
        with open(os.path.join(ROOT, "data", "texts", "pos", "notes.md"), "w") as f:
            f.write("not a .txt file: skipped\n")
        ds = keras.utils.text_dataset_from_directory(
            os.path.join(ROOT, "data", "texts"), shuffle=False, batch_size=None
        )
        labels, texts = [], []
        for t, l in ds:
            texts.append(t.numpy().decode("utf-8"))
            labels.append(int(l))
        line(out, "folder.labels", labels)
        out.write("folder.class_names\t" + "\t".join(ds.class_names) + "\n")
        for i, t in enumerate(texts):
            out.write(f"folder.text.{i}\t" + t.replace("\n", "\\n") + "\n")


if __name__ == "__main__":
    main()
