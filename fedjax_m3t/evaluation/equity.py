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
"""Equity views of an evaluation: the spread over clients and the metrics per group.

A pooled metric can hide schools the model serves badly. `client_spread`
summarises one metric over clients (mean, worst, 10th percentile in the bad
direction, median); `group_report` scores predictions per group, where groups are
per client (a school's sector) or per example (a student's sex), and `group_gap`
is the distance between the best and the worst group. `jain_index` (Jain, Chiu and
Hawe 1984) is (sum x)^2 / (n sum x^2): 1 when every client scores the same, 1/n
when one client takes everything; `grouped_spread` gives the spread (mean, worst,
Jain) within each class of institution (by size: `size_classes`; or by compute
class). `format_comparison` prints
one row per view (federated global, personalised, centralised, local-only).
"""

from collections.abc import Sequence

import jax
import numpy as np

from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.evaluation import report as report_lib
from fedjax_m3t.models import interface

LOWER_IS_BETTER = frozenset({"rmse"})
"""Metrics whose worst value is the largest (all others: the smallest)."""


def higher_is_better(metric: str) -> bool:
    """False for error metrics (rmse), True for accuracy, auc, r2, macro_f1."""
    return metric not in LOWER_IS_BETTER


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index of non-negative values [n]: (sum x)^2 / (n sum x^2), in [1/n, 1].

    Negative values (an R^2 below 0) are clipped at 0 first: the index is of an
    allocation. NaN for no values; 1 when all are 0 (all equal).

    >>> jain_index([1.0, 1.0, 1.0, 1.0])
    1.0
    >>> jain_index([1.0, 0.0, 0.0, 0.0])
    0.25
    """
    x = np.clip(np.asarray(values, np.float64), 0.0, None)
    if not len(x):
        return float("nan")
    sq = float(np.sum(x * x))
    return 1.0 if sq == 0 else float(np.sum(x) ** 2 / (len(x) * sq))


def size_classes(num_examples: Sequence[float] | np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Per-client size class labels [num_clients]: 'size0' (smallest) .. by quantile of size.

    >>> size_classes([1, 2, 3, 4, 5, 6]).tolist()
    ['size0', 'size0', 'size1', 'size1', 'size2', 'size2']
    """
    n = np.asarray(num_examples, np.float64)
    ranks = np.argsort(np.argsort(n, kind="stable"), kind="stable")
    return np.asarray([f"size{r * num_classes // len(n)}" for r in ranks])


def grouped_spread(
    report: report_lib.Report,
    task: str,
    metric: str,
    labels: Sequence | np.ndarray,
    *,
    min_count: int = 5,
) -> dict[str, dict[str, float]]:
    """`client_spread` within each class of clients (institution size, compute class).

    Args:
      report: per-client metrics of every client.
      labels: one class label per client [num_clients].

    Returns:
      {label: client_spread of that class's clients}, labels sorted.
    """
    labels = np.asarray(labels).astype(str)
    out = {}
    for label in np.unique(labels):
        keep = [c for c in range(len(labels)) if labels[c] == label]
        sub = report_lib.Report(pooled={}, per_client=[report.per_client[c] for c in keep])
        out[str(label)] = client_spread(sub, task, metric, min_count=min_count)
    return out


def client_spread(
    report: report_lib.Report, task: str, metric: str, *, min_count: int = 5
) -> dict[str, float]:
    """One metric's distribution over clients.

    Clients without a value, and clients with fewer than `min_count` test examples
    for the task, are left out: a school's R^2 on two or three test students says
    nothing (its label variance can be near 0, giving values like -1e10).

    Args:
      report: an evaluation report with per-client metrics.
      task: the task name.
      metric: e.g. 'r2', 'rmse', 'accuracy', 'auc'.
      min_count: fewest test examples for a client to count (reports without counts
        count every client).

    Returns:
      {'mean', 'worst' (min, or max for rmse), 'p10' (the 10th percentile in the bad
      direction: the 90th for rmse), 'median', 'jain' (Jain's index of the values),
      'clients' (how many were counted)}; NaN statistics when no client counts.
    """
    values = report.client_values(task, metric)
    counts = report.client_values(task, "count")
    keep = ~np.isnan(values) & ~(counts < min_count)
    values = values[keep]
    if not len(values):
        nan = float("nan")
        return {"mean": nan, "worst": nan, "p10": nan, "median": nan, "jain": nan, "clients": 0}
    good = higher_is_better(metric)
    return {
        "mean": float(np.mean(values)),
        "worst": float(np.min(values) if good else np.max(values)),
        "p10": float(np.percentile(values, 10 if good else 90)),
        "median": float(np.median(values)),
        "jain": jain_index(values),
        "clients": int(len(values)),
    }


