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
r"""Federated training of the modular M3T model: the main experiment binary.

  python -m experiments.train                      # synthetic education federation
  python -m experiments.train --algorithm=fedadam --server_lr=0.01 \
      --frozen=encoders/** --local=heads/** --rounds=50 --workdir=/tmp/run1
  python -m experiments.train --config=experiments/configs/tiny.py --config.run.rounds=5

Prints progress per round, a final table of global and per-institution test
metrics, writes <workdir>/config.json and metrics.jsonl, checkpoints every
--checkpoint_every rounds, and resumes when rerun with the same --workdir.
`python -m experiments.train --helpfull` lists every flag. Flags given on the
command line win over the --config file (experiments/config.py says how the two
combine).
"""

import sys

# On CPU, `import fedjax_m3t` splits the machine into host devices before JAX starts
# (fedjax_m3t/simulation/devices.py: a fixed count, the fastest measured; a user's
# own XLA_FLAGS win), and every round is sharded over them. GPUs are unaffected.
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import checks, train_lib
from experiments import config as config_lib
from fedjax_m3t.secure import aggregator as secure_aggregator
from fedjax_m3t.simulation import distributed
from fedjax_m3t.simulation import logging as logging_lib

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2  # A setting or input file to fix: 'Error: ...' says which.
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it.

# One flag per field of config_lib.TrainConfig (--dataset, --rounds, ...), --config
# (a config file, overridden as --config.model.width=64) and --preset.
config_lib.define_flags(FLAGS)
flags.adopt_module_key_flags(config_lib)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; flags look like --rounds=10.")
    sys.exit(train_from(FLAGS))


def train_from(flag_values: flags.FlagValues) -> int:
    """Trains from parsed flags; the exit status: 0, 2 for bad settings, 130 for Ctrl-C.

    A bad setting prints one line, 'Error: <what and how to fix it>', to stderr; an
    interrupt prints where the run was saved (the loop's message) and no traceback.
    """
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO.
    # Under experiments.launch: join the other processes before any JAX computation.
    distributed.initialize_from_env()
    try:
        config = config_lib.from_flags(flag_values)
        checks.check_applicable(config, given_flags(flag_values))
        train_lib.train(config)
    except (config_lib.SettingsError, secure_aggregator.SecAggAbortedError) as e:
        return error(e)
    except KeyboardInterrupt:
        logging_lib.end_progress()  # A terminal's progress bar, still open on stdout.
        print("Interrupted (Ctrl-C); rerun the same command to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def given_flags(flag_values: flags.FlagValues) -> set[str]:
    """The config fields set on the command line, as flags or --config overrides."""
    overrides = config_flags.get_override_values(flag_values["config"])
    given = {name for name in config_lib.FIELDS if flag_values[name].present}
    return given | {key.rpartition(".")[2] for key in overrides}


def error(e: Exception) -> int:
    """Prints 'Error: <message>' on one line to stderr; returns EXIT_BAD_INPUT."""
    logging_lib.end_progress()  # A terminal's progress bar, still open on stdout.
    print("Error: " + " ".join(str(e).split()), file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag value as a one-line Error (exit 2)."""
    try:
        return parse(FLAGS, argv)
    except (flags.Error, config_lib.SettingsError) as e:
        sys.exit(error(e))


def parse(flag_values: flags.FlagValues, argv: list[str]) -> list[str]:
    """`flag_values(argv)`; a --config file that fails to run is a SettingsError.

    A --config file is user code, run while the flags are parsed (a syntax error,
    no get_config(), an exception inside it); bad flag values stay flags.Error.
    """
    try:
        return flag_values(argv)
    except flags.UnrecognizedFlagError as e:
        if e.flagname.startswith("config."):
            name = e.flagname.rpartition(".")[2]
            where = config_lib.FIELDS.get(name)
            hint = f" (did you mean --config.{where}.{name}?)" if where else ""
            raise config_lib.SettingsError(
                f"--{e.flagname}: the config has no such field{hint}; overrides look like "
                "--config.<group>.<field>=value with a group of "
                f"{list(config_lib.GROUPS)} and one of its flags' names (--helpfull)."
            ) from None
        raise
    except flags.Error:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the user's config file raised.
        path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
        raise config_lib.SettingsError(
            f"--config={path}: the config file failed to load: {type(e).__name__}: {e}"
        ) from None


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
