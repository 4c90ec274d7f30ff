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
"""A small M3T federation shared by the personalisation tests (built once per process).

The M3T model on a tabular federation (one encoder, the transformer backbone with
its LayerNorms and LoRA factors, two heads): every module kind the policies
select, at a fraction of the four-modality model's compile time.
"""

import functools

import jax
import numpy as np

from fedjax_m3t import simulation
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.models import m3t
from tests import helpers

NUM_CLIENTS = 4
TASKS = ("a", "b")
LOCAL = local_training.LocalTrainingConfig(local_steps=3, batch_size=4)
LR = 0.05


@functools.cache
def federation():
    """4 clients of 6-10 examples, two regression tasks (helpers.linear_client)."""
    rng = np.random.default_rng(0)
    spec = helpers.tabular_spec(tuple((t, "regression") for t in TASKS), num_features=3)
    train = [helpers.linear_client(rng, n, TASKS, 3) for n in (6, 8, 10, 7)]
    test = [helpers.linear_client(rng, n, TASKS, 3) for n in (4, 4, 5, 3)]
    return helpers.federation(spec, train, test)


@functools.cache
def model():
    """A 1-layer M3T model of width 8 with LoRA rank 2 on query and value."""
    config = m3t.M3TConfig(width=8, depth=1, num_heads=2, mlp_dim=16, lora_rank=2)
    return m3t.build_m3t_model(federation().spec, config)


def init_params():
    """The initial params of a run with seed 0 (loop.fresh_state's key)."""
    return host(model().init(jax.random.fold_in(jax.random.key(0), 0)))


def build(name: str, **kwargs):
    """The named algorithm with SGD(LR) clients and FedAvg's server (lr 1)."""
    local = kwargs.pop("local", LOCAL)
    return registry.build_algorithm(name, model(), local=local, client_learning_rate=LR, **kwargs)


def run(algorithm, rounds: int = 2, hooks=()):
    """Full participation, seed 0, one device (tests/simulation covers sharding)."""
    config = simulation.SimulationConfig(
        rounds=rounds, cohort_size=NUM_CLIENTS, num_devices=1, verbose=False
    )
    return simulation.run(algorithm, model(), federation(), config, hooks=hooks)


@functools.cache
def fedavg_result():
    """FedAvg's 2-round run (shared by the Ditto and fine-tuning tests)."""
    return run(build("fedavg"))


def host(tree):
    """Host NumPy copies (a run's buffers are donated to its next round)."""
    return jax.tree.map(np.asarray, jax.device_get(tree))


def take(stacked, c: int):
    """Client c's slice of a stacked pytree."""
    return jax.tree.map(lambda x: x[c], stacked)
