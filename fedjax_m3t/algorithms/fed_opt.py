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
"""FedOpt: local optax training, selective aggregation, a server optax step.

Covers FedAvg (McMahan et al., 2017, arXiv:1602.05629), FedAvgM, FedAdam, FedYogi
and FedAdagrad (Reddi et al., 2021, arXiv:2003.00295) through the server
optimizer, and FedProx (Li et al., 2020) through `LocalTrainingConfig.prox_mu`.
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
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.models import interface

ClientTransform = Callable[[base.ClientOutput, t.PRNGKey], base.ClientOutput]
"""(client output, key) -> client output; runs on the client after local training."""


def fed_opt(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    server_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    policy: policy_lib.ModulePolicy | None = None,
    aggregator: aggregation_base.Aggregator = selective.AGGREGATOR,
    client_transform: ClientTransform | None = None,
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
      server_optimizer: optax transformation applied to the aggregated delta.
      local: local training hyperparameters (steps, batch size, FedProx mu).
      policy: which modules are federated, local or frozen (default: all federated).
      aggregator: the reduction of client deltas (default: selective weighted mean).
      client_transform: applied to each ClientOutput before it leaves the client
        (e.g. clipping and noise for differential privacy), with its own key.

    Returns:
      The algorithm.

    Raises:
      ValueError: if a policy pattern matches no parameter.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    resolved = policy_lib.resolve(policy or policy_lib.ModulePolicy(), shapes)
    train_locally = local_training.make_client_update(model, resolved, client_optimizer, local)

    def client_update(server_params, client_state, examples, rng):
        if client_transform is None:
            return train_locally(server_params, client_state, examples, rng)
        train_key, transform_key = jax.random.split(rng)
        output = train_locally(server_params, client_state, examples, train_key)
        return client_transform(output, transform_key)

    def init(params):
        shared = tree.select(resolved.federated, params)
        return base.ServerState(
            params=params,
            opt_state=server_optimizer.init(shared),
            round=jnp.zeros((), jnp.int32),
        )

    def init_client_state(params):
        return tree.select(resolved.local, params)

    def server_apply(state, aggregate):
        shared = tree.select(resolved.federated, state.params)
        updates, opt_state = server_optimizer.update(aggregate.delta, state.opt_state, shared)
        stepped = optax.apply_updates(shared, updates)
        # Modules nobody trained this round keep their values exactly.
        stepped = jax.tree.map(
            lambda w, new, old: jnp.where(w > 0, new, old), aggregate.weight, stepped, shared
        )
        params = tree.merge(resolved.federated, stepped, state.params)
        trained = [w > 0 for w in jax.tree.leaves(aggregate.weight)]
        metrics = {
            "update_norm": tree.l2_norm(aggregate.delta),
            "trained_fraction": jnp.mean(jnp.stack(trained).astype(jnp.float32))
            if trained
            else jnp.zeros(()),
        }
        return base.ServerState(params, opt_state, state.round + 1), metrics

    def server_update(state, outputs):
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), outputs.delta)
        acc = aggregator.accumulate(aggregator.init(template), outputs.delta, outputs.weight)
        return server_apply(state, aggregator.finalize(acc))

    return base.FederatedAlgorithm(
        policy=resolved,
        aggregator=aggregator,
        init=init,
        init_client_state=init_client_state,
        client_update=client_update,
        server_apply=server_apply,
        server_update=server_update,
    )


def fed_avg(
    model: interface.Model,
    *,
    client_learning_rate: float,
    local: local_training.LocalTrainingConfig,
    server_learning_rate: float = 1.0,
    policy: policy_lib.ModulePolicy | None = None,
) -> base.FederatedAlgorithm:
    """FedAvg: local SGD, server SGD on the averaged delta (lr 1 = plain averaging)."""
    return fed_opt(
        model,
        client_optimizer=optax.sgd(client_learning_rate),
        server_optimizer=optax.sgd(server_learning_rate),
        local=local,
        policy=policy,
    )
