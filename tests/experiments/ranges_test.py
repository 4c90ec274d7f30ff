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
"""Every numeric flag has a range, checked when the config is built (issue #18, 1.7)."""

import dataclasses

import pytest

from experiments import config as config_lib


def _numeric_fields():
    for cls in config_lib.GROUPS.values():
        for field in dataclasses.fields(cls):
            kind, _ = config_lib._kind(field)
            if kind in (int, float):
                yield field.name


def test_every_numeric_flag_has_a_range_and_its_default_is_in_it():
    names = list(_numeric_fields())
    assert len(names) >= 28
    missing = [n for n in names if n not in config_lib.RANGES]
    assert missing == [], f"add a range to config.RANGES for {missing}"
    assert set(config_lib.RANGES) <= set(names)  # No stale entries.
    config_lib.TrainConfig()  # The defaults pass their own checks.


@pytest.mark.parametrize(
    "name, bad, good",
    [
        ("batch_size", -4, 0),
        ("num_clients", 0, 1),
        ("client_lr", 0.0, 1e-4),
        ("client_lr", float("inf"), 10.0),
        ("server_lr", float("nan"), 1.0),
        ("test_fraction", 0.0, 0.1),
        ("test_fraction", 1.0, 0.9),
        ("modality_missing_prob", -0.1, 0.0),
        ("modality_missing_prob", 1.01, 1.0),
        ("server_momentum", 1.0, 0.0),
        ("dirichlet_alpha", 0.0, 0.1),
        ("checkpoint_every", -1, 0),
        ("seed", -1, 4294967295),
        ("seed", 4294967296, 0),
        ("max_classes", 1, 2),
    ],
)
def test_out_of_range_values_name_the_flag_and_the_range(name, bad, good):
    with pytest.raises(config_lib.SettingsError, match=f"^--{name} must be "):
        config_lib.TrainConfig().override(**{name: bad})
    assert config_lib.TrainConfig().override(**{name: good}).flat()[name] == good


def test_optional_values_may_stay_unset():
    config = config_lib.TrainConfig().override(dirichlet_alpha=None, label_skew_alpha=None)
    assert config.data.dirichlet_alpha is None
