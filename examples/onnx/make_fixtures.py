"""Writes the ONNX fixtures of `tests/it/onnx.rs` and `tests/ui/onnx/` into tests/fixtures/onnx/.

    pip install torch --index-url https://download.pytorch.org/whl/cpu   # or torch from PyPI
    pip install onnx onnxruntime
    python examples/onnx/make_fixtures.py

Each model is exported with PyTorch's TorchScript exporter (opset 17, a symbolic batch axis)
and run by onnxruntime on a few input rows; `<name>.txt` holds the rows and onnxruntime's
outputs (`input` or `output`, the shape, then the values on one line), which the Rust tests
read: they never need Python. The hand-made files (an unsupported operator, a Reshape to the
wrong size) are built with `onnx.helper`. Seeds are fixed: running it again writes the same
files, up to the exporter's version.
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "onnx")


class Mlp(nn.Module):
    """Gemm layers with the activations ONNX has operators for."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3, self.l4 = nn.Linear(6, 16), nn.Linear(16, 12), nn.Linear(12, 8), nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        h = torch.tanh(self.l2(h))
        h = nn.functional.leaky_relu(self.l3(h), 0.1)
        h = torch.sigmoid(h) * 2.0 - nn.functional.elu(h)
        return torch.softmax(self.l4(h), dim=1)


class Mnist1dCnn(nn.Module):
    """The MNIST-1D CNN: three Conv1d of 25 channels (kernel 5/3/3, stride 2, padding 1), then a
    linear head; flattened with `view(batch, -1)` as in the paper's code (Shape, Gather, Concat
    and Reshape in the file)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.linear = nn.Linear(125, 10)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))
        return self.linear(h.view(h.shape[0], -1))


class Cnn2d(nn.Module):
    """2-D convolutions with batch normalisation, pooling, a skip connection, a concatenation
    along the channels and a global average."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 6, 3, stride=2, dilation=1, padding=(1, 0))
        self.bn2 = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = nn.functional.max_pool2d(h, 2)
        r = h + torch.relu(self.conv2(h))
        h = torch.cat([r, h / 2.0], dim=1)
        h = nn.functional.avg_pool2d(torch.relu(self.conv3(h)), (1, 2))
        h = nn.functional.adaptive_avg_pool2d(h, 1)
        h = torch.flatten(h, 1)
        return self.head(self.bn2(h))


class Blocks(nn.Module):
    """Zero padding (Pad), a grouped Conv1d, a Transpose to steps-first, LayerNorm, a Linear on
    every step (MatMul then Add on a 3-D value), and a Flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, groups=2)
        self.norm = nn.LayerNorm(8)
        self.step = nn.Linear(8, 6)
        self.head = nn.Linear(6 * 17, 3)

    def forward(self, x):
        h = torch.relu(self.conv(nn.functional.pad(x, (2, 1))))
        h = self.norm(h.transpose(1, 2))
        h = torch.tanh(self.step(h))
        return self.head(torch.flatten(h, 1))


class LstmClassifier(nn.Module):
    """An LSTM over 7 steps (batch first: Transposes around ONNX's LSTM), its last step
    (`out[:, -1, :]`, a Gather) to a linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


class GruLastState(nn.Module):
    """A GRU (`linear_before_reset`, Keras' `reset_after`) whose final state `h_n[-1]` feeds a
    linear head."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(5, 6, batch_first=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


class TextClassifier(nn.Module):
    """Token ids (int64) through an Embedding (a Gather from its table), averaged over the
    steps, to a linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, ids):
        return self.head(self.embed(ids).mean(dim=1))


class Decoder(nn.Module):
    """Transposed convolutions: one with padding and output_padding (a crop after kiln's), one
    without; channels-first out."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(4, 2, 2, stride=2)

    def forward(self, x):
        return torch.sigmoid(self.up2(torch.relu(self.up1(x))))


class EncoderBlock(nn.Module):
    """A small transformer encoder block written out (two heads of 4 over 5 steps of 8): Linear
    projections, the heads split by reshape and transpose, scores `q @ k^T / 2` (MatMul of two
    computed values), softmax, the mix `att @ v`, the heads merged, residuals with LayerNorm, a
    feed-forward network; the mean over the steps to a linear head."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(8, 8) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(8), nn.LayerNorm(8)
        self.ff1, self.ff2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        b = x.shape[0]
        split = lambda t: t.reshape(b, 5, 2, 4).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
        h = (att @ v).transpose(1, 2).reshape(b, 5, 8)
        x = self.norm1(x + self.o(h))
        x = self.norm2(x + self.ff2(torch.relu(self.ff1(x))))
        return self.head(x.mean(dim=1))


