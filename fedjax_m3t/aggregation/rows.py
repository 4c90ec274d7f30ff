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
"""Shared plumbing of the stacked robust rules: who takes part, leaf by leaf or module by module.

Robust rules see `StackedUpdates` (aggregation/base.py): one row per cohort slot,
with per-leaf weights that are 0 for padding slots and for clients that do not
hold (or did not train) the leaf. Every rule here leaves those rows out:

  * coordinate-wise rules (median, trimmed mean) run leaf by leaf over the rows
    whose weight for that leaf is > 0 (`coordinatewise`);
  * vector rules (Krum, geometric median) need whole vectors, so they run module
    by module (`modulewise`): a module is a path prefix of `depth` segments
    (tree.module_names: e.g. 'heads/score', 'encoders/image'), its leaves are
    flattened into one vector per row, and a row takes part when its weight is > 0
    on every leaf of the module (the engine's weights are per module,
    local_training.leaf_weights, so this is the set of clients that trained it).

A leaf (module) nobody trained gets a zero delta and weight 0. The weights
returned are the participants' summed weights (only > 0 matters to the server).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base

CoordinateRule = Callable[[jax.Array, jax.Array], jax.Array]
"""(values float32 [k, ...], keep bool [k]) -> [...], the rule over the kept rows."""

VectorRule = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""(rows float32 [k, d], keep bool [k], weights float32 [k]) -> [d]."""


def total_weight(updates: base.StackedUpdates) -> t.PyTree:
    """Per leaf, the float32 sum of the rows' weights."""
    return jax.tree.map(lambda w: jnp.sum(w.astype(jnp.float32)), updates.weight)


def coordinatewise(rule: CoordinateRule, updates: base.StackedUpdates) -> base.Aggregate:
    """Applies `rule` to every leaf over the rows that trained it.

    Args:
      rule: see CoordinateRule; it only sees rows it may use through `keep`.
      updates: deltas [k, ...] and per-leaf weights [k].

    Returns:
      Aggregate: float32 deltas (0 where no row trained the leaf), summed weights.
    """

    def one(delta, weight):
        keep = weight > 0
        out = rule(delta.astype(jnp.float32), keep)
        return jnp.where(jnp.any(keep), out, 0.0)

    delta = jax.tree.map(one, updates.delta, updates.weight)
    return base.Aggregate(delta=delta, weight=total_weight(updates))


def module_of(path: str, depth: int) -> str:
    """The module a leaf belongs to: its path's first `depth` segments (0: the whole tree)."""
    return "/".join(path.split("/")[:depth]) if depth else ""


def modulewise(rule: VectorRule, updates: base.StackedUpdates, depth: int = 2) -> base.Aggregate:
    """Applies a vector `rule` module by module (see the module docstring).

    Args:
      rule: see VectorRule.
      updates: deltas [k, ...] and per-leaf weights [k].
      depth: path segments that name a module (0: all leaves are one vector).

    Returns:
      Aggregate: float32 deltas (0 for modules no row trained), summed weights.
    """
    paths = tree.leaf_paths(updates.delta)
    deltas, treedef = jax.tree.flatten(updates.delta)
    weights = jax.tree.leaves(updates.weight)
    groups: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        groups.setdefault(module_of(path, depth), []).append(i)
    out = [None] * len(deltas)
    for members in groups.values():
        k = deltas[members[0]].shape[0]
        rows = jnp.concatenate(
            [deltas[i].astype(jnp.float32).reshape(k, -1) for i in members], axis=1
        )
        keep = jnp.all(jnp.stack([weights[i] > 0 for i in members]), axis=0)
        alpha = jnp.where(keep, weights[members[0]].astype(jnp.float32), 0.0)
        vector = jnp.where(jnp.any(keep), rule(rows, keep, alpha), 0.0)
        start = 0
        for i in members:
            size = deltas[i][0].size
            out[i] = vector[start : start + size].reshape(deltas[i].shape[1:])
            start += size
    delta = jax.tree.unflatten(treedef, out)
    return base.Aggregate(delta=delta, weight=total_weight(updates))


def zero_rows(rows: jax.Array, keep: jax.Array) -> jax.Array:
    """rows with the rows not kept set to 0 (so that no NaN/Inf there can leak into sums)."""
    return jnp.where(keep.reshape((-1,) + (1,) * (rows.ndim - 1)), rows, 0.0)
