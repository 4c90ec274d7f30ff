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
"""FedProx (Li et al., 2020, "Federated Optimization in Heterogeneous Networks",
arXiv:1812.06127): FedAvg whose local objective adds (mu/2)||w - w_server||^2
over the federated leaves, limiting client drift under heterogeneity.
"""

import dataclasses

import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import interface


def fed_prox(
    model: interface.Model,
    *,
    mu: float,
    client_learning_rate: float,
    local: local_training.LocalTrainingConfig,
    server_optimizer: optax.GradientTransformation | None = None,
    policy: policy_lib.ModulePolicy | None = None,
) -> base.FederatedAlgorithm:
    """FedProx with proximal weight `mu` and local SGD (server default: plain averaging)."""
    return fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(client_learning_rate),
        server_optimizer=server_optimizer or optax.sgd(1.0),
        local=dataclasses.replace(local, prox_mu=mu),
        policy=policy,
    )
