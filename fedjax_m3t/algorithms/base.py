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
"""The shape of a federated algorithm: pure functions over explicit state.

An algorithm is a NamedTuple of pure functions (like optax's
GradientTransformation). The simulation maps `client_update` over a cohort,
streams the outputs through the selective aggregator, and calls
`server_apply`; `server_update` is the same thing for an already-stacked cohort.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base


class ServerState(NamedTuple):
    """Global state.

    Attributes:
      params: the full params pytree. Federated leaves are the global model; frozen
        leaves never change; local leaves hold the initial values new clients start from.
      opt_state: server optimizer state over the federated leaves.
      round: int32 scalar, rounds completed.
    """

    params: t.Params
    opt_state: optax.OptState
    round: jax.Array  # shape=(), int32


class ClientOutput(NamedTuple):
    """What one client's update returns (stacked on [cohort] when mapped).

    Attributes:
      delta: server params - trained params, federated leaves only (None elsewhere):
        all that a client sends.
      weight: per-leaf float32 scalar aggregation weights (delta's structure): the
        client's count of examples that exercise the leaf's module, 0 if none.
      client_state: the client's local (personal) leaves after training, None elsewhere.
      metrics: scalars, e.g. 'loss' (mean over local steps), 'num_examples'.
    """

    delta: t.PyTree
    weight: t.PyTree
    client_state: t.PyTree
    metrics: t.Metrics


ClientUpdateFn = Callable[[t.Params, t.PyTree, dict, t.PRNGKey], ClientOutput]
"""(server_params, client_state, examples [n, ...], rng) -> ClientOutput."""

ServerApplyFn = Callable[[ServerState, aggregation_base.Aggregate], tuple[ServerState, t.Metrics]]
"""(state, aggregate) -> (new state, metrics)."""


class FederatedAlgorithm(NamedTuple):
    """A federated algorithm as pure functions.

    Attributes:
      policy: the resolved module policy (static masks).
      aggregator: how client deltas are reduced (default: selective weighted mean).
      init: params -> ServerState.
      init_client_state: params -> one client's initial local leaves (None elsewhere).
      client_update: see ClientUpdateFn.
      server_apply: applies an aggregate to the state (server optimizer step).
      server_update: (state, outputs stacked on [cohort]) -> (state, metrics).
    """

    policy: policy_lib.ResolvedPolicy
    aggregator: aggregation_base.Aggregator
    init: Callable[[t.Params], ServerState]
    init_client_state: Callable[[t.Params], t.PyTree]
    client_update: ClientUpdateFn
    server_apply: ServerApplyFn
    server_update: Callable[[ServerState, ClientOutput], tuple[ServerState, t.Metrics]]
