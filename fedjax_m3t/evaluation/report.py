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
"""Evaluation of the global model and of each client's personalised view.

The global model is the server's params. A client's view merges its local
(personal) leaves into them; with no local modules the two coincide.
Predictions are computed on device (mapped over clients in chunks) and scored on
host with `fedjax_m3t.metrics`, pooled over all clients and per client; only
predictions and labels cross to the host.
"""

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree as tree_lib
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.models import interface


@dataclasses.dataclass(frozen=True)
class Report:
    """Metrics per task, pooled over clients and per client.

    Attributes:
      pooled: {task: {metric: value}} over every client's examples together.
      per_client: one {task: {metric: value}} per client (tasks it has labels for).
    """

    pooled: dict
    per_client: list

    def client_values(self, task: str, metric: str) -> np.ndarray:
        """[num_clients] values of one metric (NaN where a client lacks the task)."""
        return np.array([c.get(task, {}).get(metric, np.nan) for c in self.per_client], float)


class Evaluator:
    """Jitted predictions of one model, compiled once per data shape and reused.

    Hold one for a run (the simulation loop does); it keeps its compiled
    functions, and with them the model, alive only as long as it lives. Params
    and data are arguments, never baked-in constants, so evaluating a new model
    recompiles nothing.
    """

    def __init__(
        self,
        model: interface.Model,
        personalize: Callable[[t.Params, t.PyTree], t.Params] | None = None,
        chunk_size: int = 16,
    ):
        """Args: the model; personalize(global params, client_state) -> params (see
        algorithms/base.py; needed for personalised predictions); clients per chunk."""
        self.model = model
        self._personalize = personalize

        def one(params, examples):
            return model.apply(params, examples, train=False)

        def global_view(params, data):
            return jax.lax.map(lambda d: one(params, d), data, batch_size=chunk_size)

        def personal_view(params, client_states, data):
            def client(x):
                state, examples = x
                return one(personalize(params, state), examples)

            return jax.lax.map(client, (client_states, data), batch_size=chunk_size)

        self._global = jax.jit(global_view)
        self._personal = jax.jit(personal_view) if personalize is not None else None

    def predict(self, params: t.Params, data: dict, client_states: t.PyTree = None) -> dict:
        """Predictions for every client's examples, on device.

        Args:
          params: global params.
          data: examples, leaves [num_clients, n, ...] (host or device).
          client_states: personal leaves [num_clients, ...] to personalise with, or
            None (or an empty tree: no local modules) for the global model.

        Returns:
          {task: [num_clients, n] or [num_clients, n, K]} device arrays.
        """
        if client_states is None or not jax.tree.leaves(client_states):
            return self._global(params, data)
        if self._personal is None:
            raise ValueError("Evaluator(personalize=...) is needed for personalised predictions.")
        return self._personal(params, client_states, data)

    def evaluate(self, params: t.Params, data: dict, client_states: t.PyTree = None) -> "Report":
        """predict + score (only predictions and labels reach the host)."""
        return score(self.model, self.predict(params, data, client_states), data)


def predict(
    model: interface.Model,
    params: t.Params,
    data: dict,
    *,
    policy: policy_lib.ResolvedPolicy | None = None,
    client_states: t.PyTree = None,
    chunk_size: int = 16,
) -> dict[str, np.ndarray]:
    """Predictions for every client's examples (one-shot: compiles each call).

    Args:
      model: the model.
      params: global params.
      data: examples, leaves [num_clients, n, ...].
      policy: needed with client_states, to know the local leaves.
      client_states: personal leaves [num_clients, ...] to merge in, or None.
      chunk_size: clients evaluated at once.

    Returns:
      {task: [num_clients, n] or [num_clients, n, K]} host arrays. Use an
      `Evaluator` for repeated calls.
    """
    if client_states is not None and policy is None:
        raise ValueError("predict(client_states=...) needs the policy that defines local leaves.")
    personalize = base.merge_local(policy) if policy is not None else None
    evaluator = Evaluator(model, personalize, chunk_size)
    return jax.device_get(evaluator.predict(params, data, client_states))


