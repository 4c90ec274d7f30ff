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
"""Tests of DP-FedAvg's aggregator: clipping, noise, fixed denominator, adaptive clip."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest
from scipy import stats

from fedjax_m3t import tree
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import base, fed_opt, local_training, server_optimizers
from fedjax_m3t.models import linear
from fedjax_m3t.privacy import central
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers


def _config(**kwargs):
    return central.DPConfig(
        **{"noise_multiplier": 0.0, "clip": 1.0, "expected_cohort_size": 4, **kwargs}
    )


def _aggregate(aggregator, deltas, weights, state=None, key=0):
    """One round of `aggregator` over stacked deltas [k, ...] (the engine's calls)."""
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), deltas)
    state = aggregator.init_state(template) if state is None else state
    acc = aggregator.begin_round(aggregator.init(template), state)
    acc = aggregator.accumulate(acc, deltas, weights)
    return aggregator.finalize(acc, state, jax.random.key(key))


class ClipTest(absltest.TestCase):
    def test_clipped_norms_are_at_most_the_clip(self):
        deltas = {
            "a": jax.random.normal(jax.random.key(0), (6, 3, 2)) * jnp.arange(6.0)[:, None, None],
            "b": jax.random.normal(jax.random.key(1), (6, 4)),
        }
        clipped, unclipped = central.clip_updates(deltas, jnp.float32(1.5), [0, 0], [1.0])
        norms = jax.vmap(tree.l2_norm)(clipped)
        before = jax.vmap(tree.l2_norm)(deltas)
        np.testing.assert_array_less(norms, 1.5 + 1e-5)
        np.testing.assert_array_equal(unclipped, before <= 1.5)
        # Unclipped updates are untouched; clipped ones keep their direction at norm 1.5.
        np.testing.assert_allclose(
            np.where(unclipped, norms, 1.5), np.where(unclipped, before, 1.5), rtol=1e-6
        )
        # Hand value: [3, 4] has norm 5; clipped to 1: [0.6, 0.8].
        got, flag = central.clip_updates(
            {"w": jnp.array([[3.0, 4.0]])}, jnp.float32(1.0), [0], [1.0]
        )
        np.testing.assert_allclose(got["w"], [[0.6, 0.8]], rtol=1e-6)
        self.assertFalse(bool(flag[0]))

    def test_per_module_clip_splits_the_squared_clip(self):
        # Shares 0.64 / 0.36 of C^2 = 4: module clips 1.6 and 1.2 (1.6^2 + 1.2^2 = 4).
        config = _config(clip=2.0, per_module={"enc": 0.64, "head": 0.36}, expected_cohort_size=1)
        deltas = {"enc": jnp.array([[3.0, 4.0]]), "head": jnp.array([[0.6, 0.8]])}
        aggregate, _ = _aggregate(
            central.dp_aggregator(config), deltas, {"enc": jnp.ones(1), "head": jnp.ones(1)}
        )
        np.testing.assert_allclose(aggregate.delta["enc"], [0.96, 1.28], rtol=1e-6)  # Norm 1.6.
        np.testing.assert_allclose(aggregate.delta["head"], [0.6, 0.8], rtol=1e-6)  # Norm 1 <= 1.2.
        self.assertLessEqual(float(tree.l2_norm(aggregate.delta)), 2.0 + 1e-6)

    def test_bad_per_module_settings_raise(self):
        with self.assertRaisesRegex(ValueError, "sum to 1"):
            _config(per_module={"a": 0.5, "b": 0.4})
        aggregator = central.dp_aggregator(_config(per_module={"a": 1.0}))
        with self.assertRaisesRegex(ValueError, "matches no per-module clip pattern"):
            _aggregate(
                aggregator,
                {"a": jnp.ones((1, 2)), "b": jnp.ones((1, 2))},
                {"a": jnp.ones(1), "b": jnp.ones(1)},
            )
        aggregator = central.dp_aggregator(_config(per_module={"a": 0.5, "c": 0.5}))
        with self.assertRaisesRegex(ValueError, "matched no parameter"):
            _aggregate(aggregator, {"a": jnp.ones((1, 2))}, {"a": jnp.ones(1)})


