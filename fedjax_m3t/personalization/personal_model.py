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
"""A persistent personal model per client: Ditto, and local-only training.

Ditto (Li, Hu, Beirami, Smith, 2021, "Ditto: Fair and Robust Federated Learning
Through Personalization", arXiv:2012.04221, Algorithm 1). Each round a sampled
client k receives the global model w^t and

  1. trains its personal model v_k, kept in its client state, for `personal_steps`
     steps of  F_k(v_k) + (lambda / 2) ||v_k - w^t||^2  (the pull is over the
     federated leaves; local leaves have no global counterpart);
  2. trains the global model exactly as FedAvg does (the same loop, the same keys)
     and sends its delta.

The server is FedAvg's. So Ditto's global model is FedAvg's bit for bit, and its
personal model interpolates between two limits the tests pin:
  * lambda = 0: v_k never sees w: it is local-only training (`local_only` below,
    which trains with the same key and steps);
  * lambda -> infinity with SGD step eta and eta * lambda = 1: each step is
    v <- w^t - eta * g(v), so after any step ||v - w^t|| = eta ||g(v_prev)|| =
    ||g|| / lambda: the personal model is the received global model to O(1/lambda).

A client trains both models each round, so Ditto reads twice FedAvg's examples per
round (with personal_steps = local_steps); the comparison experiment reports it.

Keys: step 2 uses the client's key as FedAvg does; step 1 uses
fold_in(client key, PERSONAL_TAG), the key `local_only` trains with.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import interface

# After local_training's ORDER_TAG, STEPS_TAG, TRANSFORM_TAG (0, 1, 2).
PERSONAL_TAG = 3


class DittoState(NamedTuple):
    """A Ditto client's state.

    Attributes:
      local: the global model's local leaves (None elsewhere; all None for FedAvg).
      personal: the personal model v, every trainable leaf (None at frozen ones).
    """

    local: t.PyTree
    personal: t.PyTree


def personal_trainer(
    model: interface.Model,
    policy: policy_lib.ResolvedPolicy,
    optimizer: optax.GradientTransformation,
    config: local_training.LocalTrainingConfig,
    lam: float,
):
    """The personal model's local steps (Ditto's step 1; local-only's whole update).

    Args:
      model: the model.
      policy: v holds policy.trainable; the pull is over policy.federated.
      optimizer: the personal optimizer (fresh state each round).
      config: its steps and batches.
      lam: Ditto's lambda (>= 0); 0 is plain local training.

    Returns:
      train(received, personal, examples [n, ...], context) -> (new personal leaves,
      losses [steps], stats summed over steps), trained with key
      fold_in(context.rng, PERSONAL_TAG).
    """
    if lam < 0:
        raise ValueError(f"Ditto's lambda must be >= 0, got {lam}.")
    loss = local_training.task_loss(model)
    if lam > 0:
        loss = local_training.proximal(loss, lam, policy.federated)

    def train(received, personal, examples, context):
        params = tree.merge(policy.trainable, personal, received)
        task_scale = context.task_scale
        if task_scale is None:
            task_scale = tasks.own_task_scale(model.spec.tasks, examples)
        loss_context = local_training.LossContext(
            rng=jax.random.fold_in(context.rng, PERSONAL_TAG),
            received=received,
            task_scale=task_scale,
        )
        trained, losses, stats = local_training.run_local_steps(
            loss, optimizer, policy.trainable, params, examples, loss_context, config
        )
        return tree.select(policy.trainable, trained), losses, stats

    return train


def ditto(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    server_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    lam: float,
    personal_optimizer: optax.GradientTransformation | None = None,
    personal: local_training.LocalTrainingConfig | None = None,
    **fed_opt_kwargs,
) -> base.FederatedAlgorithm:
    """Builds Ditto over FedOpt (FedAvg with server_optimizer sgd(1)).

    Args:
      model: the model.
      client_optimizer, server_optimizer, local: the global model's FedOpt settings.
      lam: the proximal weight lambda (>= 0).
      personal_optimizer: the personal model's optimizer (default: client_optimizer).
      personal: the personal model's steps and batches (default: `local`).
      **fed_opt_kwargs: policy, aggregator, ... passed to `fed_opt.fed_opt`.

    Returns:
      The algorithm; its client state is a DittoState and `personalize` returns v.
    """
    inner = fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer,
        server_optimizer=server_optimizer,
        local=local,
        **fed_opt_kwargs,
    )
    policy = inner.policy
    train_personal = personal_trainer(
        model, policy, personal_optimizer or client_optimizer, personal or local, lam
    )

    def init_client_state(params):
        return DittoState(inner.init_client_state(params), tree.select(policy.trainable, params))

    def client_update(received, client_state, examples, context):
        v, losses, _ = train_personal(received, client_state.personal, examples, context)
        output = inner.client_update(received, client_state.local, examples, context)
        metrics = {**output.metrics, "personal_loss": jnp.mean(losses)}
        return output._replace(client_state=DittoState(output.client_state, v), metrics=metrics)

    def personalize(received, client_state):
        return tree.merge(policy.trainable, client_state.personal, received)

    return inner._replace(
        init_client_state=init_client_state,
        client_update=client_update,
        personalize=personalize,
    )


def local_only(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    policy: policy_lib.ModulePolicy | None = None,
) -> base.FederatedAlgorithm:
    """Every client trains its own model on its own data; nothing is sent.

    Every trainable leaf of `policy` (default: all) is local, frozen ones stay
    frozen. Each sampled client takes `local.local_steps` steps per round with key
    fold_in(client key, PERSONAL_TAG), as Ditto's personal model with lambda 0, so
    the two are equal step for step. The engine runs it like any algorithm (the
    same cohorts, hence the same budget as the federated runs it is compared
    with); the server never changes (empty deltas). `evaluation.baselines.local_only`
    is the same idea outside the engine, with the budget of an expected participation.

    Returns:
      The algorithm (client state: every trainable leaf; personalize merges it in).
    """
    base_policy = policy or policy_lib.ModulePolicy()
    own = policy_lib.ModulePolicy(frozen=base_policy.frozen, default=policy_lib.LOCAL)
    inner = fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer,
        server_optimizer=optax.sgd(1.0),
        local=local,
        policy=own,
    )
    resolved = inner.policy
    train_personal = personal_trainer(model, resolved, client_optimizer, local, 0.0)

    def client_update(received, client_state, examples, context):
        v, losses, stats = train_personal(received, client_state, examples, context)
        num_examples = jnp.sum(examples["mask"].astype(jnp.float32))
        metrics = {"loss": jnp.mean(losses), "num_examples": num_examples, **stats}
        nothing = tree.select(resolved.federated, received)  # All None: nothing is sent.
        return base.ClientOutput(delta=nothing, weight=nothing, client_state=v, metrics=metrics)

    return inner._replace(client_update=client_update)
