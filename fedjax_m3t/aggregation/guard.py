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
"""Faulty updates: rejected before any aggregator sees them, counted per institution.

The round (simulation/round.py) screens every cohort slot's update with one
`Guard` before its aggregator, whatever the rule:

  * non-finite (on by default): an update with any NaN or Inf in a federated
    leaf. Checked per client as it is produced, so it works in streaming mode.
  * norm outlier (off by default, `max_norm_ratio=k`): an update whose L2 norm
    (over all its leaves) exceeds k times the median norm of the cohort's
    accepted, real updates. It needs the whole cohort's norms, so with it the
    round keeps the cohort's updates (stacked mode; a streaming aggregator is
    then fed them at once through base.as_stacked: the same sums).

A rejected update gets weight 0 on every leaf and its delta is replaced by
zeros (0 * NaN is NaN: a weight alone would not stop it), so it reaches neither
the aggregate nor the server optimizer's moments; its client metrics are left
out of the round's means too. The round reports 'guard/rejected' (slots
rejected this round), 'guard/nonfinite', 'guard/norm' and
'guard/rejected_by_client' (float32 [num_clients], 1 where the client's update
was rejected), which the run loop writes per institution as
'guard/rejected/<client name>' (`per_client_metrics`).

A client's own (local) state is written back even when its update is rejected:
it never leaves the client.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base

NONFINITE_KEY = "guard/nonfinite"
NORM_KEY = "guard/norm"
REJECTED_KEY = "guard/rejected"
BY_CLIENT_KEY = "guard/rejected_by_client"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Guard:
    """Which updates the round rejects.

    Attributes:
      nonfinite: reject updates with a NaN or Inf.
      max_norm_ratio: reject updates whose norm exceeds this many times the
        cohort's median norm (None: no norm rule; > 1).
    """

    nonfinite: bool = True
    max_norm_ratio: float | None = None

    def __post_init__(self):
        if self.max_norm_ratio is not None and self.max_norm_ratio <= 1:
            raise ValueError(f"max_norm_ratio must be > 1, got {self.max_norm_ratio}.")

    @property
    def needs_cohort(self) -> bool:
        """Whether screening needs the whole cohort's updates (stacked mode)."""
        return self.max_norm_ratio is not None


OFF = Guard(nonfinite=False)
"""No screening (the engine's behaviour before the guard)."""


def _row_shape(x: jax.Array, flags: jax.Array) -> jax.Array:
    return flags.reshape((-1,) + (1,) * (x.ndim - 1))


def reject(deltas: t.PyTree, weights: t.PyTree, rejected: jax.Array) -> tuple:
    """Zeroes the deltas and weights of the rejected rows.

    Args:
      deltas: leaves [k, ...].
      weights: per-leaf [k].
      rejected: bool [k].

    Returns:
      (deltas, weights) with the rejected rows 0 (exactly: jnp.where, not a product).
    """
    deltas = jax.tree.map(
        lambda x: jnp.where(_row_shape(x, rejected), jnp.zeros((), x.dtype), x), deltas
    )
    weights = jax.tree.map(lambda w: jnp.where(rejected, jnp.zeros((), w.dtype), w), weights)
    return deltas, weights


def screen_nonfinite(
    guard: Guard, deltas: t.PyTree, weights: t.PyTree, num_rows: int | None = None
) -> tuple:
    """Rejects the rows of stacked deltas [k, ...] holding a NaN or Inf.

    Args:
      num_rows: k, needed when no leaf is federated (e.g. local-only training).

    Returns:
      (deltas, weights, rejected bool [k]); nothing is rejected when the guard's
      `nonfinite` is off.
    """
    leaves = jax.tree.leaves(weights)
    k = leaves[0].shape[0] if leaves else num_rows
    if not guard.nonfinite or not jax.tree.leaves(deltas):
        return deltas, weights, jnp.zeros((k,), bool)
    finite = [jnp.all(jnp.isfinite(x.reshape(k, -1)), axis=1) for x in jax.tree.leaves(deltas)]
    rejected = ~jnp.all(jnp.stack(finite), axis=0)
    return *reject(deltas, weights, rejected), rejected


