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
"""What the ServerApp and the ClientApps say to each other, record by record.

Three exchanges, each a Flower message type:

  * "query" (once, before round 1; registration): the server asks every node;
    a client answers with its federation id and group (ConfigRecord "client")
    and its label counts (MetricRecord "counts": 'num_examples' and
    'labels/<task>', real examples and labelled examples of each task). These
    counts are what the simulation's round reads from the cohort's data to set
    the per-task loss scale (`round.cohort_task_scale`); nothing else about the
    data leaves the client.
  * "train" (every round, to the cohort): ArrayRecord "params" (the federated
    leaves the client receives, `algorithm.broadcast`), ConfigRecord "context"
    (client id, round, group) and ArrayRecord "keys" (the client's PRNG key data
    and the cohort's task scale, float32 and uint32 arrays: bit-exact). The reply
    holds ArrayRecord "delta" and ArrayRecord "weight" (the federated leaves and
    their per-leaf weights: `ClientOutput.delta` / `.weight`) and MetricRecord
    "metrics" (`ClientOutput.metrics`). A client's local leaves stay in its
    Flower `Context.state` and are never in a message.
  * "evaluate": not sent (evaluation of the deployed model is the next step).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flwr import app as flwr_app

from fedjax_m3t.algorithms import base

PARAMS, CONTEXT, KEYS = "params", "context", "keys"
DELTA, WEIGHT, METRICS = "delta", "weight", "metrics"
CLIENT, COUNTS = "client", "counts"
LOCAL_STATE = "fedjax_m3t.local_leaves"  # The Context.state record of a client's local leaves.
_RNG, _SCALE = "rng", "task_scale/"


def encode_context(context: base.ClientContext) -> dict:
    """{record name: record} of a ClientContext (the "context" and "keys" records)."""
    arrays = {_RNG: np.asarray(jax.random.key_data(context.rng))}
    for task, scale in (context.task_scale or {}).items():
        arrays[_SCALE + task] = np.asarray(scale, np.float32)
    config = {
        "client-id": int(context.client_id),
        "round": int(context.round),
        "group": int(context.group),
        "has-task-scale": context.task_scale is not None,
    }
    return {
        CONTEXT: flwr_app.ConfigRecord(config),
        KEYS: flwr_app.ArrayRecord({k: flwr_app.Array(v) for k, v in arrays.items()}),
    }


def decode_context(content: flwr_app.RecordDict) -> base.ClientContext:
    """The ClientContext of a "train" message's content (inverse of encode_context)."""
    config, keys = content[CONTEXT], content[KEYS]
    scale = {k[len(_SCALE) :]: jnp.asarray(v.numpy()) for k, v in keys.items() if k != _RNG}
    return base.make_context(
        jax.random.wrap_key_data(jnp.asarray(keys[_RNG].numpy())),
        client_id=int(config["client-id"]),
        round=int(config["round"]),
        group=int(config["group"]),
        task_scale=scale if config["has-task-scale"] else None,
    )


def label_counts(examples: dict) -> dict[str, float]:
    """{'num_examples': n, 'labels/<task>': n_t} of one client's examples [n, ...].

    The counts `round.cohort_task_scale` takes from the data in the simulation.
    """
    real = np.asarray(examples["mask"])
    counts = {"num_examples": float(real.sum())}
    for task, mask in examples["label_mask"].items():
        counts[f"labels/{task}"] = float((real & np.asarray(mask)).sum())
    return counts
