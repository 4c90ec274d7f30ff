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
"""Robust aggregators on hand-checkable rows: median, trimmed mean, norm bounding,
Krum / multi-Krum, geometric median, per-module rules and their spec strings."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from absl.testing import absltest, parameterized

from fedjax_m3t.aggregation import (
    base,
    coordinate_median,
    geometric_median,
    krum,
    norm_bound,
    per_module,
    selective,
    specs,
    trimmed_mean,
)

ROWS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], np.float32)


def _finalize(aggregator, rows, weights=None, padding=0):
    """The rule over rows [k, d] as one leaf 'w', plus `padding` garbage slots of weight 0."""
    rows = np.asarray(rows, np.float32)
    weights = np.ones(len(rows), np.float32) if weights is None else np.asarray(weights)
    if padding:
        rows = np.concatenate([rows, np.full((padding, rows.shape[1]), 1e6, np.float32)])
        weights = np.concatenate([weights, np.zeros(padding, np.float32)])
    updates = base.StackedUpdates({"w": jnp.asarray(rows)}, {"w": jnp.asarray(weights)})
    aggregator = base.as_stacked(aggregator)
    out, _ = jax.jit(aggregator.finalize)(updates, (), jax.random.key(0))
    return np.asarray(out.delta["w"])


class FixedRowsTest(parameterized.TestCase):
    @parameterized.parameters(0, 2)
    def test_median(self, padding):
        np.testing.assert_array_equal(
            _finalize(coordinate_median.AGGREGATOR, ROWS, padding=padding), [4.0, 5.0, 6.0]
        )

    @parameterized.parameters(0, 2)
    def test_trimmed_mean_with_one_attacker(self, padding):
        # Column 0 sorted: -4, 1, 4, 7; one dropped per side: (1 + 4) / 2 = 2.5.
        rows = np.concatenate([ROWS, [[-4.0, -5.0, -6.0]]])
        got = _finalize(trimmed_mean.aggregator(trim=1), rows, padding=padding)
        np.testing.assert_allclose(got, [2.5, 3.5, 4.5], rtol=0, atol=1e-6)

    def test_trimmed_mean_shrinks_the_trim_when_too_few_rows(self):
        # n = 3, trim 2: shrunk to floor(2 / 2) = 1 per side, the median.
        got = _finalize(trimmed_mean.aggregator(trim=2), ROWS)
        np.testing.assert_array_equal(got, [4.0, 5.0, 6.0])

    @parameterized.parameters(0, 2)
    def test_krum_neighbour_conventions(self, padding):
        # An attacker in slot 0 at [100, 100, 100]; n = 4, f = 1. Squared distances:
        # honest neighbours 27 apart (rows 1-2, 2-3), rows 1-3 108 apart.
        # n - f - 2 = 1 neighbour: rows 1, 2, 3 score 27 (tie -> lowest slot, row 1).
        # n - f - 1 = 2 neighbours: 27 + 108 = 135, 27 + 27 = 54, 135 -> row 2.
        rows = np.concatenate([[[100.0, 100.0, 100.0]], ROWS])
        blanchard = _finalize(krum.aggregator(f=1), rows, padding=padding)
        np.testing.assert_array_equal(blanchard, [1.0, 2.0, 3.0])
        other = _finalize(krum.aggregator(f=1, neighbours="n-f-1"), rows, padding=padding)
        np.testing.assert_array_equal(other, [4.0, 5.0, 6.0])
        # Multi-Krum, m = 2 (n-f-1): rows 2 (54) and 1 (135, ties with 3 -> lower slot).
        multi = _finalize(krum.aggregator(f=1, m=2, neighbours="n-f-1"), rows, padding=padding)
        np.testing.assert_allclose(multi, [2.5, 3.5, 4.5], rtol=0, atol=1e-6)

    def test_krum_scores_by_hand(self):
        rows = jnp.asarray(np.concatenate([[[100.0, 100.0, 100.0]], ROWS]))
        keep = jnp.ones(4, bool)
        # Attacker: nearest [7, 8, 9]: 93^2 + 92^2 + 91^2 = 25394; next [4, 5, 6]:
        # 96^2 + 95^2 + 94^2 = 27077.
        np.testing.assert_allclose(krum.scores(rows, keep, 1), [25394.0, 27.0, 27.0, 27.0])
        np.testing.assert_allclose(
            krum.scores(rows, keep, 1, "n-f-1"), [25394.0 + 27077.0, 135.0, 54.0, 135.0]
        )

    def test_krum_on_the_three_rows_picks_an_honest_one(self):
        # n = 3, f = 1: n - f - 2 = 0 is clipped to 1 neighbour; all score 27, slot 0 wins.
        np.testing.assert_array_equal(_finalize(krum.aggregator(f=1), ROWS), ROWS[0])

    def test_geometric_median_matches_scipy(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(7, 3)).astype(np.float32)
        alpha = rng.uniform(1.0, 3.0, size=7).astype(np.float32)
        got = _finalize(geometric_median.aggregator(num_steps=200, nu=1e-8), x, alpha, padding=2)
        ref = scipy.optimize.minimize(
            lambda z: alpha @ np.linalg.norm(x - z, axis=1),
            x.mean(0),
            method="Nelder-Mead",
            options=dict(xatol=1e-9, fatol=1e-12, maxiter=20000),
        ).x
        # Nelder-Mead stops near the optimum; Weiszfeld's objective is no worse.
        objective = lambda z: float(geometric_median.objective(x, alpha / alpha.sum(), z))
        self.assertLessEqual(objective(got), objective(ref) + 1e-6)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)

    def test_norm_bound_clips_then_averages(self):
        # Norms 5 and 1, bound 1: [3, 4] -> [0.6, 0.8]; weights 1 and 3.
        got = _finalize(norm_bound.aggregator(bound=1.0), [[3.0, 4.0], [0.0, 1.0]], [1.0, 3.0])
        np.testing.assert_allclose(got, [0.15, 0.95], rtol=0, atol=1e-6)


class PerLeafTest(parameterized.TestCase):
    @parameterized.named_parameters(
        ("median", coordinate_median.AGGREGATOR),
        ("trimmed", trimmed_mean.aggregator(trim=1)),
        ("krum", krum.aggregator(f=1)),
        ("geomed", geometric_median.aggregator()),
    )
    def test_clients_without_the_module_are_left_out(self, rule):
        # Module 'a' held by all 3 clients, 'b' only by client 1 (its exact delta);
        # 'c' by nobody (zero delta, weight 0).
        deltas = {
            "a": {"k": jnp.asarray(ROWS)},
            "b": {"k": jnp.asarray([[1e6], [-2.0], [1e6]])},
            "c": {"k": jnp.ones((3, 2))},
        }
        weights = {
            "a": {"k": jnp.ones(3)},
            "b": {"k": jnp.asarray([0.0, 4.0, 0.0])},
            "c": {"k": jnp.zeros(3)},
        }
        updates = base.StackedUpdates(deltas, weights)
        out, _ = jax.jit(rule.finalize)(updates, (), jax.random.key(0))
        np.testing.assert_allclose(out.delta["b"]["k"], [-2.0], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(out.delta["c"]["k"], [0.0, 0.0])
        self.assertEqual(float(out.weight["b"]["k"]), 4.0)
        self.assertEqual(float(out.weight["c"]["k"]), 0.0)


class BreakdownTest(parameterized.TestCase):
    """f = 3 of n = 10 attackers at 1e3 in every coordinate (below each breakdown point)."""

    def _rows(self):
        rng = np.random.default_rng(0)
        honest = rng.normal(loc=0.5, size=(7, 4)).astype(np.float32)
        return honest, np.concatenate([honest, np.full((3, 4), 1e3, np.float32)])

    @parameterized.named_parameters(
        # Coordinate rules: each coordinate within the honest range (f < n/2; trim >= f).
        ("median", coordinate_median.AGGREGATOR, "linf", 1.0),
        ("trimmed", trimmed_mean.aggregator(trim=3), "linf", 1.0),
        # Krum (n >= 2f + 3): an honest row (multi-Krum: a mean of honest rows).
        ("krum", krum.aggregator(f=3), "l2", 1.0),
        ("multi_krum", krum.aggregator(f=3, m=3), "l2", 1.0),
        # Geometric median, weight fraction a = 0.3: 2 (1 - a) / (1 - 2 a) = 3.5.
        ("geomed", geometric_median.aggregator(), "l2", 3.5),
    )
    def test_stays_near_the_honest_mean(self, rule, norm, factor):
        honest, rows = self._rows()
        mean = honest.mean(0)
        size = (lambda v: np.abs(v).max()) if norm == "linf" else np.linalg.norm
        bound = factor * max(size(x - mean) for x in honest)
        self.assertLessEqual(size(_finalize(rule, rows) - mean), bound + 1e-4)
        # Plain FedAvg moves by 0.3 * (1e3 - ~0.5) per coordinate, far past the bound.
        self.assertGreater(size(_finalize(selective.AGGREGATOR, rows) - mean), 10 * bound)

    def test_norm_bound_limits_the_attackers_pull(self):
        honest, rows = self._rows()
        mean = honest.mean(0)
        bound = float(max(np.linalg.norm(x) for x in honest))  # Honest rows stay unclipped.
        got = _finalize(norm_bound.aggregator(bound=bound), rows)
        # Attackers hold 3/10 of the weight: <= 0.3 * (bound + ||honest mean||).
        self.assertLessEqual(np.linalg.norm(got - mean), 0.3 * (bound + np.linalg.norm(mean)))
        self.assertGreater(np.linalg.norm(_finalize(selective.AGGREGATOR, rows) - mean), 100.0)


class PerModuleAndSpecsTest(absltest.TestCase):
    def _updates(self):
        rows = np.concatenate([ROWS, [[-4.0, -5.0, -6.0]]])
        deltas = {"heads": {"y": {"k": jnp.asarray(rows)}}, "backbone": {"k": jnp.asarray(rows)}}
        weights = jax.tree.map(lambda _: jnp.ones(4), deltas)
        return base.StackedUpdates(deltas, weights)

    def test_each_module_gets_its_rule(self):
        rule = specs.build("heads/**: median; trimmed_mean(trim=1)")
        updates = self._updates()
        state = rule.init_state(jax.tree.map(lambda x: x[0], updates.delta))
        out, _ = jax.jit(rule.finalize)(updates, state, jax.random.key(0))
        # heads: median of 4 rows = mean of the middle two: (1 + 4) / 2 = 2.5, ...
        np.testing.assert_allclose(out.delta["heads"]["y"]["k"], [2.5, 3.5, 4.5])
        np.testing.assert_allclose(out.delta["backbone"]["k"], [2.5, 3.5, 4.5])
        # The default 'mean' for leaves no glob selects: (1 + 4 + 7 - 4) / 4 = 2, ...
        rule = specs.build("heads/**: krum(f=1)")
        out, _ = jax.jit(rule.finalize)(updates, ((), ()), jax.random.key(0))
        np.testing.assert_allclose(out.delta["backbone"]["k"], [2.0, 2.5, 3.0])
        np.testing.assert_array_equal(out.delta["heads"]["y"]["k"], [1.0, 2.0, 3.0])

    def test_bad_specs_are_refused(self):
        with self.assertRaisesRegex(ValueError, "Unknown aggregator 'nope'"):
            specs.build("nope")
        with self.assertRaisesRegex(ValueError, "unknown parameter"):
            specs.build("krum(g=1)")
        with self.assertRaisesRegex(ValueError, "not key=number"):
            specs.build("krum(f=x)")
        with self.assertRaisesRegex(ValueError, "neighbours"):
            specs.build("krum(neighbours=3)")
        rule = per_module.by_module((("encoders/**", coordinate_median.AGGREGATOR),))
        with self.assertRaisesRegex(ValueError, "matched no parameter"):
            rule.init_state({"heads": {"k": jnp.zeros(2)}})

    def test_specs_carry_parameters(self):
        # trim=0 is the plain mean; trim=1 drops -4 and 7 in column 0.
        rows = np.concatenate([ROWS, [[-4.0, -5.0, -6.0]]])
        np.testing.assert_allclose(_finalize(specs.build("trimmed_mean(trim=0)"), rows)[0], 2.0)
        np.testing.assert_allclose(_finalize(specs.build("trimmed_mean"), rows)[0], 2.5)
        np.testing.assert_allclose(
            _finalize(specs.build("multi_krum(f=1, m=2, neighbours=1)"), rows[[3, 0, 1, 2]])[0],
            2.5,
        )


if __name__ == "__main__":
    absltest.main()
