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
"""Tests of the fixed-point encoding and the byte model."""

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.secure import byte_model, quantize


class QuantizeTest(absltest.TestCase):
    def test_bits_formula_by_hand(self):
        # M = ceil(1.0 * 2^16) = 65536; 2 n W M = 2 * 8 * 1024 * 65536 = 2^30 -> 31 bits.
        self.assertEqual(quantize.required_bits(1.0, 16, 1024, 8), 31)
        # 2 * 10 * 1 * ceil(0.5 * 2^3) = 80 -> bit_length 7 (80 < 128), + 2 headroom bits.
        self.assertEqual(quantize.required_bits(0.5, 3, 1, 10, headroom_bits=2), 9)
        self.assertEqual(quantize.largest_precision(1.0, 1024, 8, 31), 16)

    def test_extreme_sums_do_not_wrap(self):
        # n clients all at +W M (or all at -W M) sum to +-n W M, read back exactly.
        n, w, clip, f = 10, 3, 0.5, 3
        bits = quantize.required_bits(clip, f, w, n)
        for sign in (1, -1):
            q = quantize.encode(jnp.full((n,), sign * 2.0), clip, f) * w
            total = jnp.sum(quantize.to_ring(q, bits), dtype=jnp.uint32)
            total = total & jnp.uint32(2**bits - 1)
            self.assertEqual(int(quantize.from_ring(total, bits)), sign * n * w * 4)

    def test_encoding_rounds_and_clips(self):
        q = quantize.encode(jnp.array([0.3, -0.3, 2.0, -7.0]), 1.0, 2)
        np.testing.assert_array_equal(q, [1, -1, 4, -4])  # 0.3 * 4 = 1.2 -> 1.
        ring = quantize.to_ring(jnp.array([-1, 5, -(2**7)], jnp.int32), 8)
        np.testing.assert_array_equal(ring, [255, 5, 128])
        np.testing.assert_array_equal(quantize.from_ring(ring, 8), [-1, 5, -128])
        np.testing.assert_array_equal(
            quantize.encode_weights(jnp.array([2.4, -1.0, 9.0]), 5), [2, 0, 5]
        )


class ByteModelTest(absltest.TestCase):
    def test_the_papers_expansion_factors(self):
        # Bonawitz et al. (2017), abstract: 1.73x (2^10 clients, 2^20 values) and
        # 1.98x (2^14, 2^24) for 16-bit inputs.
        self.assertAlmostEqual(byte_model.paper_expansion(2**10, 2**20), 1.73, delta=0.02)
        self.assertAlmostEqual(byte_model.paper_expansion(2**14, 2**24), 1.98, delta=0.02)

    def test_counts_by_hand(self):
        # 3 neighbours (n = 4): keys 2 * 4 * 256, shares (5 * 4 - 4) * 256, vector 10 * 20.
        cost = byte_model.client_cost(3, 10, 20)
        self.assertEqual(cost, byte_model.ClientCost(keys=2048, shares=4096, masked=200))
        self.assertEqual(cost.total_bytes, 6344 / 8)
        self.assertEqual(byte_model.sum_bits(2**10, 16), 26)
        self.assertEqual(byte_model.sum_bits(2**14, 16), 30)


if __name__ == "__main__":
    absltest.main()
