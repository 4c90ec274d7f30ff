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
"""The one local-training loop every algorithm uses: the pure client update.

In three reusable pieces, as fedjax's `for_each_client` splits init / step / final:

  1. batching: `example_order` (the client's real examples, shuffled with its
     key or in stored order) and `batch_at` (batch s of that order, cycling);
  2. `run_local_steps`: `local_steps` optax steps of a `LossFn` in a `lax.scan`
     over the trainable leaves; frozen leaves are passed around the gradient;
  3. `package_output`: the change of the federated leaves (all a client sends),
     their aggregation weights (`leaf_weights`), the new local leaves, metrics.

`make_client_update` composes them with a pluggable loss: `task_loss(model)` by
default; FedProx's proximal term is the wrapper `proximal` (Li et al., 2020,
arXiv:1812.06127), and Ditto-style pulls are wrappers of the same shape.

A batch larger than the client's data is the whole data set, each example once
(so batch_size=None or >= every client's size gives full-batch gradient descent,
the setting of the FedSGD identity).
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.models import interface

# fold_in tags of a client's key: batch order, local steps; 2 is the client
# transform's (fed_opt), 3 the privacy policy's (privacy/policies.py), so that
# transforms never change the training keys.
ORDER_TAG, STEPS_TAG, TRANSFORM_TAG, PRIVACY_TAG = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalTrainingConfig:
    """Hyperparameters of local training.

    Attributes:
      local_steps: optimizer steps per round.
      batch_size: examples per step; None for the whole (padded) client data.
      shuffle: shuffle the client's examples with its round key (True), or read them
        in stored order every round (False: a fixed batch order, as hand-written
        loops over pre-cut batches do).
      unroll: `lax.scan` unroll of the local steps (True = fully; helps convolutions on CPU).
    """

    local_steps: int = 5
    batch_size: int | None = 32
    shuffle: bool = True
    unroll: int | bool = 1

    def __post_init__(self):
        if self.local_steps < 1:
            raise ValueError(f"local_steps must be >= 1, got {self.local_steps}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}.")


class LossContext(NamedTuple):
    """What a local loss sees besides params and batch.

    Attributes:
      rng: this step's key (dropout etc.).
      received: the full params pytree the client received this round (for
        proximal and distillation terms).
      task_scale: {task: float32 scalar} per-task loss scale (tasks.scaled_loss).
      client_id: int32 scalar, the client's index in the federation (None when the
        update is called without one), for per-client gradient rules (privacy/dp_sgd.py).
    """

    rng: t.PRNGKey
    received: t.Params
    task_scale: dict
    client_id: jax.Array | None = None


LossFn = Callable[[t.Params, dict, LossContext], tuple[jax.Array, t.Metrics]]
"""(params, batch [b, ...], context) -> (scalar loss, stats summed over local steps).

Stats are float32 scalars that add up across steps and clients (the task loss's
'loss_sum/<task>' and 'loss_count/<task>'); wrappers pass them through.
"""

Objective = Callable[[t.Params, dict, t.PRNGKey], tuple[jax.Array, t.Metrics]]
"""(trainable leaves, batch [b, ...], step key) -> (scalar loss, stats): one local step's loss."""

GradientFn = Callable[
    [Objective, t.Params, dict, t.PRNGKey, LossContext],
    tuple[tuple[jax.Array, t.Metrics], t.Params],
]
"""(objective, trainable, batch [b, ...], step key, context) -> ((loss, stats), gradient).

How a local step turns its objective into the gradient the optimizer sees:
`batch_gradient` by default; DP-SGD's clipped and noised per-example mean is another
(privacy/dp_sgd.py).
"""


def batch_gradient(
    objective: Objective, trainable: t.Params, batch: dict, rng: t.PRNGKey, context: LossContext
) -> tuple[tuple[jax.Array, t.Metrics], t.Params]:
    """The default GradientFn: the gradient of the batch objective."""
    del context  # Unused: the plain gradient needs nothing else.
    return jax.value_and_grad(objective, has_aux=True)(trainable, batch, rng)


def task_loss(model: interface.Model) -> LossFn:
    """The default local objective: `tasks.scaled_loss` of the model's predictions."""

    def loss(params, batch, context):
        predictions = model.apply(params, batch, rng=context.rng, train=True)
        return tasks.scaled_loss(model.spec.tasks, predictions, batch, context.task_scale)

    return loss


