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
"""Heterogeneous-rank LoRA aggregation by hand for ranks {2, 4, 8}."""

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.aggregation import hetero_lora

# Client i of rank r_i: A_i = c_i * ones [2, r_i], B_i = ones [r_i, 1], so
# A_i B_i = c_i r_i; c = 1, 2, 3, ranks 2, 4, 8, weights 1, 1, 2.
RANKS, C, W = (2, 4, 8), (1.0, 2.0, 3.0), (1.0, 1.0, 2.0)
A = [c * jnp.ones((2, r)) for c, r in zip(C, RANKS, strict=True)]
B = [jnp.ones((r, 1)) for r in RANKS]


class HeteroLoRATest(absltest.TestCase):
    def test_product_mean_by_hand(self):
        # Products 2, 8, 24: (1 * 2 + 1 * 8 + 2 * 24) / 4 = 14.5.
        np.testing.assert_allclose(hetero_lora.product_mean(A, B, W), [[14.5], [14.5]])

    def test_zero_padding_by_hand(self):
        # A columns 0-1: (1 + 2 + 2 * 3) / 4 = 2.25, 2-3: (2 + 6) / 4 = 2, 4-7: 6 / 4 = 1.5;
        # B rows 0-1: (1 + 1 + 2) / 4 = 1, 2-3: 3 / 4, 4-7: 2 / 4. Product:
        # 2 * 2.25 * 1 + 2 * 2 * 0.75 + 4 * 1.5 * 0.5 = 10.5 (not the 14.5 of the products).
        a, b = hetero_lora.zero_pad_mean(A, B, W)
        np.testing.assert_allclose(a[0], [2.25, 2.25, 2, 2, 1.5, 1.5, 1.5, 1.5])
        np.testing.assert_allclose(b[:, 0], [1, 1, 0.75, 0.75, 0.5, 0.5, 0.5, 0.5])
        np.testing.assert_allclose(a @ b, [[10.5], [10.5]], rtol=1e-6)
        a2, b2 = hetero_lora.truncate(a, b, 2)  # The rank-2 client's share: 2 * 2.25 * 1.
        np.testing.assert_allclose(a2 @ b2, [[4.5], [4.5]], rtol=1e-6)

    def test_refactor_is_exact_for_a_rank_one_mean(self):
        mean = hetero_lora.product_mean(A, B, W)  # Rank 1: every client recovers it.
        for r in RANKS:
            a, b = hetero_lora.refactor(mean, r)
            self.assertEqual((a.shape, b.shape), ((2, r), (r, 1)))
            np.testing.assert_allclose(a @ b, mean, rtol=1e-5)


if __name__ == "__main__":
    absltest.main()
