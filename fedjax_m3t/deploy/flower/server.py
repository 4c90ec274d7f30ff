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
"""A Flower strategy whose rounds are the simulation's: our sampler, aggregator, server step.

`RoundStrategy` subclasses Flower's message-based `Strategy`, so
`strategy.start(grid, ...)` drives it like any Flower strategy. Round r (the
server state's counter) uses the keys of the one-device simulated round
(simulation/round.py): rng = fold_in(rounds_key, r); the cohort is
`cohort.sample_cohort(fold_in(rng, SAMPLER_TAG), eligible, cohort_size)` among
the registered clients; client c trains with fold_in(fold_in(rng, CLIENTS_TAG), c)
and the cohort's task scale (from the counts the clients registered); the
replies, stacked in cohort order, go through `aggregator.accumulate` (or
`StackedUpdates` for stacked rules) and `aggregator.finalize` with
fold_in(rng, AGGREGATOR_TAG), then `algorithm.server_apply` with
fold_in(rng, SERVER_TAG). Selective per-module weights, any server optimizer,
and aggregators with state or keys (DP noise, secure-aggregation bookkeeping)
need nothing more here: they are the algorithm's own pieces.

The server holds the whole ServerState; Flower's `arrays` (the federated
leaves, `records.to_record`) follow it for Flower's bookkeeping. A reply whose
tree differs from the server's (another model or policy) stops the run with a
`records.TreeMismatchError` naming the leaf; a client's error reply stops it
with the client's reason.
"""

import time
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flwr import app as flwr_app
from flwr import serverapp
from flwr.serverapp import strategy as flwr_strategy

from fedjax_m3t import seeding, tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.algorithms import base
from fedjax_m3t.deploy.flower import protocol, records
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib


class Registration:
    """The nodes that answered the registration query, by federation client id.

    Attributes:
      node_of: {client id: Flower node id}.
      counts: {client id: {'num_examples': n, 'labels/<task>': n_t}}.
      group: {client id: institution group}.
    """

    def __init__(self):
        self.node_of, self.counts, self.group = {}, {}, {}


def register(
    grid: serverapp.Grid,
    num_clients: int,
    *,
    timeout: float = 600.0,
    poll: float = 0.2,
) -> Registration:
    """Waits for `num_clients` nodes and asks each for its client id and label counts.

    Raises:
      TimeoutError: if fewer nodes connect within `timeout` seconds.
      ValueError: for a client id outside [0, num_clients) or claimed twice, or an
        error reply.
    """
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Fewer than {num_clients} nodes connected in {timeout:.0f} s.")
        time.sleep(poll)
    queries = [
        flwr_app.Message(flwr_app.RecordDict(), dst_node_id=int(node), message_type="query")
        for node in grid.get_node_ids()
    ]
    registration = Registration()
    for reply in grid.send_and_receive(queries, timeout=timeout):
        _check_reply(reply, "registration")
        info = reply.content[protocol.CLIENT]
        client_id = int(info["client-id"])
        if not 0 <= client_id < num_clients or client_id in registration.node_of:
            raise ValueError(
                f"Node {reply.metadata.src_node_id} registered as client {client_id}: "
                f"ids must be distinct and in [0, {num_clients})."
            )
        registration.node_of[client_id] = reply.metadata.src_node_id
        registration.counts[client_id] = dict(reply.content[protocol.COUNTS])
        registration.group[client_id] = int(info["group"])
    return registration


def _check_reply(reply: flwr_app.Message, what: str) -> None:
    if reply.has_error():
        raise RuntimeError(
            f"Node {reply.metadata.src_node_id} failed in {what}: {reply.error.reason}"
        )


