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
"""The Flower ClientApp of an institution: our jitted client update on its own data.

The handlers are those of Flower's Message API (`@app.query()`, `@app.train()`);
records and their names are in protocol.py. A train message runs exactly
`algorithm.client_update(received, client_state, examples, context)` (the
function the simulation's round vmaps) on the institution's examples, with the
server's key and task scale, so a deployed round computes what a simulated one
does. The client's local leaves live in Flower's `Context.state` between rounds
(they start from `algorithm.init_client_state` of the shared initial params)
and never enter a message; the reply holds only `ClientOutput.delta`, its
per-leaf weights and the metrics.
"""

import json
from collections.abc import Callable
from typing import NamedTuple

import jax
from flwr import app as flwr_app
from flwr import clientapp

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.deploy.flower import protocol, records


class Institution(NamedTuple):
    """What one client holds.

    Attributes:
      algorithm: the federated algorithm (the server builds the same one).
      params: the run's initial full params (model.init(seeding.params_key(seed))):
        where the frozen leaves and the first local leaves come from.
      examples: the institution's training examples, leaves [n, ...].
      client_id: its index in the federation (what the server samples).
      group: its institution group (cohort.Population.group).
    """

    algorithm: base.FederatedAlgorithm
    params: t.Params
    examples: dict
    client_id: int
    group: int = 0


class _Ready(NamedTuple):
    institution: Institution
    update: Callable  # jit(algorithm.client_update)
    federated: t.PyTree  # ShapeDtypeStructs of the leaves the server sends.


def make_client_app(
    build: Callable[[flwr_app.Context], Institution],
    mods: list | None = None,
) -> clientapp.ClientApp:
    """A ClientApp that trains with `build(context)`'s institution.

    Args:
      build: the institution of this node (its data, the algorithm); called once
        per process and (run, node) (a SuperNode starts a process per message).
      mods: Flower mods wrapped around every handler (e.g. a message recorder).

    Returns:
      The ClientApp (handles "query" and "train" messages).
    """
    app = clientapp.ClientApp(mods=mods or [])
    ready: dict = {}

    def get(context: flwr_app.Context) -> _Ready:
        key = (context.run_id, context.node_id)
        if key not in ready:
            institution = build(context)
            policy = institution.algorithm.policy
            ready[key] = _Ready(
                institution,
                jax.jit(institution.algorithm.client_update),
                records.shapes(tree.select(policy.federated, institution.params)),
            )
        return ready[key]

    @app.query()
    def register(message: flwr_app.Message, context: flwr_app.Context) -> flwr_app.Message:
        institution = get(context).institution
        content = flwr_app.RecordDict(
            {
                protocol.CLIENT: flwr_app.ConfigRecord(
                    {"client-id": institution.client_id, "group": institution.group}
                ),
                protocol.COUNTS: flwr_app.MetricRecord(protocol.label_counts(institution.examples)),
            }
        )
        return flwr_app.Message(content, reply_to=message)

    @app.train()
    def train(message: flwr_app.Message, context: flwr_app.Context) -> flwr_app.Message:
        institution, update, federated = get(context)
        algorithm = institution.algorithm
        received_fed = records.from_record(
            message.content[protocol.PARAMS], federated, "the server's params"
        )
        received = tree.merge(algorithm.policy.federated, received_fed, institution.params)
        client_context = protocol.decode_context(message.content)
        if int(client_context.client_id) != institution.client_id:
            raise ValueError(
                f"The server addressed client {int(client_context.client_id)} at the node "
                f"of client {institution.client_id}."
            )
        fresh = algorithm.init_client_state(institution.params)
        if protocol.LOCAL_STATE in context.state:
            stored = context.state[protocol.LOCAL_STATE]
            client_state = records.from_record(stored, fresh, "this client's local leaves")
        else:
            client_state = fresh
        output = update(received, client_state, institution.examples, client_context)
        context.state[protocol.LOCAL_STATE] = records.to_record(output.client_state)
        metrics = {k: float(v) for k, v in jax.device_get(output.metrics).items()}
        content = flwr_app.RecordDict(
            {
                protocol.DELTA: records.to_record(output.delta),
                protocol.WEIGHT: records.to_record(output.weight),
                protocol.METRICS: flwr_app.MetricRecord(metrics),
            }
        )
        return flwr_app.Message(content, reply_to=message)

    return app


def log_records(
    message: flwr_app.Message, context: flwr_app.Context, call_next: Callable
) -> flwr_app.Message:
    """A Flower mod: logs the names in every message in and out (for audits and tests).

    Appends one JSON line per message to the file named by the node config's
    'message-log' (a no-op without it): {'direction': 'in' | 'out', 'type':
    message type, 'records': {record name: sorted keys}}: the leaf paths of every
    ArrayRecord, so a reader can check what left the institution.
    """
    reply = call_next(message, context)
    path = context.node_config.get("message-log")
    if path:
        with open(str(path), "a") as f:
            for direction, m in (("in", message), ("out", reply)):
                names = {}
                if m.has_content():
                    names = {name: sorted(record.keys()) for name, record in m.content.items()}
                line = {"direction": direction, "type": message.metadata.message_type}
                f.write(json.dumps({**line, "records": names}) + "\n")
    return reply