class NoiseAndDenominatorTest(absltest.TestCase):
    def test_server_noise_has_the_stated_std(self):
        # z = 2, clip 0.5, K = 4, no client moved: delta = N(0, (z clip)^2) / K per entry.
        config = _config(noise_multiplier=2.0, clip=0.5)
        zeros = {"w": jnp.zeros((3, 20_000)), "b": jnp.zeros((3, 5_000))}
        weights = {"w": jnp.ones(3), "b": jnp.ones(3)}
        aggregate, _ = _aggregate(central.dp_aggregator(config), zeros, weights, key=7)
        noise = (
            np.concatenate([np.ravel(x) for x in jax.tree.leaves(aggregate.delta)])
            * 4
            / (2.0 * 0.5)
        )
        self.assertGreater(stats.kstest(noise, "norm").pvalue, 0.01)
        self.assertAlmostEqual(float(np.std(noise)), 1.0, delta=0.015)
        # Against a wrong scale (1.1 x) the KS test rejects.
        self.assertLess(stats.kstest(noise / 1.1, "norm").pvalue, 1e-6)
        other, _ = _aggregate(central.dp_aggregator(config), zeros, weights, key=8)
        self.assertFalse(np.allclose(other.delta["w"], aggregate.delta["w"]))
        # Every leaf is marked trained with the fixed denominator: all of them get noise.
        self.assertEqual(jax.tree.map(float, aggregate.weight), {"w": 4.0, "b": 4.0})

    def test_fixed_denominator_and_padding(self):
        # 2 real clients and 2 padding slots (weight 0, garbage deltas); K = 5.
        deltas = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0], [9.0, 9.0], [-7.0, 3.0]])}
        weights = {"w": jnp.array([3.0, 1.0, 0.0, 0.0])}  # Example counts are ignored.
        aggregate, _ = _aggregate(
            central.dp_aggregator(_config(clip=1.0, expected_cohort_size=5)), deltas, weights
        )
        # (1, 0) + (0, 2) clipped to (0, 1), over 5.
        np.testing.assert_allclose(aggregate.delta["w"], [0.2, 0.2], rtol=1e-6)

    def test_adaptive_value_noise_multiplier(self):
        adaptive = central.AdaptiveClipping()
        config = _config(noise_multiplier=1.0, expected_cohort_size=100, adaptive=adaptive)
        self.assertAlmostEqual(central.value_noise_multiplier(config), 1.0050378, places=7)
        self.assertAlmostEqual(config.clipped_count_stddev, 5.0)
        with self.assertRaisesRegex(ValueError, "2 x clipped_count_stddev"):
            _config(
                noise_multiplier=1.0, expected_cohort_size=10, adaptive=adaptive
            )  # sigma_b = 0.5.


class AdaptiveClipTest(absltest.TestCase):
    def test_trajectory_without_count_noise(self):
        # Norms 1, 2, 3, 4 every round, C_0 = 1, gamma 0.5, eta 0.2, K = 4, sigma_b = 0.
        adaptive = central.AdaptiveClipping(clipped_count_stddev=0.0)
        aggregator = central.dp_aggregator(_config(clip=1.0, adaptive=adaptive))
        deltas = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]])}
        weights = {"w": jnp.ones(4)}
        state, clip, got, want = None, 1.0, [], []
        for r in range(8):
            _, state = _aggregate(aggregator, deltas, weights, state, key=r)
            unclipped = sum(n <= clip * (1 + 1e-7) for n in (1.0, 2.0, 3.0, 4.0))
            b = min(1.0, max(0.0, (unclipped - 0.5 * 4) / 4 + 0.5))
            clip *= math.exp(-0.2 * (b - 0.5))
            got.append(float(state.clip))
            want.append(clip)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        # Hand: b = 0.25 while C < 2 (one norm below it): C_1 = e^0.05 = 1.0512711.
        self.assertAlmostEqual(got[0], 1.0512711, places=6)

    def test_trajectory_with_count_noise(self):
        # sigma_b = 0.05 K = 0.2: the count noise is the aggregator key's second half.
        aggregator = central.dp_aggregator(_config(clip=2.5, adaptive=central.AdaptiveClipping()))
        deltas = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]])}
        _, state = _aggregate(aggregator, deltas, {"w": jnp.ones(4)}, key=3)
        noise = float(jax.random.normal(jax.random.split(jax.random.key(3))[1], (), jnp.float32))
        b = min(1.0, max(0.0, (2 - 2 + 0.2 * noise) / 4 + 0.5))  # Norms 1, 2 are <= 2.5.
        self.assertAlmostEqual(float(state.clip), 2.5 * math.exp(-0.2 * (b - 0.5)), places=5)


