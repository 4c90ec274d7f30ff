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
"""Algorithms by name, for experiment binaries and notebooks.

fedavg, fedavgm, fedadam, fedyogi, fedadagrad: FedOpt with that server optimizer;
fedprox: FedAvg with the FedProx proximal term (mu = prox_mu);
personalised ones (local_only, fedavg_ft, fedper, fedrep, fedbn, ditto,
local_adapters, tap): see fedjax_m3t/personalization/registry.py (FedAvg's server step
at server_learning_rate; hyperparameters in `personal`).
"""

import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import coordinate_median, selective
from fedjax_m3t.algorithms import base, fed_opt, local_training, server_optimizers
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import registry as personal_registry

ALGORITHMS = server_optimizers.SERVER_OPTIMIZERS + ("fedprox",) + personal_registry.NAMES
CLIENT_OPTIMIZERS = ("sgd", "adam")
AGGREGATORS = {"mean": selective.AGGREGATOR, "median": coordinate_median.AGGREGATOR}


def client_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """'sgd' or 'adam' with the given learning rate."""
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"Unknown client optimizer {name!r}; choose one of {CLIENT_OPTIMIZERS}.")


def build_algorithm(
    name: str,
    model: interface.Model,
    *,
    local: local_training.LocalTrainingConfig,
    client_learning_rate: float,
    server_learning_rate: float = 1.0,
    client_optimizer_name: str = "sgd",
    prox_mu: float = 0.01,
    momentum: float = 0.9,
    policy: policy_lib.ModulePolicy | None = None,
    aggregator: str = "mean",
    personal: personal_registry.PersonalConfig | None = None,
) -> base.FederatedAlgorithm:
    """A named algorithm.

    >>> from fedjax_m3t.models import linear
    >>> from fedjax_m3t.data import spec
    >>> model = linear.build_linear_model(spec.DataSpec(
    ...     modalities=('tabular',), tasks=(spec.TaskSpec(name='y', kind='regression'),)))
    >>> algorithm = build_algorithm('fedadam', model, client_learning_rate=0.1,
    ...     server_learning_rate=0.01, local=local_training.LocalTrainingConfig())

    Args:
      name: one of ALGORITHMS.
      model: the model.
      local: local training hyperparameters.
      client_learning_rate, server_learning_rate: the two step sizes.
      client_optimizer_name: one of CLIENT_OPTIMIZERS.
      prox_mu: FedProx's proximal weight (name 'fedprox' only).
      momentum: FedAvgM's server momentum.
      policy: which modules are federated, local or frozen.
      aggregator: one of AGGREGATORS: 'mean' (selective weighted mean, streamed) or
        'median' (selective coordinate-wise median, stacked: keeps the cohort's deltas).
      personal: the personalised algorithms' hyperparameters (default PersonalConfig()).

    Raises:
      ValueError: for an unknown name (listing the known ones) or a bad policy pattern.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {name!r}; choose one of {ALGORITHMS}.")
    if aggregator not in AGGREGATORS:
        raise ValueError(f"Unknown aggregator {aggregator!r}; choose one of {tuple(AGGREGATORS)}.")
    if name in personal_registry.NAMES:
        args = personal_registry.BuildArgs(
            client_optimizer=client_optimizer(client_optimizer_name, client_learning_rate),
            server_optimizer=server_optimizers.server_optimizer("fedavg", server_learning_rate),
            local=local,
            policy=policy,
            aggregator=AGGREGATORS[aggregator],
            personal=personal or personal_registry.PersonalConfig(),
        )
        return personal_registry.build(name, model, args)
    server_name = "fedavg" if name == "fedprox" else name
    loss = fed_opt.fedprox_loss(model, prox_mu) if name == "fedprox" else None
    return fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer(client_optimizer_name, client_learning_rate),
        server_optimizer=server_optimizers.server_optimizer(
            server_name, server_learning_rate, momentum=momentum
        ),
        local=local,
        policy=policy,
        aggregator=AGGREGATORS[aggregator],
        loss=loss,
    )