def score(model: interface.Model, predictions: dict, data: dict) -> Report:
    """Metrics of `predictions` (from `predict`) against `data`'s labels.

    Only the predictions and the label fields of `data` are moved to the host
    (never the inputs).
    """
    predictions = jax.device_get(predictions)
    data = jax.device_get({k: data[k] for k in ("mask", "label_mask", "labels")})
    pooled, per_client = {}, [{} for _ in range(data["mask"].shape[0])]
    for task in model.spec.tasks:
        keep = np.asarray(data["mask"] & data["label_mask"][task.name])
        pred, label = np.asarray(predictions[task.name]), np.asarray(data["labels"][task.name])
        pooled[task.name] = metrics_lib.task_metrics(task, pred[keep], label[keep])
        for c, row in enumerate(keep):
            if row.any():
                per_client[c][task.name] = metrics_lib.task_metrics(
                    task, pred[c][row], label[c][row]
                )
    return Report(pooled=pooled, per_client=per_client)


def evaluate(
    model: interface.Model,
    params: t.Params,
    data: dict,
    *,
    policy: policy_lib.ResolvedPolicy | None = None,
    client_states: t.PyTree = None,
) -> Report:
    """predict + score (one-shot; an Evaluator reuses its compilation)."""
    return score(
        model, predict(model, params, data, policy=policy, client_states=client_states), data
    )


def format_table(
    model: interface.Model,
    client_names: tuple[str, ...],
    reports: dict[str, Report],
    max_clients: int = 20,
) -> str:
    """A text table: one row per (view, client), one column per task's main metric.

    Args:
      model: for the task list.
      client_names: display names.
      reports: {view name (e.g. 'global', 'personal'): Report}.
      max_clients: per-client rows shown per view (the rest summarised).
    """
    tasks = model.spec.tasks
    cols = [f"{t.name}:{metrics_lib.PRIMARY[t.kind]}" for t in tasks]
    width = max([10, *(len(view) for view in reports)])  # Long view names get their room.
    head = f"{'view':<{width}} {'client':<14}" + "".join(f"{c:>20}" for c in cols)
    lines = [head, "-" * len(head)]

    def row(view, name, per_task):
        cells = []
        for task in tasks:
            value = per_task.get(task.name, {}).get(metrics_lib.PRIMARY[task.kind])
            cells.append(f"{value:>20.4f}" if value is not None else f"{'-':>20}")
        return f"{view:<{width}} {name:<14}" + "".join(cells)

    for view, report in reports.items():
        lines.append(row(view, "ALL (pooled)", report.pooled))
        for c, name in enumerate(client_names[:max_clients]):
            lines.append(row(view, name, report.per_client[c]))
        if len(client_names) > max_clients:
            lines.append(f"{view:<{width}} ... {len(client_names) - max_clients} more clients")
    return "\n".join(lines)


def untrained_local_modules(policy: policy_lib.ResolvedPolicy) -> list[str]:
    """The modules (path prefixes of depth 2) whose leaves a ResolvedPolicy keeps local.

    The server's copy of a local leaf keeps its initial value (only clients train
    it), so the global model scored alone uses these modules untrained.

    >>> import fedjax_m3t as fm
    >>> params = {'heads': {'y': {'w': 0.0}}, 'backbone': {'l0': {'w': 0.0}}}
    >>> untrained_local_modules(fm.policy.resolve(fm.ModulePolicy(local=('heads/**',)), params))
    ['heads/y']
    """
    paths = tree_lib.leaf_paths(policy.local)
    flags = jax.tree.leaves(policy.local)
    return sorted({"/".join(p.split("/")[:2]) for p, f in zip(paths, flags, strict=True) if f})


def global_view_name(policy: policy_lib.ResolvedPolicy) -> str:
    """The name of the global model's rows: 'global', or 'global (untrained local heads)'.

    With local modules the global model is scored with their initial values, which
    nobody trained: its rows say so ('heads' when every local module is a head,
    'modules' otherwise). Each institution's personalised view is the model in use.
    """
    modules = untrained_local_modules(policy)
    if not modules:
        return "global"
    kind = "heads" if all(m.startswith("heads/") for m in modules) else "modules"
    return f"global (untrained local {kind})"
