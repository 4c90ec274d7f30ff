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
"""FedRep: a shared representation, local heads, trained in alternation.

Collins, Hassani, Mokhtari, Shakkottai, 2021, "Exploiting Shared Representations
for Personalized Federated Learning", arXiv:2102.07078, Algorithm 1. Each round a
sampled client, starting from the received body and its own heads,

  1. trains only its heads (the `local` leaves: `heads/**` plus any the user made
     local) for `head_steps` steps, the body fixed;
  2. then trains only the body (the federated leaves) for the remaining
     `local.local_steps - head_steps` steps, its new heads fixed,

keeps the heads and sends the body's delta; the server is FedAvg's (fed_opt).
The paper's client runs tau head epochs then one body epoch; here both are counted
in optimizer steps so that FedRep spends the same local steps as FedAvg.

With 0 body steps nothing is sent (the delta is zero with weight 0) and FedRep is
local head training on a frozen body: phase 1 trains with the client's key exactly
as `local_training.make_client_update` does (tested). Phase 2 trains with
fold_in(client key, BODY_TAG).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import policies

# After local_training's tags (0-2) and personal_model.PERSONAL_TAG (3).
BODY_TAG = 4


def fedrep(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    server_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    head_steps: int,
    head_optimizer: optax.GradientTransformation | None = None,
    policy: policy_lib.ModulePolicy | None = None,
    **fed_opt_kwargs,
) -> base.FederatedAlgorithm:
    """Builds FedRep.

    Args:
      model: the model.
      client_optimizer: the body's local optimizer.
      server_optimizer: the server step on the aggregated body delta.
      local: batches and order; its local_steps is the total per round (head + body).
      head_steps: of those, the head-only steps (0 <= head_steps <= local_steps).
      head_optimizer: the heads' optimizer (default: client_optimizer).
      policy: the user's policy; FedRep adds `heads/**` to its local patterns.
      **fed_opt_kwargs: aggregator etc., passed to `fed_opt.fed_opt`.

    Returns:
      The algorithm (client state: the local heads).

    Raises:
      ValueError: for head_steps outside [0, local_steps].
    """
    if not 0 <= head_steps <= local.local_steps:
        raise ValueError(
            f"FedRep: head_steps must be in [0, local_steps={local.local_steps}], got {head_steps}."
        )
    inner = fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer,
        server_optimizer=server_optimizer,
        local=local,
        policy=policies.fedper(policy),
        **fed_opt_kwargs,
    )
    resolved = inner.policy
    body_steps = local.local_steps - head_steps
    loss = local_training.task_loss(model)
    phases = []  # (mask, optimizer, config, key tag or None for the client's key)
    if head_steps:
        head_config = dataclasses.replace(local, local_steps=head_steps)
        phases.append((resolved.local, head_optimizer or client_optimizer, head_config, None))
    if body_steps:
        body_config = dataclasses.replace(local, local_steps=body_steps)
        phases.append((resolved.federated, client_optimizer, body_config, BODY_TAG))

    def client_update(received, client_state, examples, context):
        params = tree.merge(resolved.local, client_state, received)
        task_scale = context.task_scale
        if task_scale is None:
            task_scale = tasks.own_task_scale(model.spec.tasks, examples)
        all_losses, all_stats = [], []
        for mask, optimizer, config, tag in phases:  # Two static phases, not a step loop.
            rng = context.rng if tag is None else jax.random.fold_in(context.rng, tag)
            loss_context = local_training.LossContext(rng, received, task_scale)
            params, losses, stats = local_training.run_local_steps(
                loss, optimizer, mask, params, examples, loss_context, config
            )
            all_losses.append(losses)
            all_stats.append(stats)
        num_examples = jnp.sum(examples["mask"].astype(jnp.float32))
        shared = tree.select(resolved.federated, params)
        weights = local_training.leaf_weights(model.module_usage(examples), num_examples, shared)
        if not body_steps:  # The body did not train: the server must not count this client.
            weights = jax.tree.map(jnp.zeros_like, weights)
        metrics = {
            "loss": jnp.mean(jnp.concatenate(all_losses)),
            "num_examples": num_examples,
            **jax.tree.map(lambda *xs: sum(xs), *all_stats),
        }
        return local_training.package_output(resolved, received, params, weights, metrics)

    return inner._replace(client_update=client_update)
