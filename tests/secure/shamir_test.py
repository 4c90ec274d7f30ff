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
"""Tests of the prime field, Shamir sharing and the simulated key agreement."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.secure import keys, shamir

P = shamir.PRIME


class FieldTest(absltest.TestCase):
    def test_arithmetic_matches_python_ints(self):
        a = np.array([0, 1, 2, 12345, P - 1], np.uint32)
        b = np.array([P - 1, P - 1, 3, 54321, P - 1], np.uint32)
        np.testing.assert_array_equal(shamir.mul(a, b), (a.astype(object) * b) % P)
        np.testing.assert_array_equal(shamir.add(a, b), (a.astype(object) + b) % P)
        np.testing.assert_array_equal(shamir.sub(a, b), (a.astype(object) - b) % P)
        np.testing.assert_array_equal(
            shamir.power(a, b), [pow(int(x), int(y), P) for x, y in zip(a, b, strict=True)]
        )
        nonzero = a[1:]
        np.testing.assert_array_equal(shamir.mul(shamir.inverse(nonzero), nonzero), 1)

    def test_generator_is_a_primitive_root(self):
        # 65520 = 2^4 3^2 5 7 13: g generates F_p^* iff g^(65520/q) != 1 for each prime q.
        for q in (2, 3, 5, 7, 13):
            self.assertNotEqual(int(shamir.power(keys.GENERATOR, (P - 1) // q)), 1)


class ShamirTest(absltest.TestCase):
    def test_lagrange_coefficients_by_hand(self):
        # Holders 0 and 1 (x = 1, 2): lambda_1 = 2 / (2 - 1) = 2, lambda_2 = 1 / (1 - 2) = -1.
        got = shamir.lagrange_at_zero(jnp.array([True, True, False]))
        np.testing.assert_array_equal(got, [2, P - 1, 0])

    def test_shares_lie_on_a_polynomial_of_degree_t_minus_1(self):
        secret = jnp.array([[1234, 60000]], jnp.uint32)
        constant = shamir.share(jax.random.key(0), secret, jnp.array([1]), 5)
        np.testing.assert_array_equal(constant[0], np.tile([1234, 60000], (5, 1)))
        line = np.asarray(shamir.share(jax.random.key(0), secret, jnp.array([2]), 5))[0]
        steps = (line[1:].astype(np.int64) - line[:-1]) % P  # f(x + 1) - f(x): constant.
        np.testing.assert_array_equal(steps, np.tile(steps[0], (4, 1)))
        # f(1) - step = f(0), the secret.
        np.testing.assert_array_equal((line[0].astype(np.int64) - steps[0]) % P, [1234, 60000])

    def test_t_shares_recover_and_t_minus_1_do_not(self):
        secret = jnp.array([[1234, 60000], [5, 7]], jnp.uint32)
        shares = shamir.share(jax.random.key(1), secret, jnp.array([3, 2]), 6)
        present = jnp.array([[1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], bool)
        np.testing.assert_array_equal(shamir.reconstruct(shares, present), secret)
        every = jnp.ones((2, 6), bool)  # More than t shares also interpolate exactly.
        np.testing.assert_array_equal(shamir.reconstruct(shares, every), secret)
        too_few = jnp.array([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]], bool)
        wrong = np.asarray(shamir.reconstruct(shares, too_few))
        self.assertFalse(np.any(wrong == np.asarray(secret)))


class KeyAgreementTest(absltest.TestCase):
    def test_both_sides_agree_and_pairs_differ(self):
        secret, public = keys.keygen(jax.random.key(2), (4, 2))
        np.testing.assert_array_equal(public, shamir.power(keys.GENERATOR, secret))
        agreed = np.array([[keys.agree(secret[u], public[v]) for v in range(4)] for u in range(4)])
        np.testing.assert_array_equal(agreed, agreed.transpose(1, 0, 2))
        off_diagonal = {tuple(agreed[u, v]) for u in range(4) for v in range(u + 1, 4)}
        self.assertLen(off_diagonal, 6)


if __name__ == "__main__":
    absltest.main()
