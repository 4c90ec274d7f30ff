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
"""The --dp_* flags: calibration, the budget's last round, epsilon in the metrics."""

import json

import pytest

from experiments import central_privacy, train_lib
from experiments import config as config_lib
from fedjax_m3t.privacy import accounting


def _tiny(**overrides) -> config_lib.TrainConfig:
    tiny = config_lib.from_config_dict(config_lib.load_preset("tiny"))
    return tiny.override(num_devices=1, **overrides)


def _plan(**overrides):
    config = _tiny(**overrides)
    simulation = train_lib.simulation_config(config, config.data.num_clients)
    return central_privacy.plan(config, simulation, config.data.num_clients), simulation


def test_no_dp_without_a_clip():
    assert _plan()[0] is None
    with pytest.raises(config_lib.SettingsError, match="needs --dp_clip"):
        _tiny(dp_noise_multiplier=1.0)


def test_target_epsilon_calibrates_the_noise():
    # Tiny: 4 institutions, all of them every round (cohort min(8, 4) = 4).
    plan, simulation = _plan(dp_clip=0.5, target_epsilon=8.0, rounds=10)
    assert simulation.cohort_size == 4 and plan.accountant.sampling.full
    assert plan.rounds == 10
    eps = plan.accountant.epsilon(10)
    assert eps <= 8.0
    z = plan.dp.noise_multiplier
    # Slightly less noise overspends: the calibration is tight.
    less = accounting.CentralAccountant(z - 1e-3, sampling=plan.accountant.sampling, delta=1e-5)
    assert less.epsilon(10) > 8.0


def test_budget_sets_the_last_round():
    plan, _ = _plan(dp_clip=0.5, dp_noise_multiplier=2.0, cohort_size=2, rounds=50)
    budget = plan.accountant.epsilon(7) + 1e-9
    plan, _ = _plan(
        dp_clip=0.5, dp_noise_multiplier=2.0, cohort_size=2, rounds=50, target_epsilon=budget
    )
    assert plan.rounds == 7
    assert plan.accountant.epsilon(8) > budget
    with pytest.raises(config_lib.SettingsError, match="below one round"):
        _plan(dp_clip=0.5, dp_noise_multiplier=2.0, target_epsilon=1e-3)
    with pytest.raises(config_lib.SettingsError, match="2 x clipped_count_stddev"):
        _plan(dp_clip=0.5, dp_noise_multiplier=1.0, cohort_size=2, dp_adaptive_quantile=0.5)
    with pytest.raises(config_lib.SettingsError, match="no fixed-size"):
        _plan(dp_clip=0.5, dp_noise_multiplier=2.0, cohort_size=2, dp_accountant="pld")


@pytest.mark.slow
def test_dp_run_reports_epsilon_and_stops_when_spent(tmp_path):
    # z = 0.15 < 2 sigma_b = 2 x 0.05 x 2 clients: small enough for adaptive clipping.
    probe, _ = _plan(dp_clip=0.5, dp_noise_multiplier=0.15, cohort_size=2, rounds=3)
    budget = probe.accountant.epsilon(1) + 1e-9  # Enough for 1 round of 3.
    workdir = str(tmp_path / "run")
    result = train_lib.train(
        _tiny(
            workdir=workdir,
            dp_clip=0.5,
            dp_noise_multiplier=0.15,
            cohort_size=2,
            rounds=3,
            target_epsilon=budget,
            dp_adaptive_quantile=0.5,
        )
    )
    assert [h["round"] for h in result.history] == [1]
    assert result.history[0]["epsilon"] == pytest.approx(probe.accountant.epsilon(1), rel=1e-12)
    with open(f"{workdir}/metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert records[0]["epsilon"] == pytest.approx(probe.accountant.epsilon(1), rel=1e-12)
    with open(f"{workdir}/final_metrics.json") as f:
        privacy = json.load(f)["privacy"]
    assert privacy["rounds"] == 1
    assert privacy["neighboring_relation"] == "REPLACE_ONE"
    assert privacy["epsilon"] == pytest.approx(probe.accountant.epsilon(1), rel=1e-12)
    # Adaptive clipping moved the clip kept in the aggregator state.
    assert float(result.server_state.agg_state.clip) != 0.5