def screen_norms(
    guard: Guard, updates: base.StackedUpdates, valid: jax.Array
) -> tuple[base.StackedUpdates, jax.Array]:
    """Rejects rows whose norm exceeds max_norm_ratio x the median norm of the others.

    Args:
      guard: with max_norm_ratio set (otherwise nothing is rejected).
      updates: the cohort's rows [k, ...] (already screened for non-finite values).
      valid: [k], > 0 for real slots that were not rejected before; only these
        enter the median and can be rejected.

    Returns:
      (updates with the rejected rows zeroed, rejected bool [k]).
    """
    k = valid.shape[0]
    if guard.max_norm_ratio is None or not jax.tree.leaves(updates.delta):
        return updates, jnp.zeros((k,), bool)
    norms = jax.vmap(tree.l2_norm)(updates.delta)
    real = valid > 0
    median = jnp.nanmedian(jnp.where(real, norms, jnp.nan))
    rejected = real & (norms > guard.max_norm_ratio * median)
    delta, weight = reject(updates.delta, updates.weight, rejected)
    return updates._replace(delta=delta, weight=weight), rejected


def round_metrics(
    rejected_nonfinite: jax.Array,
    rejected_norm: jax.Array,
    valid: jax.Array,
    client_id: jax.Array,
    num_clients: int,
) -> dict:
    """The guard's round metrics (see the module docstring) from per-slot flags [k].

    Args:
      rejected_nonfinite, rejected_norm: bool [k].
      valid: [k], > 0 for real slots.
      client_id: int32 [k], federation-wide ids (padding slots past the end).
      num_clients: clients in the federation.
    """
    real = valid > 0
    nonfinite = rejected_nonfinite & real
    norm = rejected_norm & real
    rejected = (nonfinite | norm).astype(jnp.float32)
    by_client = jnp.zeros((num_clients,), jnp.float32).at[client_id].add(rejected, mode="drop")
    return {
        REJECTED_KEY: jnp.sum(rejected),
        NONFINITE_KEY: jnp.sum(nonfinite.astype(jnp.float32)),
        NORM_KEY: jnp.sum(norm.astype(jnp.float32)),
        BY_CLIENT_KEY: by_client,
    }


def per_client_metrics(metrics: dict, client_names) -> dict:
    """Host side: replaces 'guard/rejected_by_client' by 'guard/rejected/<name>' scalars.

    Only the clients rejected this round get a key (a sparse record).

    Args:
      metrics: a round's metrics, fetched to the host.
      client_names: the federation's client names, in id order.
    """
    if BY_CLIENT_KEY not in metrics:
        return metrics
    metrics = dict(metrics)
    counts = np.asarray(metrics.pop(BY_CLIENT_KEY))
    for c in np.flatnonzero(counts):
        metrics[f"guard/rejected/{client_names[c]}"] = float(counts[c])
    return metrics


ID_KEY = "guard/client_id"
"""Per-slot client ids the round carries in its client metrics to the guard."""


def screen_round(
    guard: Guard,
    acc,
    client_metrics: dict,
    valid: jax.Array,
    num_clients: int,
    stacked: bool,
) -> tuple:
    """The round's step after the clients ran: the norm rule, and the metrics.

    Args:
      guard: the round's guard.
      acc: the aggregator's accumulator, or StackedUpdates when `stacked`.
      client_metrics: per-slot [k] metrics, with ID_KEY and NONFINITE_KEY (bool)
        added by the round.
      valid: [k], > 0 for real slots.
      num_clients: clients in the federation.
      stacked: whether acc holds the cohort's rows (required for the norm rule).

    Returns:
      (acc, client metrics of the accepted slots (0 elsewhere, so a NaN loss of a
      rejected client cannot reach the means), accepted float32 [k], guard metrics).
    """
    client_metrics = dict(client_metrics)
    ids = client_metrics.pop(ID_KEY)
    nonfinite = client_metrics.pop(NONFINITE_KEY)
    norm = jnp.zeros_like(nonfinite)
    if stacked and guard.needs_cohort:
        acc, norm = screen_norms(guard, acc, jnp.where(nonfinite, 0.0, valid))
    metrics = round_metrics(nonfinite, norm, valid, ids, num_clients)
    accepted = jnp.where(nonfinite | norm, 0.0, valid)
    client_metrics = jax.tree.map(lambda v: jnp.where(accepted > 0, v, 0.0), client_metrics)
    return acc, client_metrics, accepted, metrics
