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
"""experiments.launch watches and stops its processes (stand-in workers, no JAX)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest

from experiments import launch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LaunchTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_process_env_sets_the_layout(self):
        env = launch.process_env(
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 --foo"}, "h:1", 3, 2, 5
        )
        self.assertEqual(env["FEDJAX_M3T_PROCESS_ID"], "2")
        self.assertEqual(env["FEDJAX_M3T_NUM_PROCESSES"], "3")
        self.assertEqual(env["XLA_FLAGS"], "--foo --xla_force_host_platform_device_count=5")

    def test_a_failed_process_stops_the_others_and_sets_the_exit_code(self):
        start = time.monotonic()
        code = launch.launch(
            [self.dir, "fail"], 3, 1, module="tests.simulation.launch_worker", log_dir=self.dir
        )
        self.assertEqual(code, 3)  # Process 1's code; the others were waiting 600 s.
        self.assertLess(time.monotonic() - start, 120)

    def test_ctrl_c_reaches_every_process(self):
        launcher = subprocess.Popen(
            [sys.executable, "-m", "experiments.launch", "--num_processes=2"]
            + ["--module=tests.simulation.launch_worker", "--", self.dir, "wait"],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 120
            started = [os.path.join(self.dir, f"started{i}") for i in range(2)]
            while not all(map(os.path.exists, started)) and time.monotonic() < deadline:
                time.sleep(0.1)
            launcher.send_signal(signal.SIGINT)
            self.assertEqual(launcher.wait(timeout=120), 130)
        finally:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
        for i in range(2):  # Each worker saw the interrupt (and would have checkpointed).
            self.assertTrue(os.path.exists(os.path.join(self.dir, f"interrupted{i}")))


if __name__ == "__main__":
    absltest.main()