def proximal(loss: LossFn, mu: float, mask: t.PyTree) -> LossFn:
    """`loss` + (mu / 2) ||w - w_received||^2 over the leaves of `mask` (FedProx).

    Args:
      loss: the objective to wrap.
      mu: proximal weight (>= 0).
      mask: static bool pytree of the leaves to pull (FedProx: the federated ones).
    """
    if mu < 0:
        raise ValueError(f"The proximal weight mu must be >= 0, got {mu}.")

    def wrapped(params, batch, context):
        value, stats = loss(params, batch, context)
        diff = jax.tree.map(
            jnp.subtract, tree.select(mask, params), tree.select(mask, context.received)
        )
        return value + 0.5 * mu * tree.squared_l2_norm(diff), stats

    return wrapped


def leaf_weights(
    usage: dict[str, jax.Array], num_examples: jax.Array, shared: t.PyTree
) -> t.PyTree:
    """Per-leaf aggregation weights: the client's example count where it used the module.

    The rule, with why. Client c's objective (tasks.scaled_loss) is a mean over
    its n_c real examples of sum_t s_t loss_t, with s_t = N^t / N_t over the
    cohort (N_t: labelled examples of task t; N^t: real examples of the clients
    holding any label of t). Its one-step full-batch SGD delta for module l is
    (lr / n_c) sum_t s_t G_ctl (G_ctl: the summed task-t loss gradients of its
    examples that reach l). Weighted by n_c and divided by the weights' sum N^l,
    the real examples of the clients that used l (the selective mean: the others
    neither contribute nor dilute), the FedAvg update is

        lr * sum_t (N^t / N^l) * (1 / N_t) sum_c G_ctl,

    i.e. centralised SGD on the pooled data for the objective
    sum_t (N^t / N^l) * (task t's pooled mean loss), module by module. So with
    full participation, one full-batch step and server lr 1:
      * every head is exact (N^l = N^t for head t), whatever the label rates;
      * the backbone and adapters (used by every client: N^l = N) are exact when
        every client holds some label of every task (rates may differ freely);
        a task that some clients lack entirely is weighted N^t / N in them;
      * an encoder is exact when, besides, every client has its modality on some
        example; when some clients have none of it, its step is N / N^m times
        the centralised one for the tasks every client holds (N^m: examples of
        the clients with the modality).
    tests/algorithms/fedsgd_identity_test.py checks each case at 1e-5 on the M3T
    model. The earlier rule (weight = the client's count of the module's
    examples, loss = per-client mean per task) shrank an encoder's gradient twice
    where its modality is rare at a client (the review measured 100% error) and
    made the backbone inexact whenever label rates differ between clients.

    Args:
      usage: {module path: float32 scalar count} from `Model.module_usage`: the
        client's real examples that exercise the module.
      num_examples: float32 scalar n_c, the client's real examples (the denominator
        of its loss).
      shared: the leaves to weight (None elsewhere).

    Returns:
      A float32 scalar per leaf of `shared`: n_c if the count of the longest module
      path that is a prefix of the leaf's path is > 0 (n_c for leaves under no
      listed module), else 0.
    """

    def weight(path: str, _) -> jax.Array:
        owners = [m for m in usage if path == m or path.startswith(m.rstrip("/") + "/")]
        if not owners:
            return num_examples
        used = usage[max(owners, key=len)] > 0
        return jnp.where(used, num_examples, 0.0).astype(jnp.float32)

    return tree.map_with_paths(weight, shared)


def example_order(mask: jax.Array, rng: t.PRNGKey, shuffle: bool) -> jax.Array:
    """int32 [n]: the real examples first (shuffled with rng, or in stored order)."""
    if shuffle:
        keys = jnp.where(mask, jax.random.uniform(rng, mask.shape), 2.0)
    else:
        keys = jnp.where(mask, jnp.arange(mask.shape[0], dtype=jnp.float32), jnp.inf)
    return jnp.argsort(keys).astype(jnp.int32)


def batch_at(examples: dict, order: jax.Array, n: jax.Array, step: jax.Array, size: int) -> dict:
    """Batch `step` of `size` examples read from `order` (cycling over the n real ones).

    Args:
      examples: leaves [n_padded, ...].
      order: int32 [n_padded] from `example_order`.
      n: int32 scalar, real examples.
      step: int32 scalar.
      size: batch size.

    Returns:
      A batch with leaves [size, ...]; slots past n are masked (a batch larger than
      the data holds each example once).
    """
    slot = jnp.arange(size)
    index = order[(step * size + slot) % jnp.maximum(n, 1)]
    batch = jax.tree.map(lambda x: x[index], examples)
    return {**batch, "mask": batch["mask"] & (slot < n)}


