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
"""Norm bounding: each client's update is clipped to a fixed L2 norm, then averaged
(Sun et al., 2019, "Can You Really Backdoor Federated Learning?", arXiv:1911.07963).

Client c's delta d_c (all its federated leaves together) becomes
d_c * min(1, bound / ||d_c||), and the clipped deltas are averaged with the
selective weighted mean (aggregation/selective.py). A streaming rule: clipping is
per client, so the cohort is never held at once.

Guarantee: every client moves the aggregate by at most its weight share times
the bound. With attackers holding weight fraction a and honest deltas of norm
<= bound (left unclipped), ||aggregate - honest mean|| <= a * (bound + ||honest mean||).
"""

import jax
import jax.numpy as jnp

from fedjax_m3t import tree
from fedjax_m3t.aggregation import base, selective


def clip_rows(deltas, bound: float):
    """Scales each row (client) of stacked deltas [k, ...] to L2 norm <= bound.

    Args:
      deltas: leaves [k, ...]; a row's norm is over all its leaves.
      bound: the largest norm kept (> 0).

    Returns:
      (clipped deltas with the input's dtypes, float32 [k] norms before clipping).
    """
    norms = jax.vmap(tree.l2_norm)(deltas)
    scale = jnp.minimum(1.0, bound / jnp.maximum(norms, 1e-30))
    clipped = jax.tree.map(
        lambda x: (x * scale.reshape((-1,) + (1,) * (x.ndim - 1))).astype(x.dtype), deltas
    )
    return clipped, norms


def aggregator(bound: float = 1.0) -> base.Aggregator:
    """Norm bounding then the selective mean, as a streaming Aggregator.

    >>> import jax.numpy as jnp
    >>> rule = aggregator(bound=1.0)
    >>> deltas = {'w': jnp.array([[3., 4.], [0.6, 0.8]])}   # norms 5 and 1
    >>> acc = rule.accumulate(rule.init({'w': deltas['w'][0]}), deltas, {'w': jnp.ones(2)})
    >>> rule.finalize(acc, (), None)[0].delta['w'].tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}.")

    def accumulate(acc, deltas, weights):
        return selective.accumulate(acc, clip_rows(deltas, bound)[0], weights)

    return selective.AGGREGATOR._replace(accumulate=accumulate)
