# Copyright 2026 The fedjax_m3t Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Evaluation metrics on host NumPy arrays (computed once per evaluation, not per step).

Binary: accuracy and ROC AUC; regression: RMSE and R^2; multiclass: accuracy and
macro-F1. Every function takes only the real, labelled examples.
"""

import numpy as np

from fedjax_m3t.data import spec as spec_lib


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN if one class.

    Args:
      labels: [n] in {0, 1}.
      scores: [n] real scores (higher = more likely positive).
    """
    labels = np.asarray(labels).astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = np.asarray(scores)[order]
    # Average ranks over ties.
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def macro_f1(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    scores = []
    for c in range(num_classes):
        tp = np.sum((predicted == c) & (labels == c))
        fp = np.sum((predicted == c) & (labels != c))
        fn = np.sum((predicted != c) & (labels == c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def quadratic_weighted_kappa(
    y_true: np.ndarray, y_pred: np.ndarray, min_rating: int, max_rating: int
) -> float:
    """Cohen's kappa with quadratic weights, as in the Kaggle ASAP evaluation.

    With ratings r = min_rating..max_rating (N of them), O the N x N confusion
    matrix of (true, predicted) counts, E the outer product of the two rating
    histograms divided by n (the counts expected by chance) and weights
    w_ij = (i - j)^2 / (N - 1)^2: kappa = 1 - sum(w O) / sum(w E). 1 is perfect
    agreement, 0 chance level (a constant prediction scores exactly 0), negative
    worse than chance. NaN when sum(w E) is 0 (no example, or every true and
    predicted rating the same).

    >>> quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1], 0, 1)
    0.5

    Args:
      y_true: int [n] true ratings in [min_rating, max_rating].
      y_pred: int [n] predicted ratings in [min_rating, max_rating].
      min_rating: the lowest possible rating.
      max_rating: the highest possible rating (> min_rating).

    Returns:
      The kappa, a float in [-1, 1], or NaN.

    Raises:
      ValueError: for max_rating <= min_rating, different lengths, or a rating that
        is not an integer in [min_rating, max_rating].
    """
    if max_rating <= min_rating:
        raise ValueError(f"Need max_rating > min_rating, got {min_rating}, {max_rating}.")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"Need two [n] arrays, got shapes {y_true.shape}, {y_pred.shape}.")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        bad = (y != np.round(y)) | (y < min_rating) | (y > max_rating)
        if np.any(bad):
            raise ValueError(
                f"{name} holds {y[bad][0]!r}, not an integer in [{min_rating}, {max_rating}]."
            )
    num = max_rating - min_rating + 1
    i, j = (np.asarray(y, np.int64) - min_rating for y in (y_true, y_pred))
    observed = np.zeros((num, num))
    np.add.at(observed, (i, j), 1.0)
    expected = np.outer(np.bincount(i, minlength=num), np.bincount(j, minlength=num))
    expected = expected / max(len(i), 1)
    r = np.arange(num)
    weights = (r[:, None] - r[None, :]) ** 2 / (num - 1) ** 2
    chance = float(np.sum(weights * expected))
    if chance == 0.0:
        return float("nan")
    return float(1.0 - np.sum(weights * observed) / chance)


def task_metrics(task: spec_lib.TaskSpec, prediction: np.ndarray, label: np.ndarray) -> dict:
    """Metrics of one task on the real labelled examples.

    Args:
      task: the task.
      prediction: [n] logits / values or [n, K] logits.
      label: [n].

    Returns:
      {'count': n, and per kind: 'accuracy', 'auc' | 'rmse', 'r2' | 'accuracy', 'macro_f1'}.
    """
    n = len(label)
    out = {"count": n}
    if n == 0:
        return out
    if task.kind == "binary":
        out["accuracy"] = float(np.mean((prediction > 0) == (label > 0.5)))
        out["auc"] = roc_auc(label > 0.5, prediction)
    elif task.kind == "regression":
        err = prediction - label
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
        var = float(np.var(np.asarray(label, np.float64)))
        # Constant labels (up to float32 rounding, e.g. a school whose test students
        # all scored 10) leave R^2 undefined rather than -1e10.
        scale = max(1.0, float(np.mean(np.square(label, dtype=np.float64))))
        out["r2"] = float(1 - np.mean(err**2) / var) if var > 1e-10 * scale else float("nan")
    else:
        predicted = np.argmax(prediction, axis=-1)
        out["accuracy"] = float(np.mean(predicted == label))
        out["macro_f1"] = macro_f1(label, predicted, task.num_classes)
    return out


PRIMARY = {"binary": "auc", "regression": "r2", "multiclass": "accuracy"}
"""The metric reported first for each task kind."""
