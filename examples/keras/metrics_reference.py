"""Keras 3's metrics on fixed data, fed in batches of 16 rows, for kiln's metric tests.

    python examples/keras/metrics_reference.py > tests/fixtures/keras/metrics.txt

Lines `data NAME WIDTH v1 v2 ...` hold the inputs (row-major); lines `metric CASE DATASET v1 ...`
hold the result after every batch has gone through `update_state` (several values for a
per-class F-score).
"""

import keras
import numpy as np

M = keras.metrics
rng = np.random.default_rng(7)
BATCH = 16

data = {}
# Binary: 50 rows, one probability each, and labels correlated with it.
bp = rng.uniform(0, 1, (50, 1)).astype("float32")
data["binary_pred"] = bp
data["binary_true"] = (rng.uniform(0, 1, (50, 1)) < 0.3 + 0.4 * bp).astype("float32")
# Four classes: 40 rows of softmax probabilities, one-hot targets that mostly agree.
logits = rng.normal(0, 1.5, (40, 4))
mp = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
labels = np.where(rng.uniform(0, 1, 40) < 0.6, mp.argmax(1), rng.integers(0, 4, 40))
data["multi_pred"] = mp
data["multi_true"] = np.eye(4, dtype="float32")[labels]
data["multi_labels"] = labels.astype("float32").reshape(40, 1)
# Regression: 30 rows of two targets.
rt = rng.normal(0, 2, (30, 2)).astype("float32")
data["reg_true"] = rt
data["reg_pred"] = (rt + rng.normal(0, 0.7, (30, 2))).astype("float32")

CASES = [
    ("precision", M.Precision(), "binary"),
    ("precision_0.3", M.Precision(thresholds=0.3), "binary"),
    ("recall", M.Recall(), "binary"),
    ("recall_0.7", M.Recall(thresholds=0.7), "binary"),
    ("auc", M.AUC(), "binary"),
    ("auc_pr", M.AUC(curve="PR"), "binary"),
    ("auc_50", M.AUC(num_thresholds=50), "binary"),
    ("binary_accuracy", M.BinaryAccuracy(), "binary"),
    ("f1_binary_0.5", M.F1Score(threshold=0.5), "binary"),
    ("precision", M.Precision(), "multi"),
    ("recall", M.Recall(), "multi"),
    ("auc", M.AUC(), "multi"),
    ("auc_pr", M.AUC(curve="PR"), "multi"),
    ("f1", M.F1Score(), "multi"),
    ("f1_micro", M.F1Score(average="micro"), "multi"),
    ("f1_macro", M.F1Score(average="macro"), "multi"),
    ("f1_weighted", M.F1Score(average="weighted"), "multi"),
    ("f1_macro_0.3", M.F1Score(average="macro", threshold=0.3), "multi"),
    ("fbeta2_macro", M.FBetaScore(average="macro", beta=2.0), "multi"),
    ("top_k", M.TopKCategoricalAccuracy(), "multi"),
    ("top_2", M.TopKCategoricalAccuracy(k=2), "multi"),
    ("categorical_accuracy", M.CategoricalAccuracy(), "multi"),
    ("sparse_top_2", M.SparseTopKCategoricalAccuracy(k=2), "labels"),
    ("sparse_top_1", M.SparseTopKCategoricalAccuracy(k=1), "labels"),
    ("rmse", M.RootMeanSquaredError(), "reg"),
    ("mape", M.MeanAbsolutePercentageError(), "reg"),
    ("r2", M.R2Score(), "reg"),
    ("mae", M.MeanAbsoluteError(), "reg"),
    ("mse", M.MeanSquaredError(), "reg"),
]

print(f"# keras {keras.__version__}")
for name, values in data.items():
    print("data", name, values.shape[1], " ".join(repr(float(v)) for v in values.ravel()))
for case, metric, dataset in CASES:
    if dataset == "labels":
        y, p = data["multi_labels"], data["multi_pred"]
    else:
        y, p = data[f"{dataset}_true"], data[f"{dataset}_pred"]
    for start in range(0, len(p), BATCH):
        metric.update_state(y[start : start + BATCH], p[start : start + BATCH])
    result = np.ravel(keras.ops.convert_to_numpy(metric.result()))
    print("metric", case, dataset, " ".join(repr(float(v)) for v in result))
