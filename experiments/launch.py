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
r"""One simulation in N local processes (jax.distributed over gloo on CPU).

  python -m experiments.launch --num_processes=2 --devices_per_process=2 -- \
      --preset=tiny --workdir=/tmp/mp_run

starts N copies of `python -m experiments.train <flags after -->`, each with
FEDJAX_M3T_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID set (experiments/train.py
then calls `simulation.distributed.initialize_from_env`) and
`--xla_force_host_platform_device_count=<devices_per_process>`; the round's
mesh spans all N x devices_per_process devices. Process 0 prints and writes
the workdir's metrics; the others log to <process_logs>/process<i>.log. The
launcher watches them: when one fails it stops the rest and exits with its
code; Ctrl-C is forwarded to every process (each checkpoints the round in
flight, as a single-process run does) and, after --grace_seconds, the
stragglers are killed. Processes are stopped by their own process group ids.

The numbers depend on the total device count only: 1 x 4, 2 x 2 and 4 x 1
give the same params (tests/simulation/distributed_test.py). For several hosts,
run experiments.train on each with the FEDJAX_M3T_* variables set by hand
(simulation/distributed.py).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from fedjax_m3t.simulation import distributed

_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 2, "Processes to start (>= 1).")
_DEVICES = flags.DEFINE_integer("devices_per_process", 1, "Forced CPU devices per process.")
_MODULE = flags.DEFINE_string("module", "experiments.train", "The binary each process runs.")
_LOG_DIR = flags.DEFINE_string(
    "process_logs", "", "Folder for the logs of processes 1..N-1 (default: a temp dir)."
)
_GRACE = flags.DEFINE_float("grace_seconds", 60.0, "Wait after Ctrl-C before killing.")
_FORCE = "--xla_force_host_platform_device_count"


def process_env(base: dict, coordinator: str, num: int, index: int, devices: int) -> dict:
    """The environment of process `index`: the FEDJAX_M3T_* variables and its devices."""
    xla = [f for f in base.get("XLA_FLAGS", "").split() if not f.startswith(_FORCE)]
    return {
        **base,
        distributed.COORDINATOR: coordinator,
        distributed.NUM_PROCESSES: str(num),
        distributed.PROCESS_ID: str(index),
        "XLA_FLAGS": " ".join(xla + [f"{_FORCE}={devices}"]),
    }


def launch(
    args: list[str],
    num_processes: int,
    devices_per_process: int,
    *,
    module: str = "experiments.train",
    log_dir: str | None = None,
    grace: float = 60.0,
) -> int:
    """Starts, watches and stops the processes; returns the run's exit code.

    Args:
      args: the flags of `module` (the same for every process).
      num_processes, devices_per_process: the layout.
      module: what each process runs (`python -m module args`).
      log_dir: where processes 1.. log (process 0 inherits stdout).
      grace: seconds between forwarding Ctrl-C and killing.
    """
    if num_processes < 1 or devices_per_process < 1:
        raise ValueError("num_processes and devices_per_process must be >= 1.")
    log_dir = log_dir or tempfile.mkdtemp(prefix="fedjax_m3t_launch_")
    os.makedirs(log_dir, exist_ok=True)
    coordinator = f"127.0.0.1:{distributed.free_port()}"
    processes = []
    try:
        for i in range(num_processes):
            env = process_env(os.environ, coordinator, num_processes, i, devices_per_process)
            out = None if i == 0 else open(os.path.join(log_dir, f"process{i}.log"), "w")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                    start_new_session=True,  # Its own group: Ctrl-C reaches it only through us.
                )
            )
        return _watch(processes, log_dir)
    except KeyboardInterrupt:
        _signal_all(processes, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            time.sleep(0.2)
        return 130
    finally:
        _signal_all(processes, signal.SIGKILL)
        for p in processes:
            p.wait()


def _watch(processes: list[subprocess.Popen], log_dir: str) -> int:
    """Waits for all; the first failure stops the others and is returned."""
    while True:
        codes = [p.poll() for p in processes]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            i, code = failed[0]
            print(f"Process {i} exited with {code}; stopping the others.", file=sys.stderr)
            if i > 0:
                with open(os.path.join(log_dir, f"process{i}.log"), errors="replace") as f:
                    print("".join(f.readlines()[-30:]), file=sys.stderr)
            _signal_all(processes, signal.SIGTERM)
            return code
        if all(c == 0 for c in codes):
            return 0
        time.sleep(0.2)


def _signal_all(processes: list[subprocess.Popen], sig: int) -> None:
    for p in processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)  # The group of the process we started.
            except ProcessLookupError:
                pass


def main(argv: list[str]) -> None:
    sys.exit(
        launch(
            argv[1:],
            _NUM_PROCESSES.value,
            _DEVICES.value,
            module=_MODULE.value,
            log_dir=_LOG_DIR.value or None,
            grace=_GRACE.value,
        )
    )


if __name__ == "__main__":
    app.run(main)
