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
"""Coordinate-wise trimmed mean of client deltas (Yin et al., 2018, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates", arXiv:1803.01498).

For each coordinate, over the n cohort slots that trained the leaf
(rows.coordinatewise: padding slots and clients without the module are left out),
the f largest and the f smallest values are dropped and the n - 2f others
averaged (unweighted: the client weights only select, as in the paper). When
n <= 2f there is nothing left to average, so the trim shrinks to
floor((n - 1) / 2) per side (the median for odd n, the mean of the middle two
for even n) rather than failing inside jit.

Guarantee: with at most f attackers among the n (n > 2f), each coordinate of the
result lies between the smallest and the largest honest value of that
coordinate, whatever the attackers send.
"""

import jax
import jax.numpy as jnp

from fedjax_m3t.aggregation import base, rows


def trimmed_mean(values: jax.Array, keep: jax.Array, trim: int) -> jax.Array:
    """Per-coordinate mean after dropping `trim` values per side, over the kept rows.

    Args:
      values: float32 [k, ...].
      keep: bool [k], the rows that take part (n = keep.sum()).
      trim: values dropped per side (shrunk to floor((n - 1) / 2) when n <= 2 trim).

    Returns:
      float32 [...] (0 when no row is kept).
    """
    k = values.shape[0]
    mask = keep.reshape((-1,) + (1,) * (values.ndim - 1))
    # Rows left out sort last, so the kept values fill positions [0, n).
    ordered = jnp.sort(jnp.where(mask, values, jnp.inf), axis=0)
    n = jnp.sum(keep.astype(jnp.int32))
    f = jnp.minimum(trim, (n - 1) // 2)
    position = jnp.arange(k).reshape(mask.shape)
    inside = (position >= f) & (position < n - f)
    total = jnp.sum(jnp.where(inside, ordered, 0.0), axis=0)
    return total / jnp.maximum(n - 2 * f, 1).astype(jnp.float32)


def aggregator(trim: int = 1) -> base.Aggregator:
    """The trimmed mean, `trim` values dropped per side, as a stacked-mode Aggregator.

    >>> import jax.numpy as jnp
    >>> rule = aggregator(trim=1)
    >>> rows_ = jnp.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.], [-4., -5., -6.]])
    >>> out, _ = rule.finalize(base.StackedUpdates({'w': rows_}, {'w': jnp.ones(4)}), (), None)
    >>> out.delta['w'].tolist()
    [2.5, 3.5, 4.5]
    """
    if trim < 0:
        raise ValueError(f"trim must be >= 0, got {trim}.")

    def finalize(updates: base.StackedUpdates, agg_state: tuple, rng) -> tuple:
        del rng  # Unused: deterministic.
        rule = lambda values, keep: trimmed_mean(values, keep, trim)
        return rows.coordinatewise(rule, updates), agg_state

    return base.stacked_aggregator(finalize)