def _linear_problem(aggregator, num_clients=5):
    spec = helpers.tabular_spec((("y", "regression"),))
    rng = np.random.default_rng(0)
    train = [helpers.linear_client(rng, 4) for _ in range(num_clients)]
    model = linear.build_linear_model(spec)
    algorithm = fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=server_optimizers.server_optimizer("fedavg", 1.0),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        aggregator=aggregator,
    )
    return model, algorithm, helpers.stack(train)


def _one_round(aggregator, num_devices, eligible, cohort_size=5):
    model, algorithm, train = _linear_problem(aggregator)
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    round_fn = round_lib.build_round(algorithm, num_clients=5, cohort_size=cohort_size, mesh=mesh)
    params = model.init(jax.random.key(0))
    state = algorithm.init(params)
    population = cohort_lib.Population(
        eligible=jnp.asarray(eligible), group=jnp.zeros(5, jnp.int32)
    )
    out = round_fn(state, algorithm.init_client_state(params), train, jax.random.key(1), population)
    moved = jax.tree.map(jnp.subtract, out.server_state.params, params)
    return moved, out


class EngineTest(absltest.TestCase):
    def test_fixed_denominator_when_clients_drop(self):
        # Full participation of 5 clients, 2 of them ineligible: the non-DP mean divides
        # by the 3 that arrived (equal sizes), DP-FedAvg by K = 5, on 1 and 2 devices.
        eligible = [True, False, True, True, False]
        dp = central.dp_aggregator(_config(clip=math.inf, expected_cohort_size=5))
        want, _ = _one_round(selective.AGGREGATOR, 1, eligible)
        self.assertGreater(float(tree.l2_norm(want)), 1e-3)
        for num_devices in (1, 2):
            got, _ = _one_round(dp, num_devices, eligible)
            jax.tree.map(
                lambda g, w: np.testing.assert_allclose(g, 3 / 5 * w, rtol=1e-5, atol=1e-7),
                got,
                want,
            )

    def test_adaptive_clip_sharded(self):
        # On 2 devices (begin_round per device, the clip merged by pmax): every update is
        # longer than 0.05, so b = 0 and the clip grows by e^{0.2 * 0.5}.
        adaptive = central.AdaptiveClipping(clipped_count_stddev=0.0)
        dp = central.dp_aggregator(_config(clip=0.05, expected_cohort_size=5, adaptive=adaptive))
        moved, out = _one_round(dp, 2, [True] * 5)
        self.assertAlmostEqual(float(out.server_state.agg_state.clip), 0.05 * math.exp(0.1), 6)
        # Five clipped updates of norm 0.05 over K = 5: the step's norm is at most 0.05.
        self.assertLessEqual(float(tree.l2_norm(moved)), 0.05 + 1e-6)
        self.assertGreater(float(tree.l2_norm(moved)), 0.01)

    def test_stacked_server_update_runs_begin_round(self):
        adaptive = central.AdaptiveClipping(clipped_count_stddev=0.0)
        dp = central.dp_aggregator(_config(clip=0.05, expected_cohort_size=5, adaptive=adaptive))
        model, algorithm, train = _linear_problem(dp)
        params = model.init(jax.random.key(0))
        state = algorithm.init(params)._replace(agg_state=central.DPState(jnp.float32(0.2)))
        outputs = jax.vmap(
            lambda data, c: algorithm.client_update(
                params,
                algorithm.init_client_state(params),
                data,
                base.make_context(jax.random.key(c), c),
            )
        )(train, jnp.arange(5))
        norms = jax.vmap(tree.l2_norm)(outputs.delta)
        new_state, _ = base.server_update(algorithm, state, outputs, jax.random.key(0))
        b = (float(jnp.sum(norms <= 0.2)) - 2.5) / 5 + 0.5
        self.assertAlmostEqual(float(new_state.agg_state.clip), 0.2 * math.exp(-0.2 * (b - 0.5)), 6)


if __name__ == "__main__":
    absltest.main()
