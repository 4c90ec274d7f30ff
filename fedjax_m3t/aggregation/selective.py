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
"""Selective (masked) weighted mean of client deltas, computed as a stream.

Each parameter leaf is averaged only over the clients that hold and trained it:
client c's weight for leaf l is w[c, l] (e.g. its number of examples that have
the leaf's modality or task label; 0 if it lacks them), and

    mean[l] = sum_c w[c, l] * delta[c, l] / sum_c w[c, l],     0 where the sum is 0.

A leaf whose total weight is 0 was trained by nobody this round; the server
leaves it unchanged. The sums are accumulated chunk by chunk, so peak memory is
set by the chunk of clients in flight, not by the cohort.

The sums and the mean are at least float32 whatever the deltas' dtype (bf16
deltas lose no precision in the sum); the server step casts its update to each
param's dtype.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base

Aggregate = base.Aggregate  # Re-exported: the result type of finalize.


class Accumulator(NamedTuple):
    """Running sums (leaves match the delta tree; None at non-shared leaves).

    Attributes:
      weighted_delta: sum_c w[c, l] * delta[c, l], at least float32, leaf shapes as params.
      weight: sum_c w[c, l], float32 scalars.
    """

    weighted_delta: t.PyTree
    weight: t.PyTree


def init(delta_template: t.PyTree) -> Accumulator:
    """Zero float32 sums shaped like one client's delta (arrays or ShapeDtypeStructs)."""
    return Accumulator(
        weighted_delta=jax.tree.map(
            lambda x: jnp.zeros(x.shape, jnp.promote_types(x.dtype, jnp.float32)), delta_template
        ),
        weight=jax.tree.map(lambda _: jnp.zeros((), jnp.float32), delta_template),
    )


def accumulate(acc: Accumulator, deltas: t.PyTree, weights: t.PyTree) -> Accumulator:
    """Adds a stack of clients to the sums.

    Args:
      acc: running sums.
      deltas: leaves [k, ...] for k clients (any float dtype).
      weights: per-leaf float32 [k] weights (the delta tree's structure).

    Returns:
      The updated sums.
    """
    return acc._replace(
        weighted_delta=jax.tree.map(
            jnp.add, acc.weighted_delta, tree.weighted_sum(weights, deltas, min_dtype=jnp.float32)
        ),
        weight=jax.tree.map(lambda a, w: a + jnp.sum(w.astype(jnp.float32)), acc.weight, weights),
    )


def mean_of(acc: Accumulator) -> Aggregate:
    """Divides the sums (float32 means); leaves nobody trained get a zero delta."""
    delta = jax.tree.map(
        lambda s, w: jnp.where(w > 0, s / jnp.maximum(w, 1e-30), 0.0),
        acc.weighted_delta,
        acc.weight,
    )
    return Aggregate(delta=delta, weight=acc.weight)


def finalize(acc: Accumulator, agg_state: tuple, rng: t.PRNGKey) -> tuple[Aggregate, tuple]:
    """The selective mean (stateless and deterministic: state and key are unused)."""
    del rng  # Unused.
    return mean_of(acc), agg_state


def mean(deltas: t.PyTree, weights: t.PyTree) -> Aggregate:
    """One-shot selective mean of stacked deltas [k, ...] with per-leaf weights [k]."""
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), deltas)
    return mean_of(accumulate(init(template), deltas, weights))


AGGREGATOR = base.Aggregator(
    init_state=base.no_state,
    init=init,
    accumulate=accumulate,
    merge_across=base.psum_across,
    finalize=finalize,
)
"""The selective weighted mean as an Aggregator (the default of every algorithm)."""
