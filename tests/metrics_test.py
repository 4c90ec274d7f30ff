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
"""Tests for the evaluation metrics, against brute force and hand computations."""

import itertools

import numpy as np
from absl.testing import absltest

from fedjax_m3t import metrics
from fedjax_m3t.data import spec as spec_lib


def _brute_force_auc(labels, scores):
    """P(score of a positive > score of a negative), ties counted half, over all pairs."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


class RocAucTest(absltest.TestCase):
    def test_hand_example_with_ties(self):
        labels = np.array([1, 0, 1, 0, 1, 0])
        scores = np.array([0.9, 0.9, 0.5, 0.5, 0.1, 0.7])
        # Positives 0.9, 0.5, 0.1 against negatives 0.9, 0.5, 0.7:
        #   0.9: tie, win, win -> 2.5;  0.5: loss, tie, loss -> 0.5;  0.1: 0.
        # AUC = 3 / 9.
        self.assertAlmostEqual(metrics.roc_auc(labels, scores), 3.0 / 9.0, places=12)
        self.assertAlmostEqual(_brute_force_auc(labels, scores), 3.0 / 9.0, places=12)

    def test_matches_brute_force_on_random_ties(self):
        rng = np.random.default_rng(0)
        for _ in range(20):
            n = int(rng.integers(2, 30))
            labels = rng.integers(0, 2, n)
            if labels.min() == labels.max():
                labels[0] = 1 - labels[0]
            scores = rng.integers(0, 4, n).astype(float)  # Few distinct values: many ties.
            self.assertAlmostEqual(
                metrics.roc_auc(labels, scores), _brute_force_auc(labels, scores), places=12
            )

    def test_perfect_reversed_and_constant(self):
        labels = np.array([0, 0, 1, 1])
        self.assertEqual(metrics.roc_auc(labels, np.array([0.1, 0.2, 0.3, 0.4])), 1.0)
        self.assertEqual(metrics.roc_auc(labels, np.array([0.4, 0.3, 0.2, 0.1])), 0.0)
        self.assertEqual(metrics.roc_auc(labels, np.zeros(4)), 0.5)  # All tied.

    def test_one_class_is_nan(self):
        self.assertTrue(np.isnan(metrics.roc_auc(np.ones(3), np.arange(3.0))))
        self.assertTrue(np.isnan(metrics.roc_auc(np.zeros(3), np.arange(3.0))))


class MacroF1Test(absltest.TestCase):
    def test_by_hand(self):
        labels = np.array([0, 0, 1, 1, 2])
        predicted = np.array([0, 1, 1, 1, 0])
        # Class 0: tp 1, fp 1, fn 1 -> F1 = 2 / 4 = 0.5.
        # Class 1: tp 2, fp 1, fn 0 -> F1 = 4 / 5 = 0.8.
        # Class 2: tp 0, fp 0, fn 1 -> F1 = 0.
        # Class 3: absent from labels and predictions -> skipped.
        self.assertAlmostEqual(
            metrics.macro_f1(labels, predicted, num_classes=4), (0.5 + 0.8 + 0.0) / 3, places=12
        )

    def test_no_class_is_nan(self):
        self.assertTrue(np.isnan(metrics.macro_f1(np.array([]), np.array([]), 3)))


class TaskMetricsTest(absltest.TestCase):
    def test_regression_rmse_and_r2(self):
        task = spec_lib.TaskSpec(name="score", kind="regression")
        label = np.array([1.0, 2.0, 3.0, 4.0])
        prediction = np.array([1.5, 2.0, 2.0, 4.5])
        out = metrics.task_metrics(task, prediction, label)
        # Squared errors [0.25, 0, 1, 0.25]: MSE 0.375; labels variance 1.25;
        # R^2 = 1 - 0.375 / 1.25 = 0.7.
        self.assertEqual(out["count"], 4)
        self.assertAlmostEqual(out["rmse"], np.sqrt(0.375), places=12)
        self.assertAlmostEqual(out["r2"], 0.7, places=12)
        # Constant labels: R^2 undefined.
        self.assertTrue(np.isnan(metrics.task_metrics(task, label, np.ones(4))["r2"]))

    def test_binary(self):
        task = spec_lib.TaskSpec(name="correct", kind="binary")
        out = metrics.task_metrics(task, np.array([2.0, -1.0, 0.5, -3.0]), np.array([1, 1, 0, 0]))
        # Logit > 0 predicts 1: [1, 0, 1, 0] vs [1, 1, 0, 0] -> accuracy 2/4.
        # Positives 2, -1 vs negatives 0.5, -3: wins 2 + 1 -> AUC 3/4.
        self.assertEqual(out, {"count": 4, "accuracy": 0.5, "auc": 0.75})

    def test_multiclass(self):
        task = spec_lib.TaskSpec(name="outcome", kind="multiclass", num_classes=3)
        logits = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
        out = metrics.task_metrics(task, logits, np.array([0, 1, 2, 2]))
        # Argmax [0, 1, 1, 2] vs [0, 1, 2, 2]: accuracy 3/4; F1 per class 1, 2/3, 2/3.
        self.assertEqual(out["accuracy"], 0.75)
        self.assertAlmostEqual(out["macro_f1"], (1 + 2 / 3 + 2 / 3) / 3, places=12)

    def test_no_example(self):
        task = spec_lib.TaskSpec(name="score", kind="regression")
        self.assertEqual(metrics.task_metrics(task, np.zeros(0), np.zeros(0)), {"count": 0})


if __name__ == "__main__":
    absltest.main()


def test_r2_of_constant_labels_is_undefined():
    task = spec_lib.TaskSpec(name="y", kind="regression")
    # float32 labels that are equal up to rounding: variance ~1e-15, not a real spread.
    label = np.float32(0.1) * np.ones(4, np.float32) + np.float32([0, 1e-8, 0, -1e-8])
    got = metrics.task_metrics(task, np.zeros(4, np.float32), label)
    assert np.isnan(got["r2"])
    assert got["rmse"] > 0


def test_quadratic_weighted_kappa():
    # Ratings 0..2, w_ij = (i - j)^2 / 4. O: (0,0), (1,2), (2,2), (2,1): sum w O = 2/4.
    # Histograms [1, 1, 2] both; E = outer / 4: sum w E = (1 + 1 + 8 + 8 + 2 + 2) / 16
    # = 22/16. Kappa = 1 - (1/2) / (22/16) = 7/11.
    got = metrics.quadratic_weighted_kappa([0, 1, 2, 2], [0, 2, 2, 1], 0, 2)
    np.testing.assert_allclose(got, 7 / 11, rtol=0, atol=1e-12)
    # Perfect agreement is 1; a constant prediction is exactly chance level, 0.
    assert metrics.quadratic_weighted_kappa([2, 5, 9], [2, 5, 9], 2, 12) == 1.0
    np.testing.assert_allclose(
        metrics.quadratic_weighted_kappa([0, 1, 3, 3], [2, 2, 2, 2], 0, 3), 0.0, atol=1e-12
    )
    # No spread anywhere: undefined.
    assert np.isnan(metrics.quadratic_weighted_kappa([1, 1], [1, 1], 0, 3))
    for bad in (([0, 4], [0, 1], 0, 3), ([0, 1.5], [0, 1], 0, 3), ([0], [0], 2, 2)):
        with np.testing.assert_raises(ValueError):
            metrics.quadratic_weighted_kappa(*bad)


def test_quadratic_weighted_kappa_matches_sklearn():
    try:
        from sklearn.metrics import cohen_kappa_score  # noqa: PLC0415 - optional.
    except ImportError:
        return  # sklearn is not a dependency; the hand-computed test above still runs.
    rng = np.random.default_rng(0)
    for lo, hi in ((0, 3), (2, 12), (0, 60)):
        y_true = rng.integers(lo, hi + 1, 200)
        y_pred = np.clip(y_true + rng.integers(-2, 3, 200), lo, hi)
        want = cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=np.arange(lo, hi + 1))
        got = metrics.quadratic_weighted_kappa(y_true, y_pred, lo, hi)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
