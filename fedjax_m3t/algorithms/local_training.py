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

A client merges its local (personal) leaves into the server params, runs
`local_steps` optax steps (a `jax.lax.scan`) on batches drawn from its padded
examples, and returns the change of its federated leaves only. Frozen leaves are
passed around the gradient, so they get no gradient computation and no update.

Batches: the real examples are shuffled once with the client's key and read in
that order, cycling. A batch larger than the client's data is the whole data
set, each example once (so batch_size=None or >= every client's size gives
full-batch gradient descent, the setting of the FedSGD identity).
FedProx (Li et al., 2020, arXiv:1812.06127) adds (mu/2)||w - w_server||^2 over the
federated leaves.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.models import interface


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalTrainingConfig:
    """Hyperparameters of local training.

    Attributes:
      local_steps: optimizer steps per round.
      batch_size: examples per step; None for the whole (padded) client data.
      prox_mu: FedProx proximal weight; 0 disables it.
      unroll: `lax.scan` unroll of the local steps (True = fully; helps convolutions on CPU).
    """

    local_steps: int = 5
    batch_size: int | None = 32
    prox_mu: float = 0.0
    unroll: int | bool = 1

    def __post_init__(self):
        if self.local_steps < 1:
            raise ValueError(f"local_steps must be >= 1, got {self.local_steps}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}.")
        if self.prox_mu < 0:
            raise ValueError(f"prox_mu must be >= 0, got {self.prox_mu}.")


def leaf_weights(
    usage: dict[str, jax.Array], num_examples: jax.Array, shared: t.PyTree
) -> t.PyTree:
    """Per-leaf aggregation weights from a model's module usage counts.

    Args:
      usage: {module path: float32 scalar count} from `Model.module_usage`.
      num_examples: float32 scalar, for leaves under no listed module.
      shared: the leaves to weight (None elsewhere).

    Returns:
      A float32 scalar per leaf of `shared`: the count of the longest module path
      that is a prefix of the leaf's path.
    """

    def weight(path: str, _) -> jax.Array:
        owners = [m for m in usage if path == m or path.startswith(m.rstrip("/") + "/")]
        if not owners:
            return num_examples
        return usage[max(owners, key=len)].astype(jnp.float32)

    return tree.map_with_paths(weight, shared)


def _batch_at(examples: dict, order: jax.Array, n: jax.Array, step: jax.Array, size: int):
    """Batch `step` of `size` examples from the shuffled real examples (see module doc)."""
    slot = jnp.arange(size)
    index = order[(step * size + slot) % jnp.maximum(n, 1)]
    batch = jax.tree.map(lambda x: x[index], examples)
    # Slots past n would repeat examples within the batch: mask them.
    return {**batch, "mask": batch["mask"] & (slot < n)}


def make_client_update(
    model: interface.Model,
    policy: policy_lib.ResolvedPolicy,
    client_optimizer: optax.GradientTransformation,
    config: LocalTrainingConfig,
) -> base.ClientUpdateFn:
    """Builds the pure client update.

    Args:
      model: the model (its apply and module_usage are used).
      policy: static masks of federated / local / frozen leaves.
      client_optimizer: optax transformation for local steps (fresh state each round).
      config: local training hyperparameters.

    Returns:
      client_update(server_params, client_state, examples, rng) -> ClientOutput, with
      examples leaves [n, ...] (one client; vmap for a cohort) and client_state the
      client's local leaves (None elsewhere).
    """
    trainable_mask = policy.trainable

    def loss_fn(trainable, fixed, server_shared, batch, rng):
        params = tree.merge(trainable_mask, trainable, fixed)
        predictions = model.apply(params, batch, rng=rng, train=True)
        loss, per_task = tasks.task_losses(model.spec.tasks, predictions, batch)
        if config.prox_mu:
            diff = jax.tree.map(jnp.subtract, tree.select(policy.federated, params), server_shared)
            loss = loss + 0.5 * config.prox_mu * tree.squared_l2_norm(diff)
        return loss, per_task

    def client_update(server_params, client_state, examples, rng):
        params = tree.merge(policy.local, client_state, server_params)
        server_shared = tree.select(policy.federated, server_params)
        trainable, fixed = tree.partition(trainable_mask, params)
        mask = examples["mask"]
        n = jnp.sum(mask.astype(jnp.int32))
        order_key, steps_key = jax.random.split(rng)
        order = jnp.argsort(jnp.where(mask, jax.random.uniform(order_key, mask.shape), 2.0))

        def step(carry, s):
            trainable, opt_state = carry
            if config.batch_size is None:
                batch = examples
            else:
                batch = _batch_at(examples, order, n, s, config.batch_size)
            (loss, per_task), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                trainable, fixed, server_shared, batch, jax.random.fold_in(steps_key, s)
            )
            updates, opt_state = client_optimizer.update(grads, opt_state, trainable)
            return (optax.apply_updates(trainable, updates), opt_state), (loss, per_task)

        carry = (trainable, client_optimizer.init(trainable))
        (trainable, _), (losses, per_task) = jax.lax.scan(
            step, carry, jnp.arange(config.local_steps), unroll=config.unroll
        )
        trained = tree.merge(trainable_mask, trainable, fixed)
        shared = tree.select(policy.federated, trained)
        num_examples = n.astype(jnp.float32)
        metrics = {"loss": jnp.mean(losses), "num_examples": num_examples}
        metrics.update({f"loss/{k}": jnp.mean(v) for k, v in per_task.items()})
        return base.ClientOutput(
            delta=jax.tree.map(jnp.subtract, server_shared, shared),
            weight=leaf_weights(model.module_usage(examples), num_examples, shared),
            client_state=tree.select(policy.local, trained),
            metrics=metrics,
        )

    return client_update
