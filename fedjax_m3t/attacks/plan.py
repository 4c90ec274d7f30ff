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
"""One attack on a run, from a few typed settings: the glue experiment binaries use.

`AttackPlan(attack, fraction, seed)` names one attack of ATTACKS for a fraction of
institutions; `poison` applies a data attack to the federation, `arm` an update
attack to the algorithm (each is the identity for the other kind and for
'none'), and `backdoor_success_rate` measures a backdoor on the test split.

The backdoor forces class `backdoor_target` of `backdoor_task` (None: the first
binary or multiclass task) with a 4 x 4 patch on the `backdoor_modality` image.
"""

import dataclasses

import jax
import numpy as np

from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.attacks import data as data_attacks
from fedjax_m3t.attacks import selection, updates
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.evaluation import report
from fedjax_m3t.models import interface

DATA_ATTACKS = ("label_flip", "backdoor")
ATTACKS = ("none",) + updates.ATTACKS + DATA_ATTACKS


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttackPlan:
    """Which attack, by how many institutions.

    Attributes:
      attack: one of ATTACKS.
      fraction: share of institutions that attack, in [0, 1].
      seed: which institutions attack (selection.choose_attackers) and which of
        their examples a backdoor poisons.
      scale: the update scale of 'sign_flip' / 'scale' (None: 1 / 10).
      backdoor_task: the task a backdoor forces (None: the first classification task).
      backdoor_target: the class it forces.
      backdoor_modality: the image modality carrying the trigger.
      backdoor_fraction: share of each attacker's examples poisoned.
    """

    attack: str = "none"
    fraction: float = 0.0
    seed: int = 0
    scale: float | None = None
    backdoor_task: str | None = None
    backdoor_target: int = 0
    backdoor_modality: str = "image"
    backdoor_fraction: float = 0.5

    def __post_init__(self):
        if self.attack not in ATTACKS:
            raise ValueError(f"Unknown attack {self.attack!r}; choose one of {ATTACKS}.")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"The attack fraction must be in [0, 1], got {self.fraction}.")

    def attackers(self, num_clients: int) -> np.ndarray:
        """bool [num_clients]: the attacking institutions (none for 'none')."""
        fraction = 0.0 if self.attack == "none" else self.fraction
        return selection.choose_attackers(num_clients, fraction, self.seed)

    def task(self, federation: federation_lib.Federation) -> str:
        """The backdoor's task."""
        if self.backdoor_task is not None:
            return self.backdoor_task
        kinds = [t.name for t in federation.spec.tasks if t.kind in ("binary", "multiclass")]
        if not kinds:
            raise ValueError("A backdoor needs a binary or multiclass task; the data has none.")
        return kinds[0]


def poison(plan: AttackPlan, federation: federation_lib.Federation) -> federation_lib.Federation:
    """The federation with the plan's data attack applied (unchanged for other attacks)."""
    attackers = plan.attackers(federation.num_clients)
    if plan.attack == "label_flip":
        return data_attacks.flip_labels(federation, attackers)
    if plan.attack == "backdoor":
        return data_attacks.backdoor(
            federation,
            attackers,
            task=plan.task(federation),
            target=plan.backdoor_target,
            modality=plan.backdoor_modality,
            fraction=plan.backdoor_fraction,
            seed=plan.seed,
        )
    return federation


def arm(
    plan: AttackPlan, algorithm: base.FederatedAlgorithm, num_clients: int
) -> base.FederatedAlgorithm:
    """The algorithm with the plan's update attack (unchanged for other attacks)."""
    if plan.attack not in updates.ATTACKS:
        return algorithm
    return updates.with_update_attack(
        algorithm, plan.attackers(num_clients), plan.attack, scale=plan.scale
    )


def backdoor_success_rate(
    plan: AttackPlan,
    model: interface.Model,
    params: t.Params,
    federation: federation_lib.Federation,
) -> float:
    """The global model's attack success rate on the triggered test split (data.py)."""
    task = plan.task(federation)
    triggered, counted = data_attacks.triggered_test(
        federation.test, task=task, target=plan.backdoor_target, modality=plan.backdoor_modality
    )
    predictions = jax.device_get(report.Evaluator(model).predict(params, triggered))
    return data_attacks.attack_success_rate(
        federation.spec, predictions, counted, task=task, target=plan.backdoor_target
    )
