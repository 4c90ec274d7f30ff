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
"""A Flower Grid that delivers messages to ClientApps in this process.

For fast tests and debugging of the bridge: the same ServerApp logic and
ClientApps, the same records (ArrayRecords hold serialized bytes, so every
array is encoded and decoded as on the wire), no SuperLink, no sockets, no
subprocesses. `loopback.py` runs the real thing.
"""

import uuid
from collections.abc import Iterable, Sequence

from flwr import app as flwr_app
from flwr import clientapp, serverapp
from flwr.supercore import task_identity


class InProcessGrid(serverapp.Grid):
    """Routes each message to the ClientApp of its destination node, in order.

    Node i has node id 1000 + i and its own Flower Context (its `state` persists
    across messages, as a SuperNode's does). Flower's `Message` constructor reads
    the process's task identity (run and node ids), which a SuperLink's ServerApp
    process has set; this grid sets it (run 1, node 0) the first time.
    """

    def __init__(
        self,
        client_app: clientapp.ClientApp,
        node_configs: Sequence[dict],
        run_config: dict | None = None,
    ):
        identity = task_identity.TaskIdentity
        for field in ("_run_id", "_node_id", "_task_id"):
            if getattr(identity, field) is None:
                setattr(identity, field, 1 if field == "_run_id" else 0)
        self._app = client_app
        self._contexts = {
            1000 + i: flwr_app.Context(
                run_id=1,
                node_id=1000 + i,
                node_config=dict(config),
                state=flwr_app.RecordDict(),
                run_config=dict(run_config or {}),
            )
            for i, config in enumerate(node_configs)
        }

    @property
    def contexts(self) -> dict[int, flwr_app.Context]:
        """{node id: the node's Flower Context} (its `state` holds the local leaves)."""
        return self._contexts

    def set_run(self, run) -> None:
        del run  # Unused: one run.

    @property
    def run(self):
        return None

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return flwr_app.Message(
            content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id
        )

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages):
        raise NotImplementedError("InProcessGrid delivers through send_and_receive only.")

    def pull_messages(self, message_ids):
        raise NotImplementedError("InProcessGrid delivers through send_and_receive only.")

    def send_and_receive(self, messages, *, timeout=None) -> list[flwr_app.Message]:
        """Each message's reply from its node's ClientApp (an error reply if it raised)."""
        del timeout  # Unused: calls return.
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            # The SuperLink's job: ids (Metadata has no setters for them).
            message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            try:
                reply = self._app(message, self._contexts[node])
            except Exception as e:  # noqa: BLE001 - a SuperNode turns it into an error reply.
                reply = flwr_app.Message(
                    flwr_app.Error(code=0, reason=f"{type(e).__name__}: {e}"), reply_to=message
                )
            reply.metadata.__dict__["_src_node_id"] = node
            replies.append(reply)
        return replies
