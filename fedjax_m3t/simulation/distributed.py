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
"""Several processes, one simulation: `jax.distributed` over CPU processes or hosts.

Every process runs the same program (multi-controller JAX). After
`initialize`, `jax.devices()` lists every process's devices, the round's
'clients' mesh spans them all (round.make_client_mesh), the federation and the
client states are sharded over that mesh (each device holds its block of
clients, as with one process), and the round's `psum` / `all_gather` cross
processes: on CPU through gloo (`jax_cpu_collectives_implementation`), on GPU
through NCCL and on TPU natively. The cohort is laid out over processes x
devices by the same round, so a run's numbers depend on the total device count,
not on how the devices are split into processes.

Process 0 alone writes metrics and prints; every process takes part in
checkpoints (orbax writes each array's shards from the process holding them).

Multi-host GPU / TPU: run the same command on every host with
FEDJAX_M3T_COORDINATOR=<host0>:<port>, FEDJAX_M3T_NUM_PROCESSES and
FEDJAX_M3T_PROCESS_ID set (or call `jax.distributed.initialize()` with no
arguments where the cluster sets them: Cloud TPU, SLURM, Open MPI).
"""

import os
import socket

import jax
import numpy as np

COORDINATOR, NUM_PROCESSES, PROCESS_ID = (
    "FEDJAX_M3T_COORDINATOR",
    "FEDJAX_M3T_NUM_PROCESSES",
    "FEDJAX_M3T_PROCESS_ID",
)


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """`jax.distributed.initialize`, with gloo collectives on CPU.

    Must run before any JAX computation (the backends start on the first).

    Args:
      coordinator: 'host:port' of process 0's coordination service.
      num_processes: processes in the run.
      process_id: this process's index in [0, num_processes).
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)


def initialize_from_env() -> bool:
    """`initialize` from the FEDJAX_M3T_* variables (experiments.launch sets them).

    Returns:
      Whether they were set (False: a single-process run, nothing done).
    """
    if COORDINATOR not in os.environ:
        return False
    initialize(os.environ[COORDINATOR], int(os.environ[NUM_PROCESSES]), int(os.environ[PROCESS_ID]))
    return True


def is_leader() -> bool:
    """Whether this process writes outputs (process 0; True in a single-process run)."""
    return jax.process_index() == 0


def put(tree_, sharding: jax.sharding.Sharding | None):
    """`jax.device_put(tree_, sharding)`, also for a sharding spanning several processes.

    With several processes a sharding over every process's devices is not
    addressable from one, and `device_put` refuses device arrays for it: each
    leaf goes through the host instead (every process holds the same values,
    from the same seed, and keeps its own devices' shards). PRNG key leaves
    travel as their key data.
    """
    if sharding is None or jax.process_count() == 1:
        return jax.device_put(tree_, sharding)

    def one(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = one(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree.map(one, tree_)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a local coordinator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