class BiLstm(nn.Module):
    """A bidirectional LSTM (batch first): its sequence, the directions side by side by
    Transpose and Reshape around the batch axis, averaged over the steps to a linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 4, batch_first=True, bidirectional=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out.mean(dim=1))


class Upsampling(nn.Module):
    """Nearest up-sampling of an image (by 2 × 3) and of a sequence (by 2), channels first:
    PyTorch writes Resize (asymmetric coordinates, floor)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.up = nn.Upsample(scale_factor=(2, 3), mode="nearest")
        self.conv1d = nn.Conv1d(3, 2, 3)
        self.up1d = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Linear(2 * 8, 2)

    def forward(self, x):
        h = self.up(torch.relu(self.conv(x)))  # [3, 2 * 2, 2 * 3] from [2, 4, 4]
        h = h.mean(dim=2)  # [3, 6]
        h = self.up1d(torch.tanh(self.conv1d(h)))  # [2, 2 * 4]
        return self.head(torch.flatten(h, 1))


class ConvTranspose1d(nn.Module):
    """1-D transposed convolutions: strided with pads and output padding, then plain."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.ConvTranspose1d(4, 2, 2, bias=False)
        self.head = nn.Linear(2 * 13, 2)

    def forward(self, x):
        h = self.out(torch.relu(self.up(x)))  # [4, 12] from [3, 6], then [2, 13]
        return self.head(torch.flatten(h, 1))


def chunk_task(n, seed):
    """Signals of 40 steps, uniform in [-1, 1), whose class is the 4-step chunk with the largest
    sum (tests/it/onnx.rs draws its held-out signals the same way, with its own generator)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 40, generator=g) * 2 - 1
    return x, x.reshape(n, 10, 4).sum(-1).argmax(-1)


