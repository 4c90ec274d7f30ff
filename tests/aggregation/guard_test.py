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
"""The round's guard: a NaN (or an outsized) update from one client never reaches
the server; the run equals the run without that client, under every aggregator,
on 1 and 2 devices, and the rejection is reported per institution."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t import simulation
from fedjax_m3t.aggregation import guard as guard_lib
from fedjax_m3t.aggregation import specs
from fedjax_m3t.algorithms import fed_opt, local_training
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 6
BAD = 2  # The faulty client.


def _train():
    rng = np.random.default_rng(0)
    clients = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 3, 4, 5, 3, 2)]
    return helpers.stack(clients, 6)


@functools.cache
def _model():
    return linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )


def _algorithm(model, rule):
    # FedAdam: the server optimizer has moments a NaN would poison for good.
    return fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.adam(0.05),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        aggregator=specs.build(rule),
    )


@functools.cache
def _round(rule, num_devices, guard):
    """(algorithm, jitted round): one compilation serves both runs of a comparison."""
    algorithm = _algorithm(_model(), rule)
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    return algorithm, round_lib.build_round(
        algorithm,
        num_clients=NUM_CLIENTS,
        cohort_size=NUM_CLIENTS,
        chunk_size=2,
        mesh=mesh,
        guard=guard,
    )


def _run(rule, train, eligible, num_devices=1, guard=None, rounds=2):
    """Server state and metrics after `rounds` full-participation rounds."""
    algorithm, round_fn = _round(rule, num_devices, guard)
    params = _model().init(jax.random.key(1))
    state = algorithm.init(params)
    states = jax.tree.map(
        lambda x: jnp.stack([x] * NUM_CLIENTS), algorithm.init_client_state(params)
    )
    population = cohort_lib.Population(jnp.asarray(eligible), jnp.zeros(NUM_CLIENTS, jnp.int32))
    for _ in range(rounds):
        state, states, metrics = round_fn(state, states, train, jax.random.key(0), population)
    return state, metrics


def _faulty(train, client, value=np.nan):
    bad = jax.tree.map(np.copy, train)
    bad["inputs"]["tabular"][client, 0, 0] = value
    return bad


def _everyone_but(client):
    eligible = np.ones(NUM_CLIENTS, bool)
    eligible[client] = False
    return eligible


def _assert_finite_and_equal(test, got, want):
    for x in jax.tree.leaves((got.params, got.opt_state)):
        test.assertTrue(np.all(np.isfinite(x)))
    jax.tree.map(
        np.testing.assert_array_equal, (got.params, got.opt_state), (want.params, want.opt_state)
    )


RULES = (
    "mean",
    "median",
    "trimmed_mean(trim=1)",
    "norm_bound(bound=10)",
    "krum(f=1)",
    "multi_krum(f=1, m=3)",
    "geometric_median",
    "heads/a: krum(f=1); trimmed_mean(trim=1)",
)


class NonFiniteTest(parameterized.TestCase):
    @parameterized.parameters(*RULES)
    def test_nan_client_changes_nothing(self, rule):
        train = _train()
        got, metrics = _run(rule, _faulty(train, BAD), np.ones(NUM_CLIENTS, bool))
        want, want_metrics = _run(rule, train, _everyone_but(BAD))
        _assert_finite_and_equal(self, got, want)
        self.assertEqual(float(metrics[guard_lib.REJECTED_KEY]), 1.0)
        self.assertEqual(float(metrics[guard_lib.NONFINITE_KEY]), 1.0)
        np.testing.assert_array_equal(metrics[guard_lib.BY_CLIENT_KEY], np.eye(NUM_CLIENTS)[BAD])
        # The rejected client is out of the round's means too.
        np.testing.assert_array_equal(metrics["loss/a"], want_metrics["loss/a"])
        self.assertEqual(float(metrics["num_clients"]), NUM_CLIENTS - 1)

    @parameterized.parameters(("mean", 2), ("geometric_median", 2))
    def test_inf_client_on_devices(self, rule, num_devices):
        train = _train()
        got, metrics = _run(
            rule, _faulty(train, BAD, np.inf), np.ones(NUM_CLIENTS, bool), num_devices
        )
        want, _ = _run(rule, train, _everyone_but(BAD), num_devices)
        _assert_finite_and_equal(self, got, want)
        np.testing.assert_array_equal(metrics[guard_lib.BY_CLIENT_KEY], np.eye(NUM_CLIENTS)[BAD])

    def test_without_the_guard_the_nan_reaches_the_server(self):
        # What the guard prevents: the same run with it off ends with NaN params.
        state, _ = _run(
            "mean",
            _faulty(_train(), BAD),
            np.ones(NUM_CLIENTS, bool),
            guard=guard_lib.OFF,
            rounds=1,
        )
        self.assertTrue(np.isnan(np.asarray(state.params["heads"]["a"]["kernel"])).any())


class NormRuleTest(parameterized.TestCase):
    @parameterized.parameters(("mean", 1), ("median", 2))
    def test_outsized_update_is_rejected(self, rule, num_devices):
        # Client 4's labels x 1e4 (a corrupted export): its update's norm is far above
        # 5 x the cohort's median, the others' are not.
        train = _train()
        bad = jax.tree.map(np.copy, train)
        for task in ("a", "b"):
            bad["labels"][task][4] *= 1e4
        guard = guard_lib.Guard(max_norm_ratio=5.0)
        got, metrics = _run(rule, bad, np.ones(NUM_CLIENTS, bool), num_devices, guard)
        want, want_metrics = _run(rule, train, _everyone_but(4), num_devices, guard)
        _assert_finite_and_equal(self, got, want)
        self.assertEqual(float(metrics[guard_lib.NORM_KEY]), 1.0)
        self.assertEqual(float(want_metrics[guard_lib.REJECTED_KEY]), 0.0)
        np.testing.assert_array_equal(metrics[guard_lib.BY_CLIENT_KEY], np.eye(NUM_CLIENTS)[4])

    def test_bad_ratio_is_refused(self):
        with self.assertRaisesRegex(ValueError, "max_norm_ratio must be > 1"):
            guard_lib.Guard(max_norm_ratio=0.5)


class ReportTest(absltest.TestCase):
    def test_run_writes_rejections_per_institution(self):
        model = _model()
        train = _faulty(_train(), BAD)
        federation = helpers.federation(
            model.spec,
            [helpers.take(train, c) for c in range(NUM_CLIENTS)],
            [helpers.take(_train(), c) for c in range(NUM_CLIENTS)],
        )
        config = simulation.SimulationConfig(
            rounds=2, cohort_size=NUM_CLIENTS, num_devices=1, chunk_size=2, verbose=False
        )
        result = simulation.run(_algorithm(model, "median"), model, federation, config)
        for record in result.history:
            self.assertEqual(record[f"guard/rejected/client{BAD}"], 1.0)
            self.assertEqual(record[guard_lib.REJECTED_KEY], 1.0)
            self.assertNotIn(guard_lib.BY_CLIENT_KEY, record)
        for x in jax.tree.leaves(result.server_state.params):
            self.assertTrue(np.all(np.isfinite(x)))


if __name__ == "__main__":
    absltest.main()
