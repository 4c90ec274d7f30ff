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
"""Tests for the typed config of experiments/train.py: flags, --config, overrides."""

import dataclasses
import doctest
import json
import os

import pytest
from absl import flags

from experiments import config as config_lib
from experiments.configs import default, tiny

TINY_FILE = os.path.join(os.path.dirname(config_lib.DEFAULT_CONFIG_FILE), "tiny.py")


def _parse(*args: str) -> config_lib.TrainConfig:
    """from_flags on a fresh set of flags parsed from `args`."""
    argv = ["train", *args]
    flag_values = flags.FlagValues()
    config_lib.define_flags(flag_values, sys_argv=argv)
    flag_values(argv)
    return config_lib.from_flags(flag_values)


def test_no_flags_give_the_defaults_and_default_py_is_them():
    assert _parse() == config_lib.TrainConfig()
    assert config_lib.from_config_dict(default.get_config()) == config_lib.TrainConfig()


def test_every_field_is_a_flag_with_its_default_and_help():
    flag_values = flags.FlagValues()
    config_lib.define_flags(flag_values, sys_argv=["train"])
    defaults = config_lib.TrainConfig().flat()
    assert len(defaults) == 103  # 56 + trust 5, robust 4, hierarchy 3, secagg 8, dp 4,
    # personal 4, central dp 8, tap 9, fair 2.
    for name, value in defaults.items():
        flag_default = flag_values[name].default
        assert (tuple(flag_default) if isinstance(value, tuple) else flag_default) == value
        assert flag_values[name].help
    assert set(config_lib.RESUMABLE) <= set(defaults)


def test_flags_win_over_the_file_and_overrides_over_the_file():
    config = _parse(f"--config={TINY_FILE}", "--config.model.width=64", "--rounds=7")
    # rounds: the flag; width: the override; depth: the file (tiny); lora_rank: default.
    assert (config.run.rounds, config.model.width, config.model.depth) == (7, 64, 1)
    assert config.model.lora_rank == 4
    # The list flags and the tuple fields agree.
    config = _parse("--frozen=encoders/**,heads/x", "--config.algorithm.local=heads/y")
    assert config.algorithm.frozen == ("encoders/**", "heads/x")
    assert config.algorithm.local == ("heads/y",)


def test_preset_is_its_config_file_and_takes_overrides():
    assert _parse("--preset=tiny") == _parse(f"--config={TINY_FILE}")
    assert _parse("--preset=tiny") == config_lib.from_config_dict(tiny.get_config())
    config = _parse("--preset=tiny", "--config.model.width=8", "--num_clients=6")
    assert (config.model.width, config.data.num_clients, config.run.rounds) == (8, 6, 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset=tiny", f"--config={TINY_FILE}"], "both name a config file"),
        (["--config.model.width=64", "--width=32"], "set the same field"),
        (["--width=15", "--num_heads=2"], "divisible by --num_heads"),
        (["--dataset=nope"], r"\['nope'\] unknown; choose from"),
        (["--dataset=csv+oulad"], "can be combined with '\\+', not \\['csv'\\]"),
        (["--group_by=sex"], "with --baselines"),
        (["--rounds=-1"], "--rounds must be >= 1"),
        (["--secagg_dropout=1.5"], r"--secagg_dropout must be in \[0, 1\]"),
        (["--secagg_graph=harary", "--secagg_degree=3"], "--secagg_degree must be even"),
    ],
)
def test_bad_flags_stop_with_a_message(args, message):
    with pytest.raises(config_lib.SettingsError, match=message):
        _parse(*args)


def test_secagg_flags_become_the_aggregators_settings():
    from experiments import train_lib  # noqa: PLC0415 - only this test needs it.

    config = _parse("--aggregator=secagg", "--secagg_graph=harary", "--secagg_degree=4")
    settings = train_lib.secagg_config(config.algorithm)
    assert (settings.graph, settings.degree, settings.bits, settings.dropout) == (
        "harary",
        4,
        None,  # --secagg_bits=0: the fewest bits that cannot wrap.
        0.0,
    )
    config = _parse("--aggregator=secagg", "--secagg_bits=32", "--secagg_dropout=0.3")
    settings = train_lib.secagg_config(config.algorithm)
    assert (settings.bits, settings.dropout, settings.precision_bits) == (32, 0.3, 16)


def test_the_linear_model_has_no_size_to_check():
    assert _parse("--model=linear", "--width=15").model.width == 15


def test_config_dicts_are_checked_field_by_field():
    config = default.get_config().to_dict()
    with pytest.raises(config_lib.SettingsError, match="has a group 'optim'"):
        config_lib.from_config_dict({**config, "optim": {}})
    with pytest.raises(config_lib.SettingsError, match=r"no field 'rounds' \(it is in run\)"):
        config_lib.from_config_dict({"model": {"rounds": 3}})
    with pytest.raises(config_lib.SettingsError, match="--rounds must be of type int, got 2.5"):
        config_lib.from_config_dict({"run": {"rounds": 2.5}})
    with pytest.raises(config_lib.SettingsError, match="--algorithm=fedfoo is unknown"):
        config_lib.from_config_dict({"algorithm": {"algorithm": "fedfoo"}})
    # Fields a file leaves out keep their defaults; ints are floats where floats are due.
    got = config_lib.from_config_dict({"algorithm": {"client_lr": 1}})
    assert got == config_lib.TrainConfig().override(client_lr=1.0)
    assert isinstance(got.algorithm.client_lr, float)


def test_json_round_trip_and_fingerprint():
    config = config_lib.TrainConfig().override(frozen=["encoders/**"], workdir="/tmp/x")
    as_json = json.loads(json.dumps(config.to_json()))
    assert as_json["algorithm"]["frozen"] == ["encoders/**"]
    assert config_lib.from_config_dict(as_json) == config
    fingerprint = config.fingerprint()
    # All fields but the resumable ones, as JSON values (a checkpoint's saved copy).
    assert set(fingerprint) == set(config.flat()) - set(config_lib.RESUMABLE)
    assert fingerprint["frozen"] == ["encoders/**"] and "workdir" not in fingerprint
    assert config.override(rounds=9, workdir="/y").fingerprint() == fingerprint
    assert config.override(client_lr=0.5).fingerprint() != fingerprint


def test_configs_are_frozen_and_override_checks_again():
    config = config_lib.TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.run.rounds = 3  # type: ignore[misc]
    with pytest.raises(config_lib.SettingsError, match="No such settings: \\['round'\\]"):
        config.override(round=3)
    with pytest.raises(config_lib.SettingsError, match="--local_steps must be >= 1, got 0"):
        config.override(local_steps=0)


def test_docstring_examples():
    assert doctest.testmod(config_lib).failed == 0
