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
"""Discrete (Skellam) noise under secure aggregation: its std, and the exact noisy sum."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.secure import aggregator as secagg
from fedjax_m3t.secure import protocol, quantize
from tests.secure import fast_compile

setUpModule = fast_compile.set_up
tearDownModule = fast_compile.tear_down


class SkellamTest(absltest.TestCase):
    def test_the_sum_has_the_target_std(self):
        # 8 participants of 10 slots, 4,000 coordinates, fixed seed: the sum over
        # participants is Skellam(50^2 / 2), std 50; the sample std of 4,000 draws is
        # within 5% (its own std is about 1.1%). Padding slots add nothing.
        participants = jnp.arange(10) < 8
        draw = jax.jit(secagg.skellam_rows, static_argnums=2)
        noise = np.asarray(draw(jax.random.key(0), participants, 4_000, 50.0))
        self.assertEqual(noise.dtype, np.int32)
        self.assertFalse(np.any(noise[8:]))
        total = noise.sum(axis=0)
        self.assertAlmostEqual(float(total.mean()), 0.0, delta=3 * 50 / np.sqrt(4_000))
        np.testing.assert_allclose(total.std(), 50.0, rtol=0.05)
        # Each client's share has variance 2 mu = 50^2 / 8.
        np.testing.assert_allclose(noise[:8].std(), 50.0 / np.sqrt(8), rtol=0.05)

    def test_unmasked_sum_is_quantised_sum_plus_noise_exactly(self):
        k, values = 4, 8
        rng = np.random.default_rng(0)
        deltas = jnp.asarray(rng.uniform(-0.9, 0.9, (k, values)), jnp.float32)
        weights = jnp.asarray(rng.integers(1, 9, (k, 1)), jnp.float32)
        segment = np.zeros(values + 1, np.int32)  # One leaf, then its weight column.
        participants = jnp.ones(k, bool)
        plain = secagg.SecAggConfig(headroom_bits=4, weight_bound=16)
        # sigma 1e-3 is 65.5 integer units at f = 16.
        noisy = secagg.SecAggConfig(headroom_bits=4, weight_bound=16, skellam_std=1e-3)
        bits, f = secagg.resolve_bits(noisy, k)
        key = jax.random.key(1)
        encode = lambda config: jax.jit(
            lambda d, w, p, r: secagg.encode_rows(config, d, w, segment, p, f, r)[0]
        )(deltas, weights, participants, key)
        clean, rows = encode(plain), encode(noisy)
        noise = np.asarray(rows) - np.asarray(clean)
        self.assertFalse(np.any(noise[:, values:]))  # The weights are not noised.
        self.assertGreater(noise[:, :values].std(), 10.0)
        outcome, _ = jax.jit(protocol.run, static_argnames="protocol")(
            jax.random.key(2),
            quantize.to_ring(rows, bits),
            jnp.ones((k, 1), bool),
            jnp.asarray(segment),
            participants,
            jnp.zeros(k, bool),
            protocol=protocol.Protocol(bits=bits),
        )
        self.assertTrue(bool(outcome.ok))
        want = np.asarray(clean).sum(axis=0) + noise.sum(axis=0)
        np.testing.assert_array_equal(quantize.from_ring(outcome.total, bits), want)


if __name__ == "__main__":
    absltest.main()
