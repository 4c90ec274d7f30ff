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

A task's loss on a batch is the mean of its per-example loss over the examples
that are real (`mask`) and labelled (`label_mask[task]`); the total loss is the
sum over tasks. A task with no labelled example in the batch contributes 0 and no
gradient. With one fully-labelled task and example-count weights, the weighted
mean of client losses equals the pooled loss (the FedSGD identity).
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
