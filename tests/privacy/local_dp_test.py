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
"""Tests of local DP (clip and noise on the client, as fed_opt's client transform)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest
from scipy import stats

from fedjax_m3t import simulation, tree
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import linear
from fedjax_m3t.privacy import local_dp
from tests import helpers
from tests.privacy import fixtures


def _output(delta):
    weight = jax.tree.map(lambda _: jnp.float32(3.0), delta)
    return base.ClientOutput(delta=delta, weight=weight, client_state=None, metrics={})


def _problem():
    spec = helpers.tabular_spec((("y", "regression"),), num_features=3)
    rng = np.random.default_rng(0)
    train = [helpers.linear_client(rng, n, num_features=3) for n in (4, 6, 5, 3)]
    return linear.build_linear_model(spec), helpers.federation(spec, train)


def _run(model, federation, transform):
    algorithm = fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        client_transform=transform,
    )
    config = simulation.SimulationConfig(rounds=3, cohort_size=2, verbose=False)
    return simulation.run(algorithm, model, federation, config)


class LocalDpTest(absltest.TestCase):
    def test_clip_bounds_the_norm_and_keeps_small_updates(self):
        delta = {"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.array([0.0]), "d": None}}
        clipped, norm = local_dp.clip_update(delta, 1.0)
        self.assertAlmostEqual(float(norm), 5.0, places=6)  # sqrt(3^2 + 4^2).
        np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-6)  # (3, 4) / 5.
        self.assertIsNone(clipped["b"]["d"])
        same, _ = local_dp.clip_update(delta, 10.0)
        np.testing.assert_array_equal(same["a"], delta["a"])

    def test_noise_has_std_z_clip(self):
        z, clip = 0.8, 2.5
        out = local_dp.privatize(_output({"w": jnp.zeros((20_000,))}), jax.random.key(4), clip, z)
        standardised = np.asarray(out.delta["w"]) / (z * clip)
        self.assertGreater(stats.kstest(standardised, "norm").pvalue, 0.01)
        self.assertLess(stats.kstest(standardised / 1.05, "norm").pvalue, 1e-3)  # Power.
        np.testing.assert_array_equal(out.weight["w"], 3.0)
        equal = local_dp.privatize(
            _output({"w": jnp.zeros((3,))}), jax.random.key(4), clip, z, equal_weights=True
        )
        np.testing.assert_array_equal(equal.weight["w"], 1.0)

    def test_the_noised_update_is_clipped_first(self):
        delta = {"w": jnp.full((10_000,), 1.0)}  # Norm 100, clipped to 1: 0.01 each.
        out = local_dp.privatize(_output(delta), jax.random.key(0), 1.0, 0.5)
        np.testing.assert_allclose(float(jnp.mean(out.delta["w"])), 0.01, atol=0.5 * 4 / 100)
        np.testing.assert_allclose(float(jnp.std(out.delta["w"])), 0.5, rtol=0.03)

    def test_zero_noise_infinite_clip_reproduces_the_run_bit_for_bit(self):
        model, federation = _problem()
        plain = _run(model, federation, None)
        same = _run(model, federation, local_dp.local_dp_transform(math.inf, 0.0))
        noisy = _run(model, federation, local_dp.local_dp_transform(0.1, 1.0))
        for a, b in zip(
            jax.tree.leaves(plain.server_state.params),
            jax.tree.leaves(same.server_state.params),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        moved = tree.l2_norm(
            jax.tree.map(jnp.subtract, plain.server_state.params, noisy.server_state.params)
        )
        self.assertGreater(float(moved), 1e-3)

    def test_local_epsilon_is_the_gaussian_mechanism_at_half_the_multiplier(self):
        eps = local_dp.local_epsilon(
            fixtures.rdp_gaussian_epsilon, noise_multiplier=4.0, rounds=5, delta=1e-5
        )
        ref = fixtures.rdp_gaussian_epsilon(2.0, count=5, delta=1e-5)
        self.assertAlmostEqual(eps, ref, places=10)
        self.assertEqual(
            local_dp.local_epsilon(
                fixtures.rdp_gaussian_epsilon, noise_multiplier=4.0, rounds=0, delta=1e-5
            ),
            0.0,
        )

    def test_bad_parameters_raise(self):
        with self.assertRaisesRegex(ValueError, "clip > 0 and noise >= 0"):
            local_dp.local_dp_transform(0.0, 1.0)


if __name__ == "__main__":
    absltest.main()
