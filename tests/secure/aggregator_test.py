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
from absl.testing import absltest

from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.models import linear
from fedjax_m3t.secure import aggregator as secagg
from fedjax_m3t.simulation import loop
from fedjax_m3t.simulation import round as round_lib
from tests import helpers
from tests.secure import fast_compile

setUpModule = fast_compile.set_up
tearDownModule = fast_compile.tear_down


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


def _finalize(config, updates):
    aggregator = secagg.secure_aggregator(config)
    return jax.jit(aggregator.finalize)(updates, aggregator.init_state(None), jax.random.key(5))


class FinalizeTest(absltest.TestCase):
    def test_mean_of_the_quantised_updates_over_the_survivors(self):
        # 3 of the 9 participants drop; the result is the selective mean of the
        # survivors' quantised updates (their exact integer sums), computed in numpy,
        # and within 2^-(F+1) of the plain float mean over the survivors.
        updates = _stacked()
        got, state = _finalize(secagg.SecAggConfig(dropout=0.3), updates)
        self.assertFalse(bool(state.aborted))
        self.assertEqual((int(state.survivors), int(state.dropped)), (6, 3))
        participants = np.arange(10) < 9
        dropped = np.asarray(
            secagg._dropouts(jax.random.fold_in(jax.random.key(5), 0), participants, 0.3)
        )
        self.assertEqual(int(dropped.sum()), 3)
        kept = jax.tree.map(lambda w: w * ~dropped, updates.weight)
        plain = selective.mean(updates.delta, kept)
        for leaf in ("a", "b"):
            w = np.asarray(kept[leaf])
            q = np.round(np.asarray(updates.delta[leaf], np.float64) * 2**F).reshape(10, -1)
            want = (w @ q) / (2**F * w.sum())
            secure = np.asarray(got.delta[leaf]).reshape(-1)
            np.testing.assert_allclose(secure, want, rtol=1e-6, atol=0)
            self.assertEqual(float(got.weight[leaf]), w.sum())
            err = np.max(np.abs(secure - np.asarray(plain.delta[leaf]).reshape(-1)))
            self.assertLessEqual(err, 2.0 ** -(F + 1) + 1e-7)
            self.assertGreater(err, 0.0)  # Quantised, not the float mean.

    def test_noise_hooks_run_before_and_after_quantisation(self):
        # A float hook adding 0.05 shifts the mean by 0.05; an integer hook doubling
        # every row (one headroom bit) doubles both sums: same mean, twice the weight.
        updates = _stacked()
        config = secagg.SecAggConfig(
            client_noise=lambda x, participants, key: x + 0.05,  # |x| <= 0.95: no clip.
            integer_noise=lambda rows, participants, key: rows * 2,
            headroom_bits=1,
        )
        got, _ = _finalize(config, updates)
        plain = selective.mean(updates.delta, updates.weight)
        for leaf in ("a", "b"):
            np.testing.assert_allclose(
                got.delta[leaf], plain.delta[leaf] + 0.05, rtol=0, atol=2.0 ** -(F + 1) + 1e-6
            )
            self.assertEqual(float(got.weight[leaf]), 2 * float(plain.weight[leaf]))

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
        algorithm = registry.build_algorithm(
            "fedadam",  # Adam moments: an optimizer state that must not move either.
            model,
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
            client_learning_rate=0.1,
            server_learning_rate=0.1,
            aggregator="secagg",
            secagg=secagg.SecAggConfig(dropout=0.75),
        )
        self.assertTrue(algorithm.aggregator.stacked)
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


if __name__ == "__main__":
    absltest.main()
