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
"""The round contract: what an algorithm is, and what the engine calls when.

An algorithm is a NamedTuple of pure functions (like optax's
GradientTransformation) over explicit state. One round of the engine
(`fedjax_m3t.simulation.round`) does, for a cohort sampled from the clients whose
`eligible` flag is set:

  for each client c in the cohort (vmapped / looped / sharded; see round.py):
      context  = ClientContext(rng=fold_in(clients_key, c), client_id=c,
                               round=state.round, group=group[c],
                               task_scale=the cohort's per-task loss scale)
      received = algorithm.broadcast(state, context)                # per-client
      output   = algorithm.client_update(received, client_states[c], data[c], context)
      acc      = aggregator.accumulate(acc, output.delta, output.weight)
  acc = aggregator.merge_across(acc, 'clients')      # only when sharded over devices
  aggregate, agg_state = aggregator.finalize(acc, state.agg_state, aggregator_key)
  state, metrics = algorithm.server_apply(state._replace(agg_state=agg_state),
                                          aggregate, server_key)

and writes each client's `output.client_state` back. Evaluation reads a client's
model as `algorithm.personalize(received, client_state)`.

Keys: every key comes from the run's seed through fixed `fold_in` tags, so a
round is a pure function of (state, client states, data, key) and a resumed run
equals an uninterrupted one.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base


class ServerState(NamedTuple):
    """Global state.

    Attributes:
      params: the full params pytree. Federated leaves are the global model; frozen
        leaves never change; local leaves hold the initial values new clients start from.
      opt_state: server optimizer state over the federated leaves.
      agg_state: the aggregator's state (`Aggregator.init_state`; () when stateless).
      round: int32 scalar, rounds completed.
    """

    params: t.Params
    opt_state: optax.OptState
    agg_state: Any
    round: jax.Array  # shape=(), int32


class ClientContext(NamedTuple):
    """What a client knows about itself and this round, besides its data.

    Attributes:
      rng: the client's key for this round (fold_in(clients_key, client_id)).
      client_id: int32 scalar, the client's index in the federation.
      round: int32 scalar, the server's round counter (rounds completed before this one).
      group: int32 scalar, the client's institution group (e.g. a local authority);
        0 when the federation has none.
      task_scale: {task: float32 scalar} multiplier of each labelled example's loss,
        tasks.task_scale over the cohort: counts the federation can sum, which make
        FedAvg's one-step update equal centralised SGD module by module (see
        local_training.leaf_weights). None: the client's own label rates.
    """

    rng: t.PRNGKey
    client_id: jax.Array  # shape=(), int32
    round: jax.Array  # shape=(), int32
    group: jax.Array  # shape=(), int32
    task_scale: dict | None = None


def make_context(
    rng: t.PRNGKey,
    client_id: int | jax.Array = 0,
    round: int | jax.Array = 0,  # noqa: A002 (the field's name)
    group: int | jax.Array = 0,
    task_scale: dict | None = None,
) -> ClientContext:
    """A ClientContext with int32 scalars (for calling a client update by hand)."""
    as_int = lambda x: jnp.asarray(x, jnp.int32)
    return ClientContext(rng, as_int(client_id), as_int(round), as_int(group), task_scale)


# vmap axes of a ClientContext over a cohort: per-client keys, ids and groups;
# the round counter and the cohort's task scale are shared.
CONTEXT_AXES = ClientContext(rng=0, client_id=0, round=None, group=0, task_scale=None)


class ClientOutput(NamedTuple):
    """What one client's update returns (stacked on [cohort] when mapped).

    Attributes:
      delta: received params - trained params, federated leaves only (None elsewhere):
        all that a client sends.
      weight: per-leaf float32 scalar aggregation weights (delta's structure), see
        `local_training.leaf_weights`; 0 where the client did not train the leaf.
      client_state: the client's local (personal) leaves after training, None elsewhere.
      metrics: float32 scalars. 'loss' (the training objective, mean over local
        steps), 'num_examples', and for each task 'loss_sum/<task>' and
        'loss_count/<task>' (summed over local steps), which the round turns into
        per-task mean losses over the cohort's labelled examples.
    """

    delta: t.PyTree
    weight: t.PyTree
    client_state: t.PyTree
    metrics: t.Metrics


ClientUpdateFn = Callable[[t.Params, t.PyTree, dict, ClientContext], ClientOutput]
"""(received params, client_state, examples [n, ...], context) -> ClientOutput."""

BroadcastFn = Callable[[ServerState, ClientContext], t.Params]
"""(server state, client context) -> the full params pytree this client receives."""

PersonalizeFn = Callable[[t.Params, t.PyTree], t.Params]
"""(received params, client_state) -> the params the client predicts with."""

AdaptFn = Callable[[t.Params, t.PyTree, dict, ClientContext], t.Params]
"""(received params, client_state, train examples [n, ...], context) -> the params the
client predicts with, after an evaluation-time adaptation on its own train data (e.g.
k fine-tuning steps of the final global model: FedAvg + FT)."""

ServerApplyFn = Callable[
    [ServerState, aggregation_base.Aggregate, t.PRNGKey], tuple[ServerState, t.Metrics]
]
"""(state, aggregate, key) -> (new state with round + 1, metrics)."""


class FederatedAlgorithm(NamedTuple):
    """A federated algorithm as pure functions.

    Attributes:
      policy: the resolved module policy (static masks).
      aggregator: how client deltas are reduced (default: selective weighted mean).
      init: params -> ServerState.
      init_client_state: params -> one client's initial local leaves (None elsewhere).
      broadcast: see BroadcastFn (default: the global params, to every client).
      client_update: see ClientUpdateFn.
      personalize: see PersonalizeFn (default: the client's local leaves merged in).
      server_apply: see ServerApplyFn (the server optimizer step).
      description: JSON-able name and hyperparameters ({'name': 'fedadam',
        'server_lr': 0.01, ...}; `registry.build_algorithm` fills it). A checkpoint
        keeps it, so that a run resumes only the algorithm that wrote it
        (simulation/identity.py). None: unnamed (only the policy and the server
        state's structure identify it).
      adapt: see AdaptFn; None (the default) when the personal model is
        `personalize(received, client_state)` with no further training. When set,
        evaluation scores `adapt(...)` of the current global model instead.
    """

    policy: policy_lib.ResolvedPolicy
    aggregator: aggregation_base.Aggregator
    init: Callable[[t.Params], ServerState]
    init_client_state: Callable[[t.Params], t.PyTree]
    broadcast: BroadcastFn
    client_update: ClientUpdateFn
    personalize: PersonalizeFn
    server_apply: ServerApplyFn
    description: dict | None = None
    adapt: AdaptFn | None = None


def global_broadcast(state: ServerState, context: ClientContext) -> t.Params:
    """The default broadcast: every client receives the global params."""
    del context  # Unused: the same params for every client.
    return state.params


def merge_local(policy: policy_lib.ResolvedPolicy) -> PersonalizeFn:
    """The default personalize: a client's local leaves replace the received ones."""

    def personalize(received: t.Params, client_state: t.PyTree) -> t.Params:
        return tree.merge(policy.local, client_state, received)

    return personalize


def server_update(
    algorithm: FederatedAlgorithm,
    state: ServerState,
    outputs: ClientOutput,
    rng: t.PRNGKey,
    groups: jax.Array | None = None,
) -> tuple[ServerState, t.Metrics]:
    """Aggregates already-stacked client outputs [k, ...] and applies the server step.

    The engine streams instead (round.py); this is the same arithmetic for a cohort
    held in memory (tests, notebooks). `groups`: int32 [k], the clients' groups, for
    grouped aggregators (Aggregator.grouped).
    """
    aggregator = algorithm.aggregator
    agg_key, server_key = jax.random.split(rng)
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), outputs.delta)
    if aggregator.stacked:
        acc = aggregation_base.StackedUpdates(outputs.delta, outputs.weight)
    elif aggregator.grouped:
        if groups is None:
            raise ValueError("A grouped aggregator needs the clients' groups.")
        acc = aggregator.accumulate(
            aggregator.init(template), outputs.delta, outputs.weight, groups
        )
    else:
        acc = aggregator.init(template)
        if aggregator.begin_round is not None:
            acc = aggregator.begin_round(acc, state.agg_state)
        acc = aggregator.accumulate(acc, outputs.delta, outputs.weight)
    aggregate, agg_state = aggregator.finalize(acc, state.agg_state, agg_key)
    return algorithm.server_apply(state._replace(agg_state=agg_state), aggregate, server_key)


def adapt_clients(
    algorithm: FederatedAlgorithm,
    state: ServerState,
    client_states: t.PyTree,
    data: dict,
    groups: jax.Array,
    rng: t.PRNGKey,
    chunk_size: int = 8,
) -> t.Params:
    """Every client's adapted params: `algorithm.adapt` of what it would receive now.

    Client c adapts with context key fold_in(rng, c), its group and the server's round
    counter; `task_scale` is None (its own label rates: adaptation is local).

    Args:
      algorithm: an algorithm whose `adapt` is set.
      state: the server state (the model being adapted).
      client_states: leaves [num_clients, ...].
      data: the clients' train examples, leaves [num_clients, n, ...].
      groups: int32 [num_clients], each client's group.
      rng: the adaptation key.
      chunk_size: clients adapted at once (lax.map batch size).

    Returns:
      Full params per client, leaves [num_clients, ...] (evaluate them with
      `Evaluator(model, lambda received, adapted: adapted)`).
    """
    ids = jnp.arange(groups.shape[0], dtype=jnp.int32)

    def one(x):
        client_id, client_state, examples, group = x
        context = make_context(jax.random.fold_in(rng, client_id), client_id, state.round, group)
        received = algorithm.broadcast(state, context)
        return algorithm.adapt(received, client_state, examples, context)

    return jax.lax.map(one, (ids, client_states, data, groups), batch_size=chunk_size)
