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
"""The aggregator interface: stateful, keyed reductions of client deltas.

Two modes, chosen by `Aggregator.stacked`:

  * streaming (additive rules: weighted means, sums with noise, compression of
    sums): the round feeds clients chunk by chunk to `accumulate`, combines the
    per-device partial accumulators with `merge_across(acc, axis)` (inside
    `shard_map`; the default is a `psum`, so streaming accumulators are sums), and
    calls `finalize` once. Peak memory is set by the chunk of clients in flight.
  * stacked (non-additive rules: coordinate median, trimmed mean, Krum): the round
    keeps every cohort slot's delta and weight, `StackedUpdates` with leaves
    [padded_cohort, ...] (padding slots and leaves a client did not train carry
    weight 0: rules must ignore them); inside shard_map `merge_across` sees each
    device's rows (default: kept as they are), and the round joins them along the
    cohort axis (the shard_map output is sharded over the devices) before
    `finalize` sees the whole cohort. Memory:
    padded_cohort x the federated params' bytes, on every device, on top of the
    chunk in flight; use streaming rules where they exist.

`finalize(acc, agg_state, rng) -> (Aggregate, agg_state)`: the aggregator's state
lives in `ServerState.agg_state` (error feedback, robust-rule history, secure
aggregation bookkeeping) and its key is drawn per round by the engine (noise on
the sum, random projections).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from fedjax_m3t import typing as t


class Aggregate(NamedTuple):
    """The aggregated update.

    Attributes:
      delta: the aggregated delta per leaf (0 where nobody trained it).
      weight: total weight per leaf, float32 scalars; 0 means untrained this round
        (the server step then leaves the leaf and its optimizer state unchanged).
    """

    delta: t.PyTree
    weight: t.PyTree


class StackedUpdates(NamedTuple):
    """Every cohort slot's update, for stacked aggregators.

    Attributes:
      delta: leaves [k, ...], one row per cohort slot (padding slots included).
      weight: per-leaf float32 [k]; 0 for padding slots and untrained leaves.
      client_id: int32 [k], each slot's federation-wide client id (padding slots:
        an id past the last client), filled by the round; None where unknown (rules
        that do not need it, updates stacked by hand). Simulated attacks that
        collude across the cohort (attacks/updates.py) read it.
    """

    delta: t.PyTree
    weight: t.PyTree
    client_id: jax.Array | None = None


def psum_across(acc: Any, axis: str) -> Any:
    """The default merge of streaming accumulators: their sum over the mesh axis."""
    return jax.lax.psum(acc, axis)


def keep_rows(acc: StackedUpdates, axis: str) -> StackedUpdates:
    """The default per-device step of stacked updates: none (the round joins the rows)."""
    del axis  # Unused: the shard_map output concatenates the devices' rows.
    return acc


def no_state(delta_template: t.PyTree) -> tuple:
    """init_state of a stateless aggregator."""
    del delta_template  # Unused.
    return ()


class Aggregator(NamedTuple):
    """Pure functions of an aggregation rule.

    Attributes:
      init_state: delta template (one client's, arrays or ShapeDtypeStructs) ->
        the aggregator state kept in ServerState.agg_state.
      init: delta template -> empty accumulator (streaming mode; unused when stacked).
      accumulate: (acc, deltas [k, ...], per-leaf weights [k]) -> acc (streaming mode).
      merge_across: (acc, axis name) -> acc combined over that mesh axis; called
        inside shard_map when the cohort is sharded over devices (streaming: must
        return a device-invariant result, e.g. a psum; stacked: the device's rows).
      finalize: (acc or StackedUpdates, agg_state, key) -> (Aggregate, agg_state).
      stacked: whether the rule needs every update (see the module docstring).
      grouped: streaming only: `accumulate` also takes the clients' groups,
        (acc, deltas [k, ...], weights [k], groups int32 [k]) -> acc, for rules that
        reduce per group (fedjax_m3t.hierarchy: a segment sum over group ids).
      begin_round: (empty accumulator, agg_state) -> the round's starting
        accumulator, for streaming rules whose `accumulate` depends on the state
        (e.g. DP-FedAvg's adaptive clip); None: the empty one. In shard_map it is
        called per device after the empty accumulator is made device-varying.
    """

    init_state: Callable[[t.PyTree], Any]
    init: Callable[[t.PyTree], Any] | None
    accumulate: Callable[[Any, t.PyTree, t.PyTree], Any] | None
    merge_across: Callable[[Any, str], Any]
    finalize: Callable[[Any, Any, t.PRNGKey], tuple[Aggregate, Any]]
    stacked: bool = False
    grouped: bool = False
    begin_round: Callable[[Any, Any], Any] | None = None


def stacked_aggregator(
    finalize: Callable[[StackedUpdates, Any, t.PRNGKey], tuple[Aggregate, Any]],
    init_state: Callable[[t.PyTree], Any] = no_state,
) -> Aggregator:
    """An Aggregator in stacked mode from its finalize (and optional state)."""
    return Aggregator(
        init_state=init_state,
        init=None,
        accumulate=None,
        merge_across=keep_rows,
        finalize=finalize,
        stacked=True,
    )


def as_stacked(aggregator: Aggregator) -> Aggregator:
    """The same rule in stacked mode (a stacked aggregator is returned as it is).

    A streaming rule then sees the whole cohort at once in finalize: its
    accumulator is filled from the StackedUpdates in one `accumulate` (the same sums;
    the memory of stacked mode). Used where the cohort must be screened first
    (aggregation/guard.py) or split across rules (aggregation/per_module.py).
    """
    if aggregator.stacked:
        return aggregator

    def finalize(updates: StackedUpdates, agg_state: Any, rng: t.PRNGKey):
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), updates.delta)
        acc = aggregator.accumulate(aggregator.init(template), updates.delta, updates.weight)
        return aggregator.finalize(acc, agg_state, rng)

    return stacked_aggregator(finalize, aggregator.init_state)
