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
"""Secure aggregation as the round's aggregator: equal to the plain mean, aborts keep the state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import fed_opt, local_training, registry
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import linear, m3t
from fedjax_m3t.secure import aggregator as secagg
from fedjax_m3t.simulation import loop
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

F = 16  # Precision bits of the default config: the stated error is 2^-(F+1) per coordinate.


def _stacked(k=10, seed=0):
    """Deltas of two leaves for k slots; slot 1 lacks leaf 'b', the last slot is padding."""
    rng = np.random.default_rng(seed)
    delta = {
        "a": jnp.asarray(rng.uniform(-0.9, 0.9, (k, 3, 2)), jnp.float32),
        "b": jnp.asarray(rng.uniform(-0.9, 0.9, (k, 4)), jnp.float32),
    }
    counts = rng.integers(1, 40, k).astype(np.float32)
    counts[-1] = 0.0
    weight_b = counts.copy()
    weight_b[1] = 0.0
    return aggregation_base.StackedUpdates(
        delta, {"a": jnp.asarray(counts), "b": jnp.asarray(weight_b)}
    )


def _finalize(config, updates, rng=jax.random.key(5)):
    aggregator = secagg.secure_aggregator(config)
    return jax.jit(aggregator.finalize)(updates, aggregator.init_state(None), rng)


class FinalizeTest(absltest.TestCase):
    def test_mean_of_the_quantised_updates_over_the_survivors(self):
        # 0 and 3 of the 9 participants drop; the result is the selective mean of the
        # survivors' quantised updates (integer sums), computed here in numpy.
        updates = _stacked()
        for rate, survivors in ((0.0, 9), (0.3, 6)):
            got, state = _finalize(secagg.SecAggConfig(dropout=rate), updates)
            self.assertFalse(bool(state.aborted))
            self.assertEqual(int(state.survivors), survivors)
            participants = np.arange(10) < 9
            dropped = np.asarray(
                secagg._dropouts(jax.random.fold_in(jax.random.key(5), 0), participants, rate)
            )
            self.assertEqual(int(dropped.sum()), 9 - survivors)
            for leaf in ("a", "b"):
                w = np.asarray(updates.weight[leaf]) * ~dropped
                q = np.round(np.asarray(updates.delta[leaf], np.float64) * 2**F)
                q = q.reshape(10, -1)
                want = (w @ q) / (2**F * w.sum())
                np.testing.assert_allclose(
                    np.asarray(got.delta[leaf]).reshape(-1), want, rtol=1e-6, atol=0
                )
                self.assertEqual(float(got.weight[leaf]), w.sum())

    def test_equals_the_plain_selective_mean_up_to_the_quantisation_error(self):
        updates = _stacked()
        got, _ = _finalize(secagg.SecAggConfig(), updates)
        want = selective.mean(updates.delta, updates.weight)
        for leaf in ("a", "b"):
            err = np.max(np.abs(np.asarray(got.delta[leaf]) - np.asarray(want.delta[leaf])))
            self.assertLessEqual(err, 2.0 ** -(F + 1) + 1e-7)
            self.assertGreater(err, 0.0)  # Quantised, not the float mean.

    def test_a_ring_too_small_is_refused_with_the_formula(self):
        with self.assertRaisesRegex(ValueError, r"needs a 35-bit ring .*bit_length\(2 n W"):
            # 2 * 10 * 1024 * 2^20 = 20 * 2^30 -> 35 bits.
            secagg.resolve_bits(secagg.SecAggConfig(precision_bits=20), 10)
        # The most precision a 32-bit ring allows: 2 * 10 * 1024 * 2^17 < 2^32 <= ... * 2^18.
        self.assertEqual(
            secagg.resolve_bits(secagg.SecAggConfig(precision_bits=None), 10), (32, 17)
        )


def _linear_setup():
    spec = helpers.tabular_spec((("a", "regression"),))
    model = linear.build_linear_model(spec)
    rng = np.random.default_rng(0)
    train = helpers.stack([helpers.linear_client(rng, n, ("a",)) for n in (3, 4, 5, 3)], 5)
    return model, train


class AbortTest(absltest.TestCase):
    def test_too_many_dropouts_keep_the_server_state_and_raise_on_the_host(self):
        # 3 of 4 drop: the survivor has 0 responding neighbours, threshold 2 of 3.
        model, train = _linear_setup()
        algorithm = fed_opt.fed_opt(
            model,
            client_optimizer=optax.sgd(0.1),
            server_optimizer=optax.adam(0.1),
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
            aggregator=secagg.secure_aggregator(secagg.SecAggConfig(dropout=0.75)),
        )
        params = model.init(jax.random.key(0))
        state = algorithm.init(params)
        states = jax.tree.map(lambda x: jnp.stack([x] * 4), algorithm.init_client_state(params))
        round_fn = round_lib.build_round(algorithm, num_clients=4, cohort_size=4, chunk_size=2)
        out = round_fn(state, states, train, jax.random.key(0)).server_state
        jax.tree.map(np.testing.assert_array_equal, out.params, state.params)
        jax.tree.map(np.testing.assert_array_equal, out.opt_state, state.opt_state)
        self.assertEqual(int(out.round), 1)
        self.assertEqual(int(out.agg_state.aborted_rounds), 1)
        self.assertEqual((int(out.agg_state.dropped), int(out.agg_state.survivors)), (3, 1))
        self.assertEqual(int(out.agg_state.worst_holders), 0)
        self.assertEqual(int(out.agg_state.worst_threshold), 2)
        with self.assertRaisesRegex(
            secagg.SecAggAbortedError,
            r"aborted in round 1: 3 participants dropped, 1 sent .* only 0 surviving share "
            r"holders for a threshold of 2",
        ):
            secagg.abort_hook(loop.RoundInfo(1, out, states, {}))
        secagg.check(state.agg_state)  # A round that did not abort passes.


class M3TRoundTest(parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Compile time dominates on CPU; the arithmetic checked is the same.
        cls._optimize = jax.config.read("jax_disable_most_optimizations")
        jax.config.update("jax_disable_most_optimizations", True)
        cls.federation = synthetic.make_education_federation(
            synthetic.SyntheticConfig(
                num_clients=6,
                mean_examples=16,
                modality_missing_prob=0.3,
                task_missing_prob=0.2,
                image_size=8,
                text_length=8,
                interaction_length=8,
                num_skills=10,
            )
        )
        cls.model = m3t.build_m3t_model(
            cls.federation.spec,
            m3t.M3TConfig(width=16, depth=1, num_heads=2, lora_rank=0, patch_size=4),
        )
        cls.plain = cls._round("mean", 1)

    @classmethod
    def tearDownClass(cls):
        jax.config.update("jax_disable_most_optimizations", cls._optimize)
        super().tearDownClass()

    @classmethod
    def _round(cls, aggregator, num_devices):
        algorithm = registry.build_algorithm(
            "fedavg",
            cls.model,
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=8),
            client_learning_rate=0.01,
            aggregator=aggregator,
        )
        params = cls.model.init(jax.random.key(0))
        state = algorithm.init(params)
        states = jax.tree.map(lambda x: jnp.stack([x] * 6), algorithm.init_client_state(params))
        mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
        round_fn = round_lib.build_round(
            algorithm, num_clients=6, cohort_size=6, chunk_size=1, mesh=mesh
        )
        return round_fn(state, states, cls.federation.train, jax.random.key(0)).server_state

    @parameterized.parameters(1, 2)
    def test_secure_round_equals_the_plain_round(self, num_devices):
        # Server lr 1: params move by the aggregate, so they differ by at most the
        # quantisation error 2^-(F+1) (float32 rounding aside).
        secure = self._round("secagg", num_devices)
        self.assertFalse(bool(secure.agg_state.aborted))
        self.assertEqual(int(secure.agg_state.clipped), 0)
        self.assertEqual(int(secure.agg_state.survivors), 6)
        errors = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), secure.params, self.plain.params
        )
        self.assertLessEqual(max(jax.tree.leaves(errors)), 2.0 ** -(F + 1) + 1e-6)
        self.assertGreater(max(jax.tree.leaves(errors)), 0.0)


if __name__ == "__main__":
    absltest.main()
