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
"""A real Flower deployment on loopback equals the simulation (slow: minutes on 2 cores).

`flower-superlink --insecure` and two `flower-supernode --insecure` processes on
free 127.0.0.1 ports, no Ray, no network, telemetry off; every process is
stopped by its PID's process group in a finally (loopback.LocalDeployment).
"""

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from absl.testing import absltest

pytest.importorskip("flwr")

from experiments import config as config_lib  # noqa: E402
from experiments import flower_run, train_lib  # noqa: E402
from fedjax_m3t.deploy.flower import loopback, records  # noqa: E402

pytestmark = pytest.mark.slow

# 2 synthetic schools, FedAvg of a linear model with the 'score' head local, one
# school per round (so the two runs must sample the same cohorts), one device.
CONFIG = dict(
    dataset="synthetic",
    num_clients=2,
    mean_examples=12,
    modalities=("tabular",),
    model="linear",
    local=("heads/score",),
    rounds=2,
    cohort_size=1,
    local_steps=2,
    batch_size=4,
    num_devices=1,
    seed=0,
)


class FlowerLoopbackTest(absltest.TestCase):
    def test_deployment_equals_simulation_and_keeps_the_local_head_home(self):
        workdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        config = config_lib.TrainConfig.from_flat(CONFIG)
        sim = train_lib.train(config)
        params, history = flower_run.run_loopback(config, workdir, timeout=900)
        want = records.to_arrays(sim.server_state.params)
        self.assertEqual(sorted(params), sorted(want))
        for path in want:  # Bit-equal when measured; the brief's bound is 1e-6.
            np.testing.assert_allclose(params[path], want[path], rtol=0, atol=1e-6, err_msg=path)
        for mine, theirs in zip(history, sim.history, strict=True):  # The same cohorts.
            self.assertEqual(mine["num_examples"], theirs["num_examples"])
            np.testing.assert_allclose(mine["loss"], theirs["loss"], rtol=1e-6)
        # Every message either node saw: registration and training, in and out.
        lines = []
        for c in range(2):
            with open(os.path.join(workdir, f"messages{c}.jsonl")) as f:
                lines += [json.loads(line) for line in f]
        self.assertEqual(sum(m["type"] == "train" for m in lines), 2 * CONFIG["rounds"])
        for message in lines:
            for name, keys in message["records"].items():
                self.assertFalse([k for k in keys if k.startswith("heads/score")], (name, keys))
        sent = [
            m["records"]["delta"] for m in lines if m["direction"] == "out" and m["type"] == "train"
        ]
        self.assertLen(sent, CONFIG["rounds"])
        for keys in sent:
            self.assertIn("heads/correct/kernel", keys)


class LocalDeploymentTest(absltest.TestCase):
    def test_processes_are_stopped_by_pid_even_after_an_error(self):
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home, ignore_errors=True)
        deployment = loopback.LocalDeployment([{"client-id": 0}], home)
        with self.assertRaisesRegex(ValueError, "inside"):
            with deployment:
                pids = [p.pid for p in deployment.processes.values()]
                self.assertLen(pids, 2)
                raise ValueError("an error inside the block")
        for process in deployment.processes.values():
            self.assertIsNotNone(process.poll())
        for pid in pids:  # No process of the groups is left.
            with self.assertRaises(ProcessLookupError):
                os.killpg(pid, 0)


if __name__ == "__main__":
    absltest.main()
