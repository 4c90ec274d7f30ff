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
"""Per-task losses over masked examples.

Two normalisations:

  * `task_losses`: each task's mean loss over the batch's real, labelled examples,
    summed over tasks (for evaluation and centralised training on one data set);
  * `scaled_loss`: the training objective of a client. Each real example's loss is
    sum_t s_t * label_mask[t] * loss_t, averaged over the batch's real examples,
    with s_t = N^t / N_t a per-task scale from counts the federation can sum
    (`task_scale`: N_t labelled examples of task t, N^t real examples of the
    clients that hold any label of t). On one pooled data set this equals
    `task_losses` exactly; over clients it is what makes FedAvg's one-step update
    equal centralised SGD module by module (algorithms/local_training.py,
    `leaf_weights`, states the rule and where it stops being exact).

A task with no labelled example in the batch contributes 0 and no gradient.
"""

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t.data import spec as spec_lib


def per_example_loss(task: spec_lib.TaskSpec, prediction: jax.Array, label: jax.Array) -> jax.Array:
    """Loss per example.

    Args:
      task: the task.
      prediction: [n] logits ('binary'), [n] values ('regression'), [n, K] logits ('multiclass').
      label: [n] float 0/1, [n] float, [n] int class ids.

    Returns:
      float32 [n].
    """
    if task.kind == "binary":
        return optax.sigmoid_binary_cross_entropy(prediction, label.astype(prediction.dtype))
    if task.kind == "regression":
        return jnp.square(prediction - label.astype(prediction.dtype))
    # Clip so garbage labels in padding rows cannot index out of range.
    label = jnp.clip(label.astype(jnp.int32), 0, task.num_classes - 1)
    return optax.softmax_cross_entropy_with_integer_labels(prediction, label)


def task_losses(
    tasks: tuple[spec_lib.TaskSpec, ...], predictions: dict, examples: dict
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Masked mean loss per task and their sum.

    Args:
      tasks: the tasks to score (each must be in `predictions` and `examples['labels']`).
      predictions: {task: [n] or [n, K]} from a model's apply.
      examples: a batch in the layout of `fedjax_m3t.data.spec`, leaves [n, ...].

    Returns:
      (total scalar loss, {task: scalar mean loss}).
    """
    total = jnp.zeros((), jnp.float32)
    per_task = {}
    for task in tasks:
        weight = (examples["mask"] & examples["label_mask"][task.name]).astype(jnp.float32)
        loss = per_example_loss(task, predictions[task.name], examples["labels"][task.name])
        # where() rather than multiply: garbage in padding rows may be inf/nan.
        loss = jnp.where(weight > 0, loss, 0.0)
        mean = jnp.sum(loss) / jnp.maximum(jnp.sum(weight), 1.0)
        per_task[task.name] = mean
        total = total + mean
    return total, per_task


def task_scale(
    tasks: tuple[spec_lib.TaskSpec, ...] | tuple[str, ...],
    num_examples: jax.Array,
    label_counts: dict[str, jax.Array],
) -> dict[str, jax.Array]:
    """Per-task loss scales s_t = N^t / N_t from per-client counts.

    Args:
      tasks: TaskSpecs or task names.
      num_examples: float32 [k], each client's real examples.
      label_counts: {task: float32 [k]}, each client's labelled examples of the task.

    Returns:
      {task: float32 scalar}: N^t (the real examples of the clients with any label
      of t) over N_t (the labelled examples of t); 1 where N_t = 0.
    """
    scale = {}
    for task in tasks:
        name = getattr(task, "name", task)
        counts = label_counts[name]
        holders = jnp.sum(jnp.where(counts > 0, num_examples, 0.0))
        total = jnp.sum(counts)
        scale[name] = jnp.where(total > 0, holders / jnp.maximum(total, 1.0), 1.0)
    return scale


def own_task_scale(tasks: tuple[spec_lib.TaskSpec, ...], examples: dict) -> dict[str, jax.Array]:
    """`task_scale` of one client's own examples: n / n_t (1 if n_t = 0).

    With it, `scaled_loss` on the full examples equals `task_losses`.
    """
    real = examples["mask"]
    count = lambda x: jnp.sum(x.astype(jnp.float32))[None]
    labels = {t.name: count(real & examples["label_mask"][t.name]) for t in tasks}
    return task_scale(tasks, count(real), labels)


def scaled_loss(
    tasks: tuple[spec_lib.TaskSpec, ...],
    predictions: dict,
    examples: dict,
    task_scale: dict[str, jax.Array],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training objective: mean over real examples of sum_t s_t * masked loss_t.

    Args:
      tasks: the tasks to score.
      predictions: {task: [n] or [n, K]} from a model's apply.
      examples: a batch in the layout of `fedjax_m3t.data.spec`, leaves [n, ...].
      task_scale: {task: float32 scalar} s_t (see module docstring).

    Returns:
      (scalar objective, stats) where stats holds, per task, 'loss_sum/<task>' (the
      sum of the unscaled loss over real labelled examples) and 'loss_count/<task>'
      (their number): sums, so that per-task means over many clients are
      sum(sums) / sum(counts), never a mean of means.
    """
    real = examples["mask"]
    total = jnp.zeros((), jnp.float32)
    stats = {}
    for task in tasks:
        labelled = real & examples["label_mask"][task.name]
        loss = per_example_loss(task, predictions[task.name], examples["labels"][task.name])
        # where() rather than multiply: garbage in padding rows may be inf/nan.
        loss_sum = jnp.sum(jnp.where(labelled, loss, 0.0).astype(jnp.float32))
        stats[f"loss_sum/{task.name}"] = loss_sum
        stats[f"loss_count/{task.name}"] = jnp.sum(labelled.astype(jnp.float32))
        total = total + task_scale[task.name] * loss_sum
    return total / jnp.maximum(jnp.sum(real.astype(jnp.float32)), 1.0), stats
