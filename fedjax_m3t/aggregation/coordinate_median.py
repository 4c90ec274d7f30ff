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
"""Coordinate-wise median of client deltas (Yin et al., 2018, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates", arXiv:1803.01498).

Selective like the mean: for each leaf, the median runs over the cohort slots
whose weight for that leaf is > 0 (clients that hold and trained the module);
padding slots and clients without the module are left out, and a leaf nobody
trained gets a zero delta and weight 0. The weights only select; they do not
weight the median. A non-additive rule, so it runs in the round's stacked mode
(aggregation/base.py: memory is the cohort's deltas).
"""

import jax
import jax.numpy as jnp

from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base


def finalize(
    updates: base.StackedUpdates, agg_state: tuple, rng: t.PRNGKey
) -> tuple[base.Aggregate, tuple]:
    """Per-coordinate median over the slots that trained each leaf.

    Args:
      updates: deltas [k, ...] and per-leaf weights [k].
      agg_state: () (stateless).
      rng: unused (deterministic).

    Returns:
      (Aggregate with float32 medians and the summed weights, agg_state).
    """
    del rng  # Unused.

    def median(delta, weight):
        keep = (weight > 0).reshape((-1,) + (1,) * (delta.ndim - 1))
        values = jnp.where(keep, delta.astype(jnp.float32), jnp.nan)
        return jnp.where(jnp.any(weight > 0), jnp.nanmedian(values, axis=0), 0.0)

    delta = jax.tree.map(median, updates.delta, updates.weight)
    weight = jax.tree.map(lambda w: jnp.sum(w.astype(jnp.float32)), updates.weight)
    return base.Aggregate(delta=delta, weight=weight), agg_state


AGGREGATOR = base.stacked_aggregator(finalize)
"""The coordinate-wise median as a stacked-mode Aggregator."""
