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
"""A real Flower deployment on this machine: a SuperLink and SuperNodes on 127.0.0.1.

    with loopback.LocalDeployment([{'client-id': 0}, {'client-id': 1}], home) as d:
        d.submit('experiments/flower_app', {'config': '/tmp/run/config.json'})
        d.wait_for('/tmp/run/flower_result.npz')

starts `flower-superlink --insecure` and one `flower-supernode --insecure
--superlink 127.0.0.1:<port>` per node config (each with its own runtime port),
all on free ports, with FLWR_TELEMETRY_ENABLED=0 and FLWR_HOME=<home> (Flower's
apps and CLI config stay in that folder), no Ray and no network beyond the
loopback interface. `submit` is `flwr run <app> <connection>`. Each process
starts in its own session, and leaving the block stops each one by its process
group id (its PID: SIGTERM, then SIGKILL after a grace period), which also ends
the SuperExec and App processes it spawned. Nothing is ever stopped by name.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from fedjax_m3t.simulation import distributed

_CONNECTION = "fedjax-m3t-loopback"


def _bin(name: str) -> str:
    """The console script `name` next to this Python (the venv's), else on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


class LocalDeployment:
    """A SuperLink and SuperNodes as subprocesses (see the module docstring).

    Attributes:
      port: the SuperLink's port (Fleet, Control and Runtime APIs share it).
      processes: {name: Popen} of the processes started.
      logs: {name: log file path}.
    """

    def __init__(
        self,
        node_configs: Sequence[dict],
        home: str,
        *,
        startup_timeout: float = 180.0,
        env: dict | None = None,
    ):
        """Args: one {key: value} node config per SuperNode (`--node-config`), a
        folder for FLWR_HOME and the logs, how long to wait for the SuperLink, and
        extra environment variables for every process."""
        self.node_configs = list(node_configs)
        self.home = os.path.abspath(home)
        self.startup_timeout = startup_timeout
        self.env = {
            **os.environ,
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_HOME": self.home,
            **(env or {}),
        }
        self.port = distributed.free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, str] = {}

    def __enter__(self) -> "LocalDeployment":
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, "config.toml"), "w") as f:
            f.write(
                f'[superlink]\ndefault = "{_CONNECTION}"\n\n[superlink.{_CONNECTION}]\n'
                f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
            )
        try:
            self._start(
                "superlink",
                [_bin("flower-superlink"), "--insecure", "--port", str(self.port)]
                + ["--host", "127.0.0.1", "--disable-runtime-dependency-installation"],
            )
            self._wait_for_port(self.port)
            for i, config in enumerate(self.node_configs):
                node_config = " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())
                runtime_port = str(distributed.free_port())  # Each SuperNode's own API.
                self._start(
                    f"supernode{i}",
                    [_bin("flower-supernode"), "--insecure"]
                    + ["--superlink", f"127.0.0.1:{self.port}", "--port", runtime_port]
                    + ["--host", "127.0.0.1", "--node-config", node_config],
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def _start(self, name: str, command: list[str]) -> None:
        log = os.path.join(self.home, f"{name}.log")
        self.logs[name] = log
        with open(log, "w") as out:
            # Own session: its group id is its PID, shared by what it spawns.
            self.processes[name] = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"The SuperLink did not listen on {port} in {self.startup_timeout} s.")

    def check_alive(self) -> None:
        """Raises RuntimeError, with its log's tail, if a started process has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}:\n{self.tail(name)}"
                )

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log."""
        with open(self.logs[name], errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def submit(self, app_dir: str, run_config: dict | None = None) -> str:
        """`flwr run app_dir` on this deployment; returns the CLI's output.

        Raises:
          RuntimeError: with the output if the CLI fails.
        """
        command = [_bin("flwr"), "run", os.path.abspath(app_dir), _CONNECTION]
        if run_config:
            values = " ".join(f"{k}={_toml_value(v)}" for k, v in run_config.items())
            command += ["--run-config", values]
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=self.startup_timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def wait_for(self, *paths: str, timeout: float = 600.0) -> str:
        """Waits until one of `paths` exists (checking the processes); returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in paths:
                if os.path.exists(path):
                    return path
            self.check_alive()
            time.sleep(0.2)
        tails = "\n".join(f"--- {n}:\n{self.tail(n)}" for n in self.logs)
        raise TimeoutError(f"None of {paths} appeared in {timeout} s.\n{tails}")

    def stop(self, grace: float = 10.0) -> None:
        """Stops every started process group by its id: SIGTERM, then SIGKILL."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # The groups' other members (SuperExec, App processes) may outlive the leader.
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # The group this Popen started (start_new_session).
    except ProcessLookupError:
        pass


def _toml_value(value) -> str:
    """A --node-config / --run-config value (TOML: strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
