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
r"""An experiment configuration through a real Flower deployment on this machine.

  pip install -e ".[flower]"
  python -m experiments.flower_run --workdir=/tmp/flower_run --dataset=synthetic \
      --num_clients=2 --modalities=tabular --model=linear --local=heads/score \
      --rounds=3 --cohort_size=1

takes the flags of `experiments.train` (the same TrainConfig), starts a
SuperLink and one SuperNode per institution on 127.0.0.1
(fedjax_m3t/deploy/flower/loopback.py), submits experiments/flower_app with
`flwr run`, waits for the ServerApp's result and stops every process. It
writes <workdir>/config.json, metrics.jsonl (per round, the simulation's keys
and 'seconds'), flower_params.npz (the final server params by leaf path),
messages<c>.jsonl (the record names of every message institution c sent or
received) and the Flower logs under <workdir>/flower_home/. The same
configuration through `python -m experiments.train --num_devices=1` gives the
same server params (tests/deploy/flower_loopback_test.py).
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags, logging

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t.deploy.flower import loopback
from fedjax_m3t.simulation import logging as logging_lib

APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flower_app")
FLAGS = flags.FLAGS

config_lib.define_flags(FLAGS)
flags.adopt_module_key_flags(config_lib)
_TIMEOUT = flags.DEFINE_float(
    "flower_timeout", 1800.0, "Seconds to wait for the nodes, each round, and the whole run."
)


def run_loopback(
    config: config_lib.TrainConfig, workdir: str, timeout: float = 1800.0
) -> tuple[dict, list]:
    """Runs `config` through Flower on loopback; returns (final params by path, history).

    Raises:
      RuntimeError: with the ServerApp's traceback if it failed.
    """
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        json.dump(config.to_json(), f, indent=2)
    num_clients = train_lib.build_federation(config).num_clients
    nodes = [
        {"client-id": c, "message-log": os.path.join(workdir, f"messages{c}.jsonl")}
        for c in range(num_clients)
    ]
    result, error = (os.path.join(workdir, n) for n in ("flower_params.npz", "flower_error.txt"))
    for stale in (result, error, *(n["message-log"] for n in nodes)):
        if os.path.exists(stale):
            os.remove(stale)
    run_config = {
        "config": path,
        "workdir": workdir,
        "timeout": timeout,
        "jax-cache": os.path.join(workdir, "jax_cache"),
    }
    with loopback.LocalDeployment(nodes, os.path.join(workdir, "flower_home")) as deployment:
        logging_lib.log(f"SuperLink on 127.0.0.1:{deployment.port}, {num_clients} SuperNodes.")
        logging_lib.log(deployment.submit(APP_DIR, run_config).strip())
        done = deployment.wait_for(result, error, timeout=timeout)
    if done == error:
        with open(error) as f:
            raise RuntimeError(f"The ServerApp failed:\n{f.read()}")
    with np.load(result) as arrays:
        params = dict(arrays)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        history = [json.loads(line) for line in f]
    return params, history


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; flags look like --rounds=10.")
    logging.set_verbosity(logging.WARNING)
    try:
        config = config_lib.from_flags(FLAGS)
    except config_lib.SettingsError as e:
        sys.exit(f"Error: {e}")
    workdir = config.output.workdir or os.path.join("/tmp", f"flower_run_{int(time.time())}")
    _, history = run_loopback(config, workdir, _TIMEOUT.value)
    for record in history:
        logging_lib.log(
            logging_lib.progress_line(record["round"], config.run.rounds, record, record["seconds"])
        )
    logging_lib.log(f"Server params: {os.path.join(workdir, 'flower_params.npz')}")


if __name__ == "__main__":
    app.run(main)
