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
"""The --dp_* flags of experiments/train.py: DP-FedAvg's aggregator, accountant and budget.

`plan` turns the privacy config group into typed library objects before training
(McMahan et al. 2018's DP-FedAvg, fedjax_m3t/privacy/central.py, accounted by
fedjax_m3t/privacy/accounting.py for the engine's actual sampler):

  * --target_epsilon without --dp_noise_multiplier calibrates z to spend the
    budget in --rounds (dp_accounting.calibrate_dp_mechanism);
  * --target_epsilon with --dp_noise_multiplier is a budget: the accountant is
    data-independent, so the last round it allows is known before training, and
    the run stops there with a message saying so.
"""

import dataclasses
import importlib
import math
from typing import Any, NamedTuple

from experiments import config as config_lib
from fedjax_m3t.privacy import central
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import loop as run_lib

INSTALL_HINT = 'pip install "fedjax_m3t[privacy]"'


def _accounting():
    """fedjax_m3t.privacy.accounting, imported on use: dp-accounting is an optional extra."""
    try:
        return importlib.import_module("fedjax_m3t.privacy.accounting")
    except ImportError as e:
        raise config_lib.SettingsError(
            f"Central DP needs dp-accounting ({e}): {INSTALL_HINT}."
        ) from None


class CentralPlan(NamedTuple):
    """What the binary needs for a central-DP run.

    Attributes:
      dp: the aggregator's settings (noise multiplier calibrated if asked).
      accountant: epsilon after r rounds, for the engine's sampling
        (accounting.CentralAccountant).
      rounds: the rounds the run may take (--rounds, or fewer if the budget ends first).
    """

    dp: central.DPConfig
    accountant: Any
    rounds: int


def plan(
    config: config_lib.TrainConfig, simulation: run_lib.SimulationConfig, num_clients: int
) -> CentralPlan | None:
    """The DP-FedAvg plan of the --dp_* flags, or None without --dp_clip.

    Raises:
      SettingsError: for settings the accountant or the aggregator refuses, or a
        budget smaller than one round's epsilon.
    """
    privacy = config.privacy
    if not privacy.dp_clip:
        return None
    say = logging_lib.log
    accounting = _accounting()
    num_devices = run_lib.engine_plan(simulation)[0]
    try:
        sampling = accounting.Sampling(
            num_clients=num_clients, cohort_size=simulation.cohort_size, num_devices=num_devices
        )
        z = privacy.dp_noise_multiplier
        if privacy.target_epsilon and not z:
            z = accounting.calibrate_noise(
                privacy.target_epsilon,
                delta=privacy.dp_delta,
                rounds=simulation.rounds,
                sampling=sampling,
                accountant=privacy.dp_accountant,
            )
            say(
                f"--target_epsilon={privacy.target_epsilon}: noise multiplier {z:.4f} spends "
                f"it in {simulation.rounds} rounds (delta {privacy.dp_delta})."
            )
        adaptive = None
        if privacy.dp_adaptive_quantile:
            adaptive = central.AdaptiveClipping(
                target_quantile=privacy.dp_adaptive_quantile, learning_rate=privacy.dp_adaptive_lr
            )
        dp = central.DPConfig(
            noise_multiplier=z,
            clip=privacy.dp_clip,
            expected_cohort_size=simulation.cohort_size,
            per_module=central.equal_shares(privacy.dp_clip_per_module)
            if privacy.dp_clip_per_module
            else None,
            adaptive=adaptive,
        )
        accountant = accounting.CentralAccountant(
            z, sampling=sampling, delta=privacy.dp_delta, accountant=privacy.dp_accountant
        )
    except ValueError as e:
        raise config_lib.SettingsError(f"Central DP: {e}") from None
    rounds = simulation.rounds
    if z == 0:
        say("Central DP with --dp_noise_multiplier=0: updates are clipped, nothing is private.")
    elif privacy.target_epsilon and privacy.dp_noise_multiplier:
        rounds = accountant.max_rounds(privacy.target_epsilon, simulation.rounds)
        if rounds == 0:
            raise config_lib.SettingsError(
                f"--target_epsilon={privacy.target_epsilon} is below one round's epsilon "
                f"({accountant.epsilon(1):.4g}): raise it or --dp_noise_multiplier."
            )
        if rounds < simulation.rounds:
            say(
                f"Privacy budget: epsilon {privacy.target_epsilon} at delta {privacy.dp_delta} "
                f"is spent after round {rounds} (round {rounds + 1} would reach "
                f"{accountant.epsilon(rounds + 1):.4f}): training stops at round {rounds} "
                f"of {simulation.rounds}."
            )
    say(describe(accountant))
    return CentralPlan(dp=dp, accountant=accountant, rounds=rounds)


def with_rounds(simulation: run_lib.SimulationConfig, central_plan: CentralPlan | None):
    """The simulation config cut to the rounds the budget allows."""
    if central_plan is None or central_plan.rounds == simulation.rounds:
        return simulation
    return dataclasses.replace(simulation, rounds=central_plan.rounds)


def round_metrics(central_plan: CentralPlan | None):
    """round -> {'epsilon': spent after it} for simulation.run's extra_metrics (or None)."""
    if central_plan is None or central_plan.dp.noise_multiplier == 0:
        return None
    return lambda round_num: {"epsilon": central_plan.accountant.epsilon(round_num)}


def describe(accountant) -> str:
    """One line: the sampling model, neighbouring relation and accountant."""
    sampling = accountant.sampling
    if sampling.full:
        how = "full participation (unsampled Gaussian)"
    else:
        held, sampled = sampling.worst_block()
        how = (
            f"fixed-size cohorts without replacement ({sampled} of {held} clients in the "
            f"worst of {sampling.num_devices} device block(s))"
        )
    relation = accountant.neighboring_relation.name.lower().replace("_", "-")
    return (
        f"Central DP (user level = institution level): {how}, {relation} neighbours, "
        f"{accountant.accountant.upper()} accountant, z = {accountant.noise_multiplier:.4f}."
    )


def summary(central_plan: CentralPlan, rounds_done: int) -> dict:
    """The privacy spent by a run of `rounds_done` rounds (final table and JSON)."""
    accountant = central_plan.accountant
    eps = accountant.epsilon(rounds_done)
    return {
        "level": "institution (user-level DP-FedAvg)",
        "epsilon": None if math.isinf(eps) else eps,
        "delta": accountant.delta,
        "rounds": rounds_done,
        "noise_multiplier": central_plan.dp.noise_multiplier,
        "clip": central_plan.dp.clip,
        "accountant": accountant.accountant,
        "neighboring_relation": accountant.neighboring_relation.name,
        "dropped_rdp_orders": accountant.dropped_orders,
    }


def summary_line(info: dict) -> str:
    """The final table's privacy line."""
    eps = "inf (no noise)" if info["epsilon"] is None else f"{info['epsilon']:.4f}"
    return (
        f"\nPrivacy spent, institution level (central DP-FedAvg): epsilon {eps} at delta "
        f"{info['delta']:g} after {info['rounds']} rounds ({info['accountant'].upper()}, "
        f"{info['neighboring_relation'].lower()} neighbours)."
    )
