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

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t.simulation import distributed

FLAGS = flags.FLAGS

# One flag per field of config_lib.TrainConfig (--dataset, --rounds, ...), --config
# (a config file, overridden as --config.model.width=64) and --preset.
config_lib.define_flags(FLAGS)
flags.adopt_module_key_flags(config_lib)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; flags look like --rounds=10.")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO.
    # Under experiments.launch: join the other processes before any JAX computation.
    distributed.initialize_from_env()
    try:
        train_lib.train(config_lib.from_flags(FLAGS))
    except config_lib.SettingsError as e:
        sys.exit(f"Error: {e}")


if __name__ == "__main__":
    app.run(main)