def example_groups(groups: Sequence | np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Group labels as strings per example, [num_clients, n].

    Args:
      groups: per client ([num_clients], e.g. `Federation.groups`) or per
        example ([num_clients, n], e.g. a student's sex).
      mask: bool [num_clients, n], the real examples (only its shape is used).

    Raises:
      ValueError: if the groups fit neither shape.
    """
    groups = np.asarray(groups).astype(str)
    if groups.shape == mask.shape:
        return groups
    if groups.shape == mask.shape[:1]:
        return np.broadcast_to(groups[:, None], mask.shape)
    raise ValueError(
        f"groups must be per client {mask.shape[:1]} or per example {mask.shape}; "
        f"got shape {groups.shape}."
    )


def groups_from_rows(
    values: Sequence | np.ndarray, rows: Sequence[np.ndarray], size: int
) -> np.ndarray:
    """Per-example group labels [num_clients, size] from a column of the source table.

    >>> groups_from_rows(['F', 'M', 'F'], (np.array([2, 0]), np.array([1])), 2).tolist()
    [['F', 'F'], ['M', '']]

    Args:
      values: the column, one value per row of the frame the federation was built
        from (e.g. `frame['sex']`).
      rows: per client, the positions of its examples in that frame, in slot order
        (`Federation.test_rows` or `.train_rows`).
      size: the padded number of examples per client (data['mask'].shape[1]).

    Returns:
      str [num_clients, size]; padding slots hold ''.
    """
    values = np.asarray(values).astype(str)
    out = np.full((len(rows), size), "", dtype=values.dtype if len(values) else str)
    for c, r in enumerate(rows):
        out[c, : len(r)] = values[np.asarray(r, np.int64)]
    return out


def group_report(
    model: interface.Model, predictions: dict, data: dict, groups: Sequence | np.ndarray
) -> dict[str, dict[str, dict]]:
    """Metrics per group, each pooled over the group's real labelled examples.

    Args:
      model: for the task list.
      predictions: {task: [num_clients, n] or [num_clients, n, K]} from
        `evaluation.predict` (or `BaselineResult.predictions`) on `data`.
      data: the examples scored, leaves [num_clients, n, ...].
      groups: per-client [num_clients] or per-example [num_clients, n] labels.

    Returns:
      {group: {task: metrics_lib.task_metrics(...)}}, groups sorted; a task appears
      only for groups with a labelled example of it.
    """
    data = jax.device_get(data)
    mask = np.asarray(data["mask"], bool)
    labels_of = example_groups(groups, mask)
    out = {}
    for group in np.unique(labels_of[mask]):
        in_group = mask & (labels_of == group)
        per_task = {}
        for task in model.spec.tasks:
            keep = in_group & np.asarray(data["label_mask"][task.name], bool)
            if keep.any():
                pred = np.asarray(predictions[task.name])[keep]
                label = np.asarray(data["labels"][task.name])[keep]
                per_task[task.name] = metrics_lib.task_metrics(task, pred, label)
        out[str(group)] = per_task
    return out


def group_gap(groups_report: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Best versus worst group for every task metric of a `group_report`.

    Returns:
      {task: {metric: {'gap': |best - worst| (>= 0), 'best': group, 'worst': group}}},
      over the groups with a (non-NaN) value; 'count' is skipped.
    """
    values: dict[str, dict[str, dict[str, float]]] = {}
    for group, per_task in groups_report.items():
        for task, metrics in per_task.items():
            for metric, value in metrics.items():
                if metric != "count" and not np.isnan(value):
                    values.setdefault(task, {}).setdefault(metric, {})[group] = value
    out = {}
    for task, per_metric in values.items():
        out[task] = {}
        for metric, by_group in per_metric.items():
            sign = 1.0 if higher_is_better(metric) else -1.0
            best = max(by_group, key=lambda g: sign * by_group[g])
            worst = min(by_group, key=lambda g: sign * by_group[g])
            gap = abs(by_group[best] - by_group[worst])
            out[task][metric] = {"gap": float(gap), "best": best, "worst": worst}
    return out


def format_comparison(
    reports: dict[str, report_lib.Report],
    spec: spec_lib.DataSpec,
    *,
    metrics: dict[str, str] | None = None,
) -> str:
    """A text table: one row per (task, view) with pooled, mean, worst, p10, median, Jain.

    Args:
      reports: {view name (e.g. 'federated', 'personalised', 'centralised',
        'local-only'): Report on the same test data}.
      spec: for the task list.
      metrics: {task: metric} to show (default: metrics_lib.PRIMARY of its kind).
    """
    metrics = metrics or {}
    head = (
        f"{'task:metric':<20} {'view':<14}"
        f"{'pooled':>9}{'mean':>9}{'worst':>9}{'p10':>9}{'median':>9}{'jain':>9}{'clients':>9}"
    )
    lines = [head, "-" * len(head)]
    for task in spec.tasks:
        metric = metrics.get(task.name, metrics_lib.PRIMARY[task.kind])
        name = f"{task.name}:{metric}"
        for view, report in reports.items():
            pooled = report.pooled.get(task.name, {}).get(metric, float("nan"))
            s = client_spread(report, task.name, metric)
            values = (pooled, s["mean"], s["worst"], s["p10"], s["median"], s["jain"])
            cells = "".join(f"{v:>9.4f}" for v in values)
            lines.append(f"{name:<20} {view:<14}{cells}{s['clients']:>9d}")
    lines.append("(per-client columns count clients with >= 5 test examples for the task)")
    return "\n".join(lines)


def format_groups(groups_report: dict[str, dict[str, dict]], spec: spec_lib.DataSpec) -> str:
    """A text table of a `group_report`: one row per group, each task's primary metric."""
    cols = [f"{t.name}:{metrics_lib.PRIMARY[t.kind]}" for t in spec.tasks]
    head = f"{'group':<20}" + "".join(f"{c:>20}{'n':>7}" for c in cols)
    lines = [head, "-" * len(head)]
    for group, per_task in groups_report.items():
        cells = []
        for task in spec.tasks:
            m = per_task.get(task.name, {})
            value = m.get(metrics_lib.PRIMARY[task.kind], float("nan"))
            cells.append(f"{value:>20.4f}{m.get('count', 0):>7d}")
        lines.append(f"{group:<20}" + "".join(cells))
    return "\n".join(lines)
