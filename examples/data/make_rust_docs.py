"""Builds `rust_docs.tsv.gz`, the text-classification corpus of `examples/text_from_folder.rs`:
paragraphs of three books of the Rust documentation, labelled by book.

    python examples/data/make_rust_docs.py ~/.rustup/toolchains/<toolchain>/share/doc/rust/html

reads the HTML pages the Rust toolchain installs (`rustup component add rust-docs`) of
The Rust Programming Language (`book`), The Cargo Book (`cargo`) and The Rustonomicon
(`nomicon`), takes the text of each `<p>` element of at least 12 words, and keeps 400 per book
(a fixed-seed sample), one `book<TAB>paragraph` line each. The books are by the Rust Project
Developers, licensed MIT OR Apache-2.0.
"""

import glob
import gzip
import html.parser
import os
import random
import re
import sys

BOOKS = ["book", "cargo", "nomicon"]
PER_BOOK = 400


class Paragraphs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.depth, self.text, self.found = 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth, self.text = 1, []
        elif self.depth and tag in ("pre",):
            self.depth = 0

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.found.append(" ".join("".join(self.text).split()))
            self.depth = 0

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)


def paragraphs(folder):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.html"), recursive=True)):
        if os.path.basename(path) in ("print.html", "index.html", "404.html", "toc.html"):
            continue
        p = Paragraphs()
        with open(path, encoding="utf-8") as f:
            p.feed(f.read())
        out += [t for t in p.found if len(t.split()) >= 12 and "\t" not in t]
    return sorted(set(out))


def main(root):
    rng = random.Random(7)
    lines = []
    for book in BOOKS:
        found = paragraphs(os.path.join(root, book))
        chosen = rng.sample(found, PER_BOOK)
        print(book, len(found), "paragraphs, kept", len(chosen))
        lines += [book + "\t" + re.sub(r"\s+", " ", t) for t in chosen]
    out = os.path.join(os.path.dirname(__file__), "rust_docs.tsv.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1])
