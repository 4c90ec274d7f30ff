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
"""FedOpt: local optax training, an aggregator, a lazy server optax step.

Covers FedAvg (McMahan et al., 2017, arXiv:1602.05629), FedAvgM, FedAdam, FedYogi
and FedAdagrad (Reddi et al., 2021, arXiv:2003.00295, Algorithm 2) through the
server optimizer, and FedProx (Li et al., 2020) through the local loss
(`local_training.proximal`). `registry.build_algorithm` builds them by name.

The server step is lazy per leaf (`server_optimizers.lazy`): a leaf that no
client trained this round (aggregate weight 0) keeps its value and its
optimizer state, step counts included, so a module trained in 1 round of 10
moves per trained round exactly as one trained every round would.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import base, local_training, server_optimizers
from fedjax_m3t.models import interface

ClientTransform = Callable[[base.ClientOutput, t.PRNGKey], base.ClientOutput]
"""(client output, key) -> client output; runs on the client after local training."""

LossFactory = Callable[[policy_lib.ResolvedPolicy], local_training.LossFn]
"""resolved policy -> local objective (e.g. FedProx's pull on the federated leaves)."""


def fed_opt(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    server_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    policy: policy_lib.ModulePolicy | None = None,
    aggregator: aggregation_base.Aggregator = selective.AGGREGATOR,
    client_transform: ClientTransform | None = None,
    loss: LossFactory | None = None,
    broadcast: base.BroadcastFn = base.global_broadcast,
    description: dict | None = None,
    gradient: local_training.GradientFn = local_training.batch_gradient,
) -> base.FederatedAlgorithm:
    """Builds a FedOpt algorithm.

    >>> import optax
    >>> from fedjax_m3t.models import linear
    >>> from fedjax_m3t.data import spec
    >>> model = linear.build_linear_model(spec.DataSpec(
    ...     modalities=('tabular',), tasks=(spec.TaskSpec(name='y', kind='regression'),)))
    >>> algorithm = fed_opt(model, client_optimizer=optax.sgd(0.1),
    ...     server_optimizer=optax.sgd(1.0), local=local_training.LocalTrainingConfig())

    Args:
      model: the model.
      client_optimizer: optax transformation for local steps.
      server_optimizer: optax transformation applied to the aggregated delta (made
        lazy per leaf here).
      local: local training hyperparameters (steps, batch size, order).
      policy: which modules are federated, local or frozen (default: all federated).
      aggregator: the reduction of client deltas (default: selective weighted mean).
      client_transform: applied to each ClientOutput before it leaves the client
        (e.g. clipping and noise for differential privacy), with its own key
        (fold_in(client key, TRANSFORM_TAG): the training keys do not change).
      loss: builds the local objective from the resolved policy (default:
        `local_training.task_loss(model)`; FedProx: `fedprox_loss(model, mu)`).
      broadcast: what each client receives (default: the global params).
      description: the algorithm's name and hyperparameters as JSON values (see
        FederatedAlgorithm.description); `local` is added to it.
      gradient: each local step's gradient rule (default: the batch gradient;
        student-level DP-SGD: `privacy.dp_sgd.dp_sgd_gradient`).

    Returns:
      The algorithm.

    Raises:
      ValueError: if a policy pattern matches no parameter, or it freezes them all.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    resolved = policy_lib.require_trainable(
        policy_lib.resolve(policy or policy_lib.ModulePolicy(), shapes)
    )
    objective = loss(resolved) if loss is not None else None
    train_locally = local_training.make_client_update(
        model, resolved, client_optimizer, local, loss=objective, gradient=gradient
    )
    lazy_optimizer = server_optimizers.lazy(server_optimizer)

    def client_update(received, client_state, examples, context):
        output = train_locally(received, client_state, examples, context)
        if client_transform is None:
            return output
        key = jax.random.fold_in(context.rng, local_training.TRANSFORM_TAG)
        return client_transform(output, key)

    def init(params):
        shared = tree.select(resolved.federated, params)
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), shared)
        return base.ServerState(
            params=params,
            opt_state=lazy_optimizer.init(shared),
            agg_state=aggregator.init_state(template),
            round=jnp.zeros((), jnp.int32),
        )

    def init_client_state(params):
        return tree.select(resolved.local, params)

    def server_apply(state, aggregate, rng):
        del rng  # Unused: the FedOpt step is deterministic.
        shared = tree.select(resolved.federated, state.params)
        trained = jax.tree.map(lambda w: w > 0, aggregate.weight)
        updates, opt_state = lazy_optimizer.update(
            aggregate.delta, state.opt_state, shared, trained=trained
        )
        params = tree.merge(resolved.federated, optax.apply_updates(shared, updates), state.params)
        flags = [w.astype(jnp.float32) for w in jax.tree.leaves(trained)]
        metrics = {
            "update_norm": tree.l2_norm(aggregate.delta),
            "trained_fraction": jnp.mean(jnp.stack(flags)) if flags else jnp.zeros(()),
        }
        return state._replace(params=params, opt_state=opt_state, round=state.round + 1), metrics

    return base.FederatedAlgorithm(
        policy=resolved,
        aggregator=aggregator,
        init=init,
        init_client_state=init_client_state,
        broadcast=broadcast,
        client_update=client_update,
        personalize=base.merge_local(resolved),
        server_apply=server_apply,
        description=None if description is None else {**description, **_local_json(local)},
    )


def _local_json(local: local_training.LocalTrainingConfig) -> dict:
    """The local training hyperparameters as JSON values."""
    return {
        "local_steps": local.local_steps,
        "batch_size": local.batch_size,
        "shuffle": local.shuffle,
    }


def fedprox_loss(model: interface.Model, mu: float) -> LossFactory:
    """FedProx's objective: the task loss plus (mu/2)||w - w_received||^2 on federated leaves."""

    def build(policy: policy_lib.ResolvedPolicy) -> local_training.LossFn:
        return local_training.proximal(local_training.task_loss(model), mu, policy.federated)

    return build
