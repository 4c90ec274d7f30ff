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
"""Tests for glob masks, partition/merge, weighted sums and norms in fedjax_m3t.tree."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from fedjax_m3t import tree


def _params():
    """A small params tree with modules at several depths."""
    return {
        "a": {
            "x": {"k": jnp.ones((2,)), "b": jnp.zeros(())},
            "y": {"k": jnp.full((3,), 2.0), "deep": {"k": jnp.ones((1,))}},
        },
        "heads": {
            "score": {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros((1,))},
            "score2": {"kernel": jnp.ones((2, 1))},
        },
        "top": jnp.arange(3.0),
    }


def _selected(mask) -> list[str]:
    """The paths whose mask leaf is True, sorted."""
    paths = tree.leaf_paths(mask)
    return sorted(p for p, m in zip(paths, jax.tree.leaves(mask), strict=True) if m)


class MaskTest(parameterized.TestCase):
    def test_leaf_paths(self):
        self.assertEqual(
            tree.leaf_paths(_params()),
            [
                "a/x/b",
                "a/x/k",
                "a/y/deep/k",
                "a/y/k",
                "heads/score/bias",
                "heads/score/kernel",
                "heads/score2/kernel",
                "top",
            ],
        )

    @parameterized.named_parameters(
        # '**' spans any depth below 'a'.
        ("double_star", "a/**", ["a/x/b", "a/x/k", "a/y/deep/k", "a/y/k"]),
        # '*' is one segment: a/*/k is a/x/k and a/y/k, not a/y/deep/k (two segments),
        # and k's own subtree would be included (none here).
        ("single_star", "a/*/k", ["a/x/k", "a/y/k"]),
        # A module name selects its leaves and stops at the segment boundary: not score2.
        ("prefix", "heads/score", ["heads/score/bias", "heads/score/kernel"]),
        ("prefix_slash", "heads/score/", ["heads/score/bias", "heads/score/kernel"]),
        (
            "star_in_segment",
            "heads/score*",
            ["heads/score/bias", "heads/score/kernel", "heads/score2/kernel"],
        ),  # fmt: skip
        ("any_head_kernel", "heads/*/kernel", ["heads/score/kernel", "heads/score2/kernel"]),
        ("exact_leaf", "top", ["top"]),
    )
    def test_glob(self, pattern, expected):
        mask = tree.make_mask(_params(), pattern)
        self.assertEqual(_selected(mask), expected)
        # Python bools, the params' structure.
        self.assertEqual(jax.tree.structure(mask), jax.tree.structure(_params()))
        self.assertTrue(all(type(m) is bool for m in jax.tree.leaves(mask)))

    def test_several_patterns_union(self):
        mask = tree.make_mask(_params(), ("a/x", "heads/score2"))
        self.assertEqual(_selected(mask), ["a/x/b", "a/x/k", "heads/score2/kernel"])

    def test_double_star_matches_zero_segments(self):
        # The module docstring: "'**' matches any number of segments"; zero is a number,
        # as in gitignore globs where 'a/**/k' matches 'a/k'.
        self.assertTrue(tree.path_matches("a/**/k", "a/y/deep/k"))
        self.assertTrue(tree.path_matches("a/**/k", "a/k"))
        self.assertTrue(tree.path_matches("**/kernel", "kernel"))

    def test_unmatched_pattern_raises_naming_it(self):
        with self.assertRaisesRegex(ValueError, r"\['heads/nope'\] matched no parameter"):
            tree.make_mask(_params(), ("heads/score", "heads/nope"))
        # Segment boundaries: 'hea' is not a prefix module of 'heads'.
        with self.assertRaisesRegex(ValueError, "'hea'.*matched no parameter"):
            tree.make_mask(_params(), "hea")
        # The message lists the modules to help fix the pattern.
        with self.assertRaisesRegex(ValueError, "heads/score2"):
            tree.make_mask(_params(), "nope/**")


class PartitionTest(absltest.TestCase):
    def test_partition_merge_round_trip_is_exact(self):
        params = _params()
        mask = tree.make_mask(params, ("a/y", "heads/score/bias"))
        selected, rest = tree.partition(mask, params)
        self.assertEqual(tree.leaf_paths(selected), ["a/y/deep/k", "a/y/k", "heads/score/bias"])
        self.assertLen(jax.tree.leaves(rest), 8 - 3)
        self.assertIsNone(selected["top"])
        self.assertIsNone(rest["a"]["y"]["k"])
        merged = tree.merge(mask, selected, rest)
        self.assertEqual(jax.tree.structure(merged), jax.tree.structure(params))
        for got, want in zip(jax.tree.leaves(merged), jax.tree.leaves(params), strict=True):
            self.assertIs(got, want)  # The very same arrays: no copies, no arithmetic.

    def test_select_and_merge_with_new_values(self):
        params = _params()
        mask = tree.make_mask(params, "heads")
        new = jax.tree.map(lambda x: x + 10.0, tree.select(mask, params))
        merged = tree.merge(mask, new, params)
        np.testing.assert_array_equal(merged["heads"]["score"]["kernel"], np.full((2, 1), 11.0))
        np.testing.assert_array_equal(merged["top"], np.arange(3.0))

    def test_module_names_and_num_bytes(self):
        self.assertEqual(
            tree.module_names(_params()), {"a/x", "a/y", "heads/score", "heads/score2", "top"}
        )
        # float32: (2 + 1 + 3 + 1 + 2 + 1 + 2 + 3) elements * 4 bytes.
        self.assertEqual(tree.num_bytes(_params()), 15 * 4)


class ArithmeticTest(absltest.TestCase):
    def test_weighted_sum_by_hand(self):
        stacked = {
            "u": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
            "v": jnp.array([1.0, 2, 3]),
        }
        got = tree.weighted_sum(jnp.array([0.5, 0.0, 2.0]), stacked)
        # u: 0.5 * [1, 2] + 0 * [3, 4] + 2 * [5, 6] = [10.5, 13]; v: 0.5 + 0 + 6 = 6.5.
        np.testing.assert_allclose(got["u"], [10.5, 13.0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["v"], 6.5, rtol=0, atol=1e-6)

    def test_weighted_sum_per_leaf_weights(self):
        stacked = {"u": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "v": jnp.array([1.0, 2.0]), "n": None}
        weights = {"u": jnp.array([1.0, -1.0]), "v": jnp.array([3.0, 0.5]), "n": None}
        got = tree.weighted_sum(weights, stacked)
        # u: [1, 2] - [3, 4] = [-2, -2]; v: 3 * 1 + 0.5 * 2 = 4.
        np.testing.assert_allclose(got["u"], [-2.0, -2.0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["v"], 4.0, rtol=0, atol=1e-6)
        self.assertIsNone(got["n"])

    def test_weighted_sum_numpy_weights(self):
        # The docstring's "weights: [n]" holds for a NumPy [n] too, not only a jax.Array.
        stacked = {"u": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "v": jnp.array([1.0, 2.0])}
        got = tree.weighted_sum(np.array([1.0, 2.0], np.float32), stacked)
        # u: [1, 2] + 2 * [3, 4] = [7, 10]; v: 1 + 2 * 2 = 5.
        np.testing.assert_allclose(got["u"], [7.0, 10.0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["v"], 5.0, rtol=0, atol=1e-6)

    def test_l2_norm(self):
        # sqrt(3^2 + 4^2 + 12^2) = sqrt(169) = 13.
        norm = tree.l2_norm({"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.array([[12.0]])}})
        np.testing.assert_allclose(norm, 13.0, rtol=0, atol=1e-6)
        self.assertEqual(norm.dtype, jnp.float32)
        np.testing.assert_array_equal(tree.l2_norm({"a": None}), 0.0)  # No leaves.
        # bfloat16 leaves are summed in float32.
        np.testing.assert_allclose(
            tree.l2_norm(jnp.full((4,), 0.5, jnp.bfloat16)), 1.0, rtol=0, atol=1e-6
        )

    def test_squared_l2_norm_and_its_gradient_at_zero(self):
        # 3^2 + 4^2 + 12^2 = 169.
        value = tree.squared_l2_norm({"a": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])})
        np.testing.assert_allclose(value, 169.0, rtol=0, atol=1e-5)
        # d/dx sum(x^2) = 2x: 0 at 0 (FedProx's penalty starts there), where the norm's
        # gradient is NaN (0 * inf).
        zero = {"a": jnp.zeros(2)}
        grad = jax.grad(tree.squared_l2_norm)(zero)
        np.testing.assert_array_equal(grad["a"], [0.0, 0.0])
        grad = jax.grad(tree.squared_l2_norm)({"a": jnp.array([1.0, -2.0])})
        np.testing.assert_allclose(grad["a"], [2.0, -4.0], rtol=0, atol=1e-6)


if __name__ == "__main__":
    absltest.main()