def trained_mnist1d_cnn():
    """The MNIST-1D CNN trained on the chunk task, so that int8's accuracy change means something
    (held-out accuracy 0.956 in PyTorch)."""
    torch.manual_seed(0)
    model = Mnist1dCnn()
    x, y = chunk_task(4000, 0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(60):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
            opt.step()
    xt, yt = chunk_task(1000, 1)
    with torch.no_grad():
        print("MNIST-1D CNN on the chunk task, held-out accuracy:", (model(xt).argmax(-1) == yt).float().mean().item())
    return model


class GeluAndClips(nn.Module):
    """nn.GELU as opset 17 exports it (Div, Erf, Add, Mul, Mul), ReLU6 and clamp (Clip), pow
    (Pow) and 1 / x (Reciprocal)."""

    def __init__(self):
        super().__init__()
        self.l = nn.Linear(6, 6)
        self.gelu = nn.GELU()

    def forward(self, x):
        h = self.gelu(self.l(x))
        h = nn.functional.relu6(h * 3) + h.pow(2) + torch.clamp(h, -0.5, 0.5) + h.pow(3)
        return 1.0 / (h.abs() + 1.0)


class MhaBlock(nn.Module):
    """nn.MultiheadAttention (two heads of 4; PyTorch folds the batch into the heads while it
    splits them), a residual, LayerNorm, the mean over the steps to a linear head."""

    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        a, _ = self.mha(x, x, x, need_weights=False)
        return self.head(self.norm(x + a).mean(dim=1))


class TorchEncoderLayer(nn.Module):
    """PyTorch's own nn.TransformerEncoderLayer (two heads, GELU feed-forward, no dropout at
    inference), the mean over the steps to a linear head."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.layer(x).mean(dim=1))


def export(name, model, shape, rows=4, integer=False, batch_axis=True):
    torch.manual_seed(1)
    model.eval()
    # Batch statistics that are not the identity, so the files test them.
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    path = os.path.join(OUT, f"{name}.onnx")
    if not batch_axis:
        rows = 1
    x = torch.randn(rows, *shape) if not integer else torch.randint(0, 20, (rows, *shape))
    torch.onnx.export(
        model,
        (x,),
        path,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if batch_axis else None,
    )
    reference(name, x.numpy())


def reference(name, x):
    """Runs the file with onnxruntime on `x` and writes `<name>.txt`."""
    path = os.path.join(OUT, f"{name}.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = x if x.dtype == np.int64 else x.astype(np.float32)
    (y,) = session.run(None, {session.get_inputs()[0].name: feed})
    with open(os.path.join(OUT, f"{name}.txt"), "w") as f:
        for tag, a in (("input", x), ("output", y)):
            f.write(f"{tag} {' '.join(str(d) for d in a.shape)}\n")
            f.write(" ".join(repr(float(v)) for v in a.astype(np.float32).ravel()) + "\n")


def keras_models():
    """Keras models through tf2onnx (`pip install tf2onnx`; Keras 3 on TensorFlow): an MLP, and
    a channels-last Conv1D network, which tf2onnx exports between Transposes to ONNX's
    channels-first Conv and back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import tf2onnx

    def save(name, model, shape):
        # Keras starts biases at zero: random ones test that they are read.
        for layer in model.layers:
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(np.random.default_rng(3).uniform(-0.5, 0.5, layer.bias.shape).astype(np.float32))
        spec = (tf.TensorSpec((None, *shape), tf.float32, name="x"),)
        fn = tf.function(lambda x: model(x))
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=17, output_path=os.path.join(OUT, f"{name}.onnx"))
        x = np.random.default_rng(4).standard_normal((4, *shape)).astype(np.float32)
        reference(name, x)

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    save("keras_mlp", mlp, (5,))
    keras.utils.set_random_seed(0)
    cnn = keras.Sequential(
        [
            keras.Input((20, 3)),
            keras.layers.Conv1D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Conv1D(6, 3, strides=2, activation="elu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    save("keras_cnn1d", cnn, (20, 3))


def hand_made():
    """Small files for the compile-fail tests."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])

    def save(name, nodes, inits, out=y):
        graph = helper.make_graph(nodes, name, [x], [out], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln fixtures")
        onnx.save(model, os.path.join(OUT, f"{name}.onnx"))

    # An operator kiln does not import.
    save(
        "unsupported_op",
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"), helper.make_node("Hardmax", ["h"], ["y"], name="pick")],
        [w],
    )
    # A Reshape of 8 values to [3, 3].
    shape = numpy_helper.from_array(np.array([-1, 3, 3], dtype=np.int64), "shape")
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 3])
    save(
        "bad_reshape",
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"), helper.make_node("Reshape", ["h", "shape"], ["y"], name="to_grid")],
        [w, shape],
        out,
    )
    # A sequence of any length: kiln needs its static shape.
    seq = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "steps", 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "steps", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "symbolic_axis", [seq], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln fixtures")
    onnx.save(model, os.path.join(OUT, "symbolic_axis.onnx"))
    with open(os.path.join(OUT, "not_onnx.onnx"), "w") as f:
        f.write("This is a text file, not an ONNX model.\n")


def operators():
    """Operators no exporter above writes, in graphs built with `onnx.helper`: Gelu (both forms,
    opset 20), the element-wise ops, scalars on either side, a constant tensor broadcast,
    reductions, LogSoftmax and Softmax along a middle axis; and opset 11's Softmax (over every
    axis from `axis` on), Unsqueeze and Squeeze with attribute axes."""
    rng = np.random.default_rng(5)
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    init = lambda name, a: numpy_helper.from_array(a, name)
    n = helper.make_node

    def save(name, opset, nodes, inits, shape, out_shape):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", *out_shape])
        graph = helper.make_graph(nodes, name, [x], [y], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln fixtures")
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(OUT, f"{name}.onnx"))
        reference(name, rng.standard_normal((3, *shape)).astype(np.float32))

    save(
        "ops_opset20",
        20,
        [
            n("MatMul", ["x", "w"], ["mm"]),
            n("Add", ["mm", "b"], ["h"]),
            n("Gelu", ["h"], ["g"]),
            n("Gelu", ["h"], ["t"], approximate="tanh"),
            n("Add", ["g", "t"], ["s"]),
            n("Abs", ["s"], ["a"]),
            n("Neg", ["a"], ["na"]),
            n("Exp", ["na"], ["e"]),
            n("Add", ["e", "one"], ["e1"]),
            n("Log", ["e1"], ["l"]),
            n("Add", ["a", "half"], ["ah"]),
            n("Sqrt", ["ah"], ["q"]),
            n("Mul", ["q", "scale"], ["m"]),
            n("Abs", ["m"], ["am"]),
            n("Add", ["am", "one"], ["am1"]),
            n("Div", ["two", "am1"], ["d"]),
            n("Sub", ["one", "d"], ["u"]),
            n("Softplus", ["u"], ["sp"]),
            n("Concat", ["l", "sp"], ["c"], axis=2),
            n("ReduceSum", ["c", "last"], ["r"], keepdims=1),
            n("ReduceMax", ["c", "steps"], ["mx"], keepdims=0),
            n("LogSoftmax", ["mx"], ["ls"], axis=-1),
            n("Softmax", ["c"], ["sm"], axis=1),
            n("Mul", ["sm", "r"], ["p"]),
            n("Flatten", ["p"], ["pf"]),
            n("Concat", ["pf", "ls"], ["y"], axis=1),
        ],
        [
            init("w", f32(rng.standard_normal((6, 6)) * 0.5)),
            init("b", f32(rng.standard_normal(6) * 0.1)),
            init("one", f32(1.0)),
            init("half", f32(0.5)),
            init("two", f32(2.0)),
            init("scale", f32(rng.uniform(0.5, 1.5, (1, 6)))),
            init("last", np.array([2], dtype=np.int64)),
            init("steps", np.array([1], dtype=np.int64)),
        ],
        (4, 6),
        (60,),
    )
    save(
        "ops_opset11",
        11,
        [
            n("Softmax", ["x"], ["s"], axis=1),
            n("Unsqueeze", ["s"], ["u"], axes=[1]),
            n("Squeeze", ["u"], ["q"], axes=[1]),
            n("ReduceMean", ["q"], ["r"], axes=[2], keepdims=1),
            n("Sub", ["q", "r"], ["d"]),
            n("Flatten", ["d"], ["y"]),
        ],
        [],
        (2, 3),
        (6,),
    )


def padded(a, pad, end, start, middle):
    """`a` with the steps of row 0 from `end` on, of row 1 before `start`, the steps `middle` of
    row 2 and all of row 3 set to `pad`: padding at the end, at the start, in the middle and
    alone."""
    a[0, end:] = pad
    a[1, :start] = pad
    a[2, middle] = pad
    a[3, :] = pad
    return a


def kiln_export():
    """onnxruntime's outputs on the files kiln's `save_onnx` wrote (tests/it/onnx.rs, `export`;
    `cargo test --test it onnx::export -- --ignored` writes them)."""
    for name, shape in (
        ("kiln_export", (6,)),
        ("kiln_export_cnn", (12, 10, 3)),
        ("kiln_export_seq", (16, 2)),
        ("kiln_export_rnn", (7, 3)),
        ("kiln_export_resample", (9, 8, 2)),
        ("kiln_export_resample1d", (10, 2)),
        ("kiln_export_upsampling", (5, 4, 2)),
        ("kiln_export_convs", (7, 6, 2)),
        ("kiln_export_bidirectional", (6, 3)),
        ("kiln_export_bidirectional_last", (5, 2)),
        ("kiln_export_math", (4, 6)),
        ("kiln_export_features", (5,)),
        ("kiln_export_steps", (4, 3)),
        ("kiln_export_dot", (6,)),
        ("kiln_export_backwards", (5, 2)),
        ("kiln_export_attention", (5, 6)),
        ("kiln_export_attention_mask", (5, 6)),
        ("kiln_export_states", (6, 3)),
        ("kiln_export_encoder_decoder", (6, 3)),
        ("kiln_export_buckets", (3,)),
        ("kiln_export_subclass", (6,)),
        ("kiln_export_subclass_cnn", (8, 8, 1)),
        ("kiln_export_subclass_block", (5, 8)),
        ("kiln_export_subclass_weights", (6,)),
        ("kiln_export_bidirectional_states", (6, 3)),
        ("kiln_export_frames", (3, 6, 6, 2)),
        ("kiln_export_backwards_last", (5, 2)),
    ):
        path = os.path.join(OUT, f"{name}.onnx")
        if os.path.exists(path):
            onnx.checker.check_model(onnx.load(path))
            reference(name, np.random.default_rng(6).standard_normal((4, *shape)).astype(np.float32))
    path = os.path.join(OUT, "kiln_export_text.onnx")
    if os.path.exists(path):
        onnx.checker.check_model(onnx.load(path))
        reference("kiln_export_text", np.random.default_rng(6).integers(0, 20, (4, 7)))
    path = os.path.join(OUT, "kiln_export_masked.onnx")
    if os.path.exists(path):
        # Padding (id 0) at the end, at the start, in the middle, and a row of padding alone.
        onnx.checker.check_model(onnx.load(path))
        ids = np.random.default_rng(6).integers(1, 20, (5, 7))
        reference("kiln_export_masked", padded(ids, 0, 4, 3, [1, 2, 5]))
    path = os.path.join(OUT, "kiln_export_masking.onnx")
    if os.path.exists(path):
        # Steps of zeros (Masking's padding) at the end, at the start, in the middle, everywhere.
        onnx.checker.check_model(onnx.load(path))
        x = padded(np.random.default_rng(6).standard_normal((5, 5, 3)).astype(np.float32), 0.0, 3, 2, [1, 3])
        x[4, 2, 0] = 0.0  # one zero feature does not make a step padding
        reference("kiln_export_masking", x)
    path = os.path.join(OUT, "kiln_export_dot_attention.onnx")
    if os.path.exists(path):
        # Padding (id 0) at the end, at the start (the first query step then sees nothing but
        # padding under the causal mask), in the middle, everywhere.
        onnx.checker.check_model(onnx.load(path))
        ids = np.random.default_rng(6).integers(1, 20, (5, 6))
        reference("kiln_export_dot_attention", padded(ids, 0, 4, 2, [1, 3]))
    path = os.path.join(OUT, "kiln_export_lookup.onnx")
    if os.path.exists(path):
        # Values in the vocabulary, out of it (both signs), -1 (the unused entries' mark) and
        # fractions (their floor toward zero picks the out-of-vocabulary column).
        onnx.checker.check_model(onnx.load(path))
        x = np.random.default_rng(6).integers(-5, 13, (5, 4)).astype(np.float32)
        x[0, 0], x[1, 1], x[2, 2], x[3, 3] = -1.0, 2.5, -2.5, 7.0
        reference("kiln_export_lookup", x)
    path = os.path.join(OUT, "kiln_export_categories.onnx")
    if os.path.exists(path):
        onnx.checker.check_model(onnx.load(path))
        reference("kiln_export_categories", np.random.default_rng(6).integers(0, 5, (4, 3)))


def external_data():
    """`torch_mlp.onnx` saved again with its weights in a file beside it (ONNX's external data,
    as models over 2 GB must be): `torch_mlp_external.onnx` and `torch_mlp_external.data`."""
    model = onnx.load(os.path.join(OUT, "torch_mlp.onnx"))
    data = os.path.join(OUT, "torch_mlp_external.data")
    if os.path.exists(data):
        os.remove(data)  # onnx appends to an existing data file
    onnx.save_model(
        model,
        os.path.join(OUT, "torch_mlp_external.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="torch_mlp_external.data",
        size_threshold=0,
    )
    # Two broken ones for the compile-error tests: a location outside the model's folder, and a
    # range past the end of the data file.
    for name, edit in (("external_outside", "location"), ("external_past_the_end", "length")):
        broken = onnx.load(os.path.join(OUT, "torch_mlp_external.onnx"), load_external_data=False)
        entry = next(e for e in broken.graph.initializer[-1].external_data if e.key == edit)
        entry.value = "../onnx/torch_mlp_external.data" if edit == "location" else "4096"
        onnx.save_model(broken, os.path.join(OUT, f"{name}.onnx"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    export("torch_mlp", Mlp(), (6,))
    torch.manual_seed(0)
    export("torch_mnist1d_cnn", Mnist1dCnn(), (1, 40))
    model = trained_mnist1d_cnn()
    export("torch_mnist1d_cnn_trained", model, (1, 40))
    # Its references on signals of the task (its outputs on other inputs are logits in the
    # hundreds, where a float's spacing alone is 1e-5).
    reference("torch_mnist1d_cnn_trained", chunk_task(4, 2)[0].numpy())
    torch.manual_seed(0)
    export("torch_cnn2d", Cnn2d(), (2, 8, 12))
    torch.manual_seed(0)
    export("torch_blocks", Blocks(), (4, 16))
    torch.manual_seed(0)
    export("torch_lstm", LstmClassifier(), (7, 5))
    torch.manual_seed(0)
    export("torch_gru", GruLastState(), (7, 5))
    # Exported without a symbolic batch axis (the file says 1): kiln reads axis 0 as the batch.
    torch.manual_seed(0)
    export("torch_lstm_batch1", LstmClassifier(), (7, 5), batch_axis=False)
    torch.manual_seed(0)
    export("torch_bilstm", BiLstm(), (7, 5))
    torch.manual_seed(0)
    export("torch_text", TextClassifier(), (9,), integer=True)
    torch.manual_seed(0)
    export("torch_decoder", Decoder(), (3, 4, 5), rows=2)
    torch.manual_seed(0)
    export("torch_encoder", EncoderBlock(), (5, 8))
    torch.manual_seed(0)
    export("torch_gelu", GeluAndClips(), (6,))
    torch.manual_seed(0)
    export("torch_mha", MhaBlock(), (5, 8))
    torch.manual_seed(0)
    export("torch_encoder_layer", TorchEncoderLayer(), (5, 8))
    torch.manual_seed(0)
    export("torch_upsampling", Upsampling(), (2, 4, 4))
    torch.manual_seed(0)
    export("torch_conv_transpose1d", ConvTranspose1d(), (3, 6))
    keras_models()
    operators()
    hand_made()
    kiln_export()
    external_data()


if __name__ == "__main__":
    main()
