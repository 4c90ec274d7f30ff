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
"""The client level of the tree: the selective weighted mean per group.

The streaming aggregator of `fedjax_m3t.aggregation.selective`, with every sum
kept per group: a chunk of clients adds `segment_sum(w[c, l] * delta[c, l],
group[c])` to sums of shape [num_groups, ...] (one pass over the chunk, no loop
over groups), so

    mean[g, l] = sum_{c in g} w[c, l] delta[c, l] / sum_{c in g} w[c, l],   0 if no weight.

It is a grouped aggregator (Aggregator.grouped: the round passes each chunk's
groups); sharded cohorts combine devices with a psum as usual. The aggregator
is stateless: `finalize` passes `agg_state` (the hierarchy's group copies,
hierarchy.hierarchical.HierarchyState) through unchanged.
"""

import jax
import jax.numpy as jnp

from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base, selective


def _expand(w: jax.Array, like: jax.Array) -> jax.Array:
    return w.reshape(w.shape + (1,) * (like.ndim - w.ndim))


def aggregator(num_groups: int) -> base.Aggregator:
    """The per-group selective mean as a grouped Aggregator.

    Its `finalize` returns Aggregate(delta leaves [num_groups, ...], weight per
    leaf [num_groups]): each group's mean delta and total weight.

    Args:
      num_groups: groups; the clients' ClientContext.group must lie in [0, num_groups)
        (segment_sum drops other ids: such a client would count nowhere), as
        levels.from_federation guarantees for the federation's groups.
    """

    def init(delta_template: t.PyTree) -> selective.Accumulator:
        kind = lambda x: jnp.promote_types(x.dtype, jnp.float32)
        return selective.Accumulator(
            weighted_delta=jax.tree.map(
                lambda x: jnp.zeros((num_groups,) + tuple(x.shape), kind(x)), delta_template
            ),
            weight=jax.tree.map(lambda _: jnp.zeros((num_groups,), jnp.float32), delta_template),
        )

    def accumulate(acc, deltas, weights, groups):
        def weighted(w, d):
            kind = jnp.promote_types(d.dtype, jnp.float32)
            wd = d.astype(kind) * _expand(w.astype(kind), d)
            return jax.ops.segment_sum(wd, groups, num_segments=num_groups)

        add = lambda w: jax.ops.segment_sum(w.astype(jnp.float32), groups, num_groups)
        return selective.Accumulator(
            weighted_delta=jax.tree.map(
                lambda a, w, d: a + weighted(w, d), acc.weighted_delta, weights, deltas
            ),
            weight=jax.tree.map(lambda a, w: a + add(w), acc.weight, weights),
        )

    def finalize(acc, agg_state, rng):
        del rng  # Unused: deterministic.
        delta = jax.tree.map(
            lambda s, w: jnp.where(_expand(w, s) > 0, s / _expand(jnp.maximum(w, 1e-30), s), 0.0),
            acc.weighted_delta,
            acc.weight,
        )
        return base.Aggregate(delta=delta, weight=acc.weight), agg_state

    return base.Aggregator(
        init_state=base.no_state,
        init=init,
        accumulate=accumulate,
        merge_across=base.psum_across,
        finalize=finalize,
        grouped=True,
    )
