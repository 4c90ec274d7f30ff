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
"""The personalised algorithms by name (algorithms/registry.py dispatches here).

  local_only      every client trains its own model, nothing is sent
  fedavg_ft       FedAvg, then k fine-tuning steps per client (fine_tune.py)
  fedper          FedAvg with local heads (policies.py)
  fedrep          local heads trained first, then the shared body (fedrep.py)
  fedbn           FedAvg with local LayerNorms (policies.py)
  ditto           FedAvg plus a personal model pulled to the global (personal_model.py)
  local_adapters  FedAvg with local LoRA factors (policies.py)
  tap             FedAvg plus a personal model with adaptive replacement and
                  post-FL distillation (tap.py)

A new method (e.g. TAP) is one more entry of BUILDERS: a function
(model, BuildArgs) -> FederatedAlgorithm, and its hyperparameters fields of
PersonalConfig.
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import fedrep, fine_tune, personal_model, policies, tap
from fedjax_m3t.personalization import tap as tap_lib  # PersonalConfig.tap shadows the name.


@dataclasses.dataclass(frozen=True, kw_only=True)
class PersonalConfig:
    """Hyperparameters of the personalised algorithms.

    Attributes:
      fine_tune_steps: fedavg_ft's k, local steps after the last round.
      fedrep_head_steps: fedrep's head-only steps of each round's local_steps
        (None: half of them, rounded up; the rest train the body).
      ditto_lambda: ditto's proximal weight lambda.
      ditto_steps: ditto's personal steps per round (None: local_steps).
      tap: TAP's settings; its stage-2 `steps` are replaced by fine_tune_steps,
        so that one flag sets the post-FL steps of fedavg_ft and tap alike.
    """

    fine_tune_steps: int = 5
    fedrep_head_steps: int | None = None
    ditto_lambda: float = 0.1
    ditto_steps: int | None = None
    tap: tap_lib.TAPConfig = tap_lib.TAPConfig()


class BuildArgs(NamedTuple):
    """What every builder gets (from algorithms.registry.build_algorithm)."""

    client_optimizer: optax.GradientTransformation
    server_optimizer: optax.GradientTransformation
    local: local_training.LocalTrainingConfig
    policy: policy_lib.ModulePolicy | None
    aggregator: aggregation_base.Aggregator
    personal: PersonalConfig


def _fed_opt(model, args, policy):
    return fed_opt.fed_opt(
        model,
        client_optimizer=args.client_optimizer,
        server_optimizer=args.server_optimizer,
        local=args.local,
        policy=policy,
        aggregator=args.aggregator,
    )


def _shapes(model):
    return jax.eval_shape(model.init, jax.random.key(0))


def _fedavg_ft(model, args):
    return fine_tune.with_fine_tuning(
        _fed_opt(model, args, args.policy),
        model,
        optimizer=args.client_optimizer,
        local=args.local,
        steps=args.personal.fine_tune_steps,
    )


def _fedrep(model, args):
    head_steps = args.personal.fedrep_head_steps
    if head_steps is None:
        head_steps = (args.local.local_steps + 1) // 2
    return fedrep.fedrep(
        model,
        client_optimizer=args.client_optimizer,
        server_optimizer=args.server_optimizer,
        local=args.local,
        head_steps=head_steps,
        policy=args.policy,
        aggregator=args.aggregator,
    )


def _ditto(model, args):
    steps = args.personal.ditto_steps
    personal = None if steps is None else dataclasses.replace(args.local, local_steps=steps)
    return personal_model.ditto(
        model,
        client_optimizer=args.client_optimizer,
        server_optimizer=args.server_optimizer,
        local=args.local,
        lam=args.personal.ditto_lambda,
        personal=personal,
        policy=args.policy,
        aggregator=args.aggregator,
    )


def _tap(model, args):
    config = dataclasses.replace(args.personal.tap, steps=args.personal.fine_tune_steps)
    return tap.tap(
        model,
        client_optimizer=args.client_optimizer,
        server_optimizer=args.server_optimizer,
        local=args.local,
        config=config,
        policy=args.policy,
        aggregator=args.aggregator,
    )


BUILDERS: dict[str, Callable[[interface.Model, BuildArgs], base.FederatedAlgorithm]] = {
    "local_only": lambda model, args: personal_model.local_only(
        model, client_optimizer=args.client_optimizer, local=args.local, policy=args.policy
    ),
    "fedavg_ft": _fedavg_ft,
    "fedper": lambda model, args: _fed_opt(model, args, policies.fedper(args.policy)),
    "fedrep": _fedrep,
    "fedbn": lambda model, args: _fed_opt(model, args, policies.fedbn(_shapes(model), args.policy)),
    "ditto": _ditto,
    "local_adapters": lambda model, args: _fed_opt(
        model, args, policies.local_adapters(_shapes(model), args.policy)
    ),
    "tap": _tap,
}
NAMES = tuple(BUILDERS)


def build(name: str, model: interface.Model, args: BuildArgs) -> base.FederatedAlgorithm:
    """The personalised algorithm `name` (one of NAMES).

    Raises:
      ValueError: for an unknown name, or a policy the method cannot use (e.g.
        local_adapters on a model without LoRA).
    """
    if name not in BUILDERS:
        raise ValueError(f"Unknown personalised algorithm {name!r}; choose one of {NAMES}.")
    return BUILDERS[name](model, args)
