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
"""--dataset=csv takes its own defaults for the flags a user leaves unset (issue #18, 1.9)."""

from absl import flags

from experiments import config as config_lib

FIELDS = ("width", "depth", "num_heads", "client_lr", "rounds")


def _config(*argv):
    flag_values = flags.FlagValues()
    config_lib.define_flags(flag_values, sys_argv=["train", *argv])
    flag_values(["train", *argv])
    flat = config_lib.from_flags(flag_values).flat()
    return tuple(flat[name] for name in FIELDS)


def test_csv_takes_its_defaults_and_other_datasets_keep_theirs():
    assert config_lib.CSV_DEFAULTS == dict(zip(FIELDS, (16, 1, 2, 1e-3, 100), strict=True))
    assert _config("--dataset=csv") == (16, 1, 2, 1e-3, 100)
    assert _config() == (32, 2, 4, 3e-3, 40)  # Synthetic: the generic defaults.
    assert _config("--dataset=exam") == (32, 2, 4, 3e-3, 40)
    assert config_lib.TrainConfig().data.standardize_targets  # Targets are standardised.


def test_what_the_user_sets_wins_over_the_csv_defaults():
    # A flag given at its generic value is still the user's choice.
    assert _config("--dataset=csv", "--width=32", "--num_heads=4") == (32, 1, 4, 1e-3, 100)
    assert _config("--dataset=csv", "--config.run.rounds=40") == (16, 1, 2, 1e-3, 40)
    # A config file's own values (tiny: width 16, depth 1, 2 heads, 2 rounds) stay.
    assert _config("--dataset=csv", "--preset=tiny") == (16, 1, 2, 1e-3, 2)