def run_local_steps(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    trainable_mask: t.PyTree,
    params: t.Params,
    examples: dict,
    context: LossContext,
    config: LocalTrainingConfig,
    gradient: GradientFn = batch_gradient,
) -> tuple[t.Params, jax.Array, t.Metrics]:
    """The optax steps of local training, in a `lax.scan`.

    Args:
      loss_fn: the local objective.
      optimizer: fresh state each call (a client keeps no optimizer state).
      trainable_mask: static bool pytree; other leaves get no gradient.
      params: the full params to start from.
      examples: the client's examples, leaves [n, ...].
      context: its rng is the client's training key (split per step below).
      config: steps, batch size, order, unroll.
      gradient: the step's gradient rule (default: the batch objective's gradient).

    Returns:
      (trained full params, losses [local_steps], stats summed over the steps).
    """
    examples = jax.tree.map(jnp.asarray, examples)  # Host arrays too (gathers are traced).
    trainable, fixed = tree.partition(trainable_mask, params)
    mask = examples["mask"]
    n = jnp.sum(mask.astype(jnp.int32))
    order = example_order(mask, jax.random.fold_in(context.rng, ORDER_TAG), config.shuffle)
    steps_key = jax.random.fold_in(context.rng, STEPS_TAG)

    def objective(trainable, batch, key):
        step_context = context._replace(rng=key)
        return loss_fn(tree.merge(trainable_mask, trainable, fixed), batch, step_context)

    def step(carry, s):
        trainable, opt_state = carry
        if config.batch_size is None:
            batch = examples
        else:
            batch = batch_at(examples, order, n, s, config.batch_size)
        (loss, stats), grads = gradient(
            objective, trainable, batch, jax.random.fold_in(steps_key, s), context
        )
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return (optax.apply_updates(trainable, updates), opt_state), (loss, stats)

    carry = (trainable, optimizer.init(trainable))
    (trainable, _), (losses, stats) = jax.lax.scan(
        step, carry, jnp.arange(config.local_steps), unroll=config.unroll
    )
    summed = jax.tree.map(lambda x: jnp.sum(x, axis=0), stats)
    return tree.merge(trainable_mask, trainable, fixed), losses, summed


def package_output(
    policy: policy_lib.ResolvedPolicy,
    received: t.Params,
    trained: t.Params,
    weights: t.PyTree,
    metrics: t.Metrics,
) -> base.ClientOutput:
    """ClientOutput: received - trained on the federated leaves, the new local leaves."""
    sent = tree.select(policy.federated, trained)
    return base.ClientOutput(
        delta=jax.tree.map(jnp.subtract, tree.select(policy.federated, received), sent),
        weight=weights,
        client_state=tree.select(policy.local, trained),
        metrics=metrics,
    )


def make_client_update(
    model: interface.Model,
    policy: policy_lib.ResolvedPolicy,
    client_optimizer: optax.GradientTransformation,
    config: LocalTrainingConfig,
    loss: LossFn | None = None,
    gradient: GradientFn = batch_gradient,
) -> base.ClientUpdateFn:
    """Builds the pure client update.

    Args:
      model: the model (its module_usage gives the aggregation weights).
      policy: static masks of federated / local / frozen leaves.
      client_optimizer: optax transformation for local steps (fresh state each round).
      config: local training hyperparameters.
      loss: the local objective (default `task_loss(model)`).
      gradient: each local step's gradient rule (default `batch_gradient`; DP-SGD:
        `privacy.dp_sgd.dp_sgd_gradient`).

    Returns:
      client_update(received, client_state, examples, context) -> ClientOutput, with
      examples leaves [n, ...] (one client; vmap for a cohort), client_state the
      client's local leaves (None elsewhere) and context a base.ClientContext.
    """
    loss = loss or task_loss(model)

    def client_update(received, client_state, examples, context):
        params = tree.merge(policy.local, client_state, received)
        task_scale = context.task_scale
        if task_scale is None:
            task_scale = tasks.own_task_scale(model.spec.tasks, examples)
        loss_context = LossContext(
            rng=context.rng, received=received, task_scale=task_scale, client_id=context.client_id
        )
        trained, losses, stats = run_local_steps(
            loss,
            client_optimizer,
            policy.trainable,
            params,
            examples,
            loss_context,
            config,
            gradient,
        )
        num_examples = jnp.sum(examples["mask"].astype(jnp.float32))
        shared = tree.select(policy.federated, trained)
        weights = leaf_weights(model.module_usage(examples), num_examples, shared)
        metrics = {"loss": jnp.mean(losses), "num_examples": num_examples, **stats}
        return package_output(policy, received, trained, weights, metrics)

    return client_update
