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
"""The Flower ServerApp and ClientApp of an experiment configuration.

Both sides build the federation, model and algorithm from the same TrainConfig
(run config 'config': a config.json) exactly as `experiments.train` does
(experiments/train_lib.py), and the initial params from the run's seed. A
SuperNode's node config says which institution it is ('client-id'); it trains
on that institution's rows of the federation only (a real institution would
load only its own data here). The ServerApp writes <workdir>/metrics.jsonl
(one record per round, the simulation's keys) and <workdir>/flower_params.npz
(the final server params by leaf path), or <workdir>/flower_error.txt.
"""

import functools
import json
import os
import traceback

import jax
import numpy as np
from flwr import app as flwr_app
from flwr import serverapp

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t import seeding
from fedjax_m3t.deploy.flower import client as client_lib
from fedjax_m3t.deploy.flower import records
from fedjax_m3t.deploy.flower import server as server_lib

RESULT, ERROR, METRICS = "flower_params.npz", "flower_error.txt", "metrics.jsonl"


@functools.cache
def _setup(config_path: str, jax_cache: str):
    """(config, federation, algorithm, initial params) of a config.json."""
    if jax_cache:  # Each App process is fresh: reuse the compilations of earlier ones.
        jax.config.update("jax_compilation_cache_dir", jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    with open(config_path) as f:
        config = config_lib.from_config_dict(json.load(f))
    federation = train_lib.build_federation(config)
    model = train_lib.build_model(config.model, federation.spec)
    algorithm = train_lib.build_algorithm(config, model)
    params = model.init(seeding.params_key(config.run.seed))
    return config, federation, algorithm, params


def _from_run_config(context: flwr_app.Context):
    run_config = context.run_config
    return _setup(str(run_config["config"]), str(run_config.get("jax-cache", "")))


def _institution(context: flwr_app.Context) -> client_lib.Institution:
    _, federation, algorithm, params = _from_run_config(context)
    c = int(context.node_config["client-id"])
    if not 0 <= c < federation.num_clients:
        raise ValueError(f"client-id={c}, but the federation has {federation.num_clients}.")
    examples = jax.tree.map(lambda x: x[c], federation.train)
    return client_lib.Institution(algorithm, params, examples, c, int(federation.group_ids()[c]))


client_app = client_lib.make_client_app(_institution, mods=[client_lib.log_records])

server_app = serverapp.ServerApp()


@server_app.main()
def main(grid: serverapp.Grid, context: flwr_app.Context) -> None:
    workdir = str(context.run_config["workdir"])
    os.makedirs(workdir, exist_ok=True)
    try:
        config, federation, algorithm, params = _from_run_config(context)
        simulation = train_lib.simulation_config(config, federation.num_clients)
        strategy = server_lib.serve(
            grid,
            algorithm,
            params,
            num_clients=federation.num_clients,
            cohort_size=simulation.cohort_size,
            rounds=simulation.rounds,
            seed=simulation.seed,
            task_names=tuple(task.name for task in federation.spec.tasks),
            timeout=float(context.run_config.get("timeout", 600)),
        )
        with open(os.path.join(workdir, METRICS), "w") as f:
            f.writelines(json.dumps(record) + "\n" for record in strategy.history)
        arrays = records.to_arrays(strategy.state.params)
        partial = os.path.join(workdir, "flower_params.partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, os.path.join(workdir, RESULT))  # Readers see it whole.
    except Exception:
        with open(os.path.join(workdir, ERROR), "w") as f:
            f.write(traceback.format_exc())
        raise