class RoundStrategy(flwr_strategy.Strategy):
    """Flower strategy running the algorithm's rounds (see the module docstring).

    Attributes:
      state: the current ServerState.
      history: one metrics dict per round (the simulation's keys, plus 'seconds'
        between configure_train and the end of aggregate_train).
      messages: every train message's content sent and received, when `record`.
    """

    def __init__(
        self,
        algorithm: base.FederatedAlgorithm,
        params: t.Params,
        registration: Registration,
        *,
        num_clients: int,
        cohort_size: int,
        seed: int,
        task_names: tuple[str, ...],
        record: bool = False,
    ):
        """Args: the algorithm, its initial params, the registered clients, the
        federation size, clients per round, the run's seed, the tasks (for the
        task scale), and whether to keep the messages (tests)."""
        self.algorithm = algorithm
        self.state = algorithm.init(params)
        self.registration = registration
        self.num_clients, self.cohort_size = num_clients, cohort_size
        self.task_names = task_names
        self.rounds_key = jax.random.fold_in(jax.random.key(seed), seeding.ROUNDS_TAG)
        self.eligible = jnp.asarray([c in registration.node_of for c in range(num_clients)])
        self.history: list[dict] = []
        self.messages: list[flwr_app.RecordDict] = [] if record else None
        self._cohort = None  # (ids, valid, rng) of the round in flight.
        self._started = 0.0
        policy = algorithm.policy
        self._delta_template = records.shapes(tree.select(policy.federated, params))
        self._server_step = jax.jit(self._step)

    # --- Flower's Strategy interface -------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: flwr_app.ArrayRecord, config, grid
    ) -> Iterable[flwr_app.Message]:
        """The train messages of this round's cohort (sampled as the simulation does)."""
        del server_round, arrays, config, grid  # The state and the keys are ours.
        self._started = time.perf_counter()
        rng = jax.random.fold_in(self.rounds_key, self.state.round)
        ids, valid = cohort_lib.sample_cohort(
            jax.random.fold_in(rng, round_lib.SAMPLER_TAG), self.eligible, self.cohort_size
        )
        ids, valid = np.asarray(ids), np.asarray(valid)
        self._cohort = (ids, valid, rng)
        clients_key = jax.random.fold_in(rng, round_lib.CLIENTS_TAG)
        scale = self._task_scale(ids, valid)
        messages = []
        for c in ids[valid]:
            c = int(c)
            context = base.make_context(
                jax.random.fold_in(clients_key, c),
                client_id=c,
                round=self.state.round,
                group=self.registration.group[c],
                task_scale=scale,
            )
            received = self.algorithm.broadcast(self.state, context)
            content = flwr_app.RecordDict(
                {
                    protocol.PARAMS: records.to_record(
                        tree.select(self.algorithm.policy.federated, received)
                    ),
                    **protocol.encode_context(context),
                }
            )
            if self.messages is not None:
                self.messages.append(content)
            messages.append(
                flwr_app.Message(
                    content,
                    dst_node_id=self.registration.node_of[c],
                    message_type="train",
                    group_id=str(int(self.state.round) + 1),
                )
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[flwr_app.Message]
    ) -> tuple[flwr_app.ArrayRecord | None, flwr_app.MetricRecord | None]:
        """Checks, stacks (in cohort order) and aggregates the replies; one server step."""
        del server_round  # Unused: the state's round counter is the source of truth.
        ids, valid, rng = self._cohort
        by_node = {}
        for reply in replies:
            _check_reply(reply, f"round {int(self.state.round) + 1}")
            if self.messages is not None:
                self.messages.append(reply.content)
            by_node[reply.metadata.src_node_id] = reply.content
        slots = [int(c) for c in ids[valid]]
        missing = [c for c in slots if self.registration.node_of[c] not in by_node]
        if missing:
            raise RuntimeError(f"Clients {missing} did not reply in time.")
        outputs = [self._parse(c, by_node[self.registration.node_of[c]]) for c in slots]
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *outputs)
        self.state, metrics = self._server_step(self.state, stacked, rng)
        record = {k: float(v) for k, v in jax.device_get(metrics).items()}
        record["seconds"] = time.perf_counter() - self._started
        self.history.append({"round": int(self.state.round), **record})
        return self.federated_record(), flwr_app.MetricRecord(record)

    def configure_evaluate(self, server_round, arrays, config, grid):
        """No federated evaluation messages yet (see protocol.py)."""
        del server_round, arrays, config, grid  # Unused.
        return []

    def aggregate_evaluate(self, server_round, replies):
        del server_round, replies  # Unused: nothing is sent.
        return None

    def summary(self) -> None:
        """Flower logs this at start; the algorithm's policy says what is sent."""

    # --- Our pieces ------------------------------------------------------------------

    def federated_record(self) -> flwr_app.ArrayRecord:
        """The server's federated leaves as an ArrayRecord."""
        return records.to_record(tree.select(self.algorithm.policy.federated, self.state.params))

    def _task_scale(self, ids: np.ndarray, valid: np.ndarray) -> dict:
        """tasks.task_scale of the cohort from the registered counts (round.cohort_task_scale)."""
        pick = lambda name: jnp.asarray(
            [
                self.registration.counts.get(int(c), {}).get(name, 0.0) * v
                for c, v in zip(ids, valid, strict=True)
            ],
            jnp.float32,
        )
        labels = {task: pick(f"labels/{task}") for task in self.task_names}
        return tasks.task_scale(self.task_names, pick("num_examples"), labels)

    def _parse(self, client_id: int, content: flwr_app.RecordDict) -> base.ClientOutput:
        what = f"client {client_id}'s reply"
        delta = records.from_record(content[protocol.DELTA], self._delta_template, what)
        weight_template = jax.tree.map(
            lambda _: jax.ShapeDtypeStruct((), jnp.float32), self._delta_template
        )
        weight = records.from_record(content[protocol.WEIGHT], weight_template, what + " (weights)")
        metrics = {k: np.float32(v) for k, v in content[protocol.METRICS].items()}
        return base.ClientOutput(delta, weight, None, metrics)

    def _step(self, state: base.ServerState, stacked: base.ClientOutput, rng: t.PRNGKey):
        """Aggregate [k] stacked outputs and apply the server step (as round.py does)."""
        aggregator = self.algorithm.aggregator
        if aggregator.stacked:
            acc = aggregation_base.StackedUpdates(stacked.delta, stacked.weight)
        else:
            acc = aggregator.accumulate(
                aggregator.init(self._delta_template), stacked.delta, stacked.weight
            )
        aggregate, agg_state = aggregator.finalize(
            acc, state.agg_state, jax.random.fold_in(rng, round_lib.AGGREGATOR_TAG)
        )
        state, server_metrics = self.algorithm.server_apply(
            state._replace(agg_state=agg_state),
            aggregate,
            jax.random.fold_in(rng, round_lib.SERVER_TAG),
        )
        valid = jnp.ones(jax.tree.leaves(stacked.metrics)[0].shape, jnp.float32)
        return state, round_lib.cohort_metrics(stacked.metrics, valid, server_metrics)


def serve(
    grid: serverapp.Grid,
    algorithm: base.FederatedAlgorithm,
    params: t.Params,
    *,
    num_clients: int,
    cohort_size: int,
    rounds: int,
    seed: int,
    task_names: tuple[str, ...],
    timeout: float = 600.0,
) -> RoundStrategy:
    """A ServerApp's main: registers the clients, then runs `rounds` rounds.

    Args:
      grid: the ServerApp's Grid.
      algorithm, params: the algorithm and its initial params (every client builds
        the same ones from the run's seed).
      num_clients: the federation's size (client ids 0..num_clients-1).
      cohort_size: clients per round.
      rounds: rounds to run.
      seed: the run's seed (the simulation's `SimulationConfig.seed`).
      task_names: the model's tasks.
      timeout: seconds to wait for nodes and for each round's replies.

    Returns:
      The strategy after the last round (its `state` and `history`).
    """
    registration = register(grid, num_clients, timeout=timeout)
    strategy = RoundStrategy(
        algorithm,
        params,
        registration,
        num_clients=num_clients,
        cohort_size=cohort_size,
        seed=seed,
        task_names=task_names,
    )
    strategy.start(grid, strategy.federated_record(), num_rounds=rounds, timeout=timeout)
    return strategy
