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
hierarchical: FedAvg over a tree of groups with per-module schedules
(fedjax_m3t.hierarchy.hierarchical; needs `tree` and `schedule`).
qffl: q-FedAvg (q = qffl_q; 0 is FedAvg; L = 1 / client_learning_rate);
afl: agnostic FL, a mixture over the clients updated by the server (step afl_lr;
needs num_clients) (fedjax_m3t.algorithms.fair).
personalised ones (local_only, fedavg_ft, fedper, fedrep, fedbn, ditto,
local_adapters, tap): see fedjax_m3t/personalization/registry.py (FedAvg's server step
at server_learning_rate; hyperparameters in `personal`).
`dp_algorithm` builds any of them as user-level DP-FedAvg (privacy/central.py).
"""

import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import coordinate_median, selective, specs
from fedjax_m3t.algorithms import base, fair, fed_opt, local_training, server_optimizers
from fedjax_m3t.hierarchy import hierarchical, levels
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import registry as personal_registry
from fedjax_m3t.privacy import central
from fedjax_m3t.secure import aggregator as secure_aggregator

ALGORITHMS = (
    server_optimizers.SERVER_OPTIMIZERS
    + ("fedprox", "hierarchical")
    + personal_registry.NAMES
    + ("qffl", "afl")
)
CLIENT_OPTIMIZERS = ("sgd", "adam")
AGGREGATORS = {"mean": selective.AGGREGATOR, "median": coordinate_median.AGGREGATOR}
# Robust rules with their default parameters; build_algorithm also takes a spec
# string with parameters or per-module globs (aggregation/specs.py).
AGGREGATORS.update({name: specs.build(name) for name in specs.FACTORIES if name not in AGGREGATORS})
AGGREGATORS["secagg"] = secure_aggregator.AGGREGATOR  # Secure aggregation (fedjax_m3t/secure).


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
    tree: levels.Tree | None = None,
    schedule: hierarchical.Schedule | None = None,
    secagg: secure_aggregator.SecAggConfig | None = None,
    gradient: local_training.GradientFn = local_training.batch_gradient,
    client_transform: fed_opt.ClientTransform | None = None,
    personal: personal_registry.PersonalConfig | None = None,
    qffl_q: float = 1.0,
    afl_lr: float = 0.1,
    num_clients: int | None = None,
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
        'median' (selective coordinate-wise median, stacked: keeps the cohort's deltas),
        'trimmed_mean', 'norm_bound', 'krum', 'multi_krum', 'geometric_median'; or a
        spec with parameters and per-module rules, e.g. 'krum(f=2)' or
        'heads/**: median; trimmed_mean(trim=1)' (aggregation/specs.py);
        'secagg': the selective mean by secure aggregation (stacked; fedjax_m3t/secure).
      tree, schedule: name 'hierarchical' only: the groups above the clients
        (hierarchy.levels.from_federation) and the per-module periods
        (hierarchy.hierarchical.hffm_schedule); server_learning_rate is the groups' step.
      secagg: the secure aggregation settings of aggregator='secagg' (None: defaults).
      gradient: each local step's gradient rule (e.g. privacy.dp_sgd.dp_sgd_gradient).
      client_transform: applied on the client to its output (e.g. local DP).
      personal: the personalised algorithms' hyperparameters (default PersonalConfig()).
      qffl_q: 'qffl' only: q (0: FedAvg); the server step stays server_learning_rate.
      afl_lr: 'afl' only: the mixture's ascent step size.
      num_clients: 'afl' only: the federation's clients (the mixture's size).

    Raises:
      ValueError: for an unknown name (listing the known ones) or a bad policy pattern.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {name!r}; choose one of {ALGORITHMS}.")
    if aggregator == "secagg" and secagg is not None:
        rule = secure_aggregator.secure_aggregator(secagg)
    elif not isinstance(aggregator, str):
        rule = aggregator
    else:
        rule = AGGREGATORS[aggregator] if aggregator in AGGREGATORS else specs.build(aggregator)
    if name == "hierarchical":
        if tree is None or schedule is None:
            raise ValueError("'hierarchical' needs the tree of groups and a schedule.")
        return hierarchical.hierarchical(
            model,
            tree_=tree,
            schedule=schedule,
            client_optimizer=client_optimizer(client_optimizer_name, client_learning_rate),
            local=local,
            policy=policy,
            learning_rate=server_learning_rate,
        )
    if name in personal_registry.NAMES:
        args = personal_registry.BuildArgs(
            client_optimizer=client_optimizer(client_optimizer_name, client_learning_rate),
            server_optimizer=server_optimizers.server_optimizer("fedavg", server_learning_rate),
            local=local,
            policy=policy,
            aggregator=rule,
            personal=personal or personal_registry.PersonalConfig(),
        )
        return personal_registry.build(name, model, args)
    if name in ("qffl", "afl"):
        fedavg = build_algorithm(
            "fedavg",
            model,
            local=local,
            client_learning_rate=client_learning_rate,
            server_learning_rate=server_learning_rate,
            client_optimizer_name=client_optimizer_name,
            policy=policy,
            aggregator=aggregator,
            gradient=gradient,
            client_transform=client_transform,
        )
        if name == "qffl":
            return fair.qffl(fedavg, model, q=qffl_q, lipschitz=1.0 / client_learning_rate)
        if num_clients is None:
            raise ValueError("'afl' needs num_clients (the mixture is over the clients).")
        return fair.afl(fedavg, model, num_clients=num_clients, learning_rate=afl_lr)
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
        aggregator=rule,
        loss=loss,
        description=describe(
            name,
            client_optimizer_name=client_optimizer_name,
            client_learning_rate=client_learning_rate,
            server_learning_rate=server_learning_rate,
            prox_mu=prox_mu,
            momentum=momentum,
            aggregator=aggregator,
        ),
        gradient=gradient,
        client_transform=client_transform,
    )


def describe(
    name: str,
    *,
    client_optimizer_name: str,
    client_learning_rate: float,
    server_learning_rate: float,
    prox_mu: float,
    momentum: float,
    aggregator,
) -> dict:
    """A named algorithm's FederatedAlgorithm.description: name and the hyperparameters it uses.

    >>> describe('fedadam', client_optimizer_name='sgd', client_learning_rate=0.1,
    ...     server_learning_rate=0.01, prox_mu=0.01, momentum=0.9, aggregator='mean')['name']
    'fedadam'
    """
    out = {
        "name": name,
        "client_optimizer": client_optimizer_name,
        "client_lr": float(client_learning_rate),
        "server_lr": float(server_learning_rate),
        "aggregator": aggregator if isinstance(aggregator, str) else "custom",
    }
    if name == "fedprox":
        out["prox_mu"] = float(prox_mu)
    if name == "fedavgm":
        out["momentum"] = float(momentum)
    return out


def dp_algorithm(
    name: str, model: interface.Model, *, dp: central.DPConfig, **kwargs
) -> base.FederatedAlgorithm:
    """`name` (any of ALGORITHMS) as user-level DP-FedAvg (McMahan et al. 2018).

    Each client's update is clipped, the sum noised and divided by the fixed
    `dp.expected_cohort_size`, then the named server optimizer steps on it:
    'fedavg' is DP-FedAvg, 'fedadam' DP-FedAdam, and so on.

    >>> from fedjax_m3t.models import linear
    >>> from fedjax_m3t.data import spec
    >>> model = linear.build_linear_model(spec.DataSpec(
    ...     modalities=('tabular',), tasks=(spec.TaskSpec(name='y', kind='regression'),)))
    >>> algorithm = dp_algorithm('fedavgm', model, client_learning_rate=0.1,
    ...     local=local_training.LocalTrainingConfig(),
    ...     dp=central.DPConfig(noise_multiplier=1.0, clip=0.1, expected_cohort_size=8))

    Args:
      name: the algorithm (its server optimizer and local objective).
      model: the model.
      dp: the DP settings (privacy/central.py).
      **kwargs: the other arguments of `build_algorithm` (not `aggregator`).
    """
    return build_algorithm(name, model, aggregator=central.dp_aggregator(dp), **kwargs)
