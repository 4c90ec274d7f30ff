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
"""Multi-process simulation (jax.distributed, gloo): slow, about a minute per launch here.

experiments.launch starts the processes; 1 x 4, 2 x 2 and 4 x 1 processes x
devices lay the cohort over the same 4 devices, so they must give the same
params, which the final checkpoints (written by every process for its shards,
restored here by one) hold.
"""

import json
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest
from absl.testing import absltest

from experiments import config as config_lib
from experiments import launch, train_lib
from fedjax_m3t.simulation import checkpoint as checkpoint_lib
from fedjax_m3t.simulation import loop

pytestmark = pytest.mark.slow

FLAGS = dict(
    dataset="synthetic",
    num_clients=8,
    mean_examples=12,
    modalities="tabular",
    model="linear",
    local="heads/score",
    rounds=2,
    cohort_size=4,
    local_steps=2,
    batch_size=4,
    checkpoint_every=1,
)


def _tempdir(test) -> str:
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class DistributedTest(absltest.TestCase):
    def test_collectives_across_processes(self):
        out = _tempdir(self)
        code = launch.launch([out], 2, 2, module="tests.simulation.collectives_worker", log_dir=out)
        self.assertEqual(code, 0)
        rows = np.array([[d, 10 * d, 100 * d] for d in range(4)], np.float32) + 1
        total = rows.sum(0)  # [10, 64, 604]
        for i in range(2):
            with open(os.path.join(out, f"process{i}.json")) as f:
                got = json.load(f)
            self.assertEqual(got["devices"], 4)
            for shard in got["psum"]:
                np.testing.assert_array_equal(shard, [total])
            for shard in got["all_gather"]:
                np.testing.assert_array_equal(shard, rows)
            # Device j = 2 i + k of this process gets (j + 1) * total.
            for k, shard in enumerate(got["psum_scatter"]):
                np.testing.assert_array_equal(shard, [(2 * i + k + 1) * total])

    def test_one_two_and_four_processes_give_the_same_params(self):
        config = config_lib.TrainConfig.from_flat(
            {**FLAGS, "modalities": ("tabular",), "local": ("heads/score",)}
        )
        federation = train_lib.build_federation(config)
        model = train_lib.build_model(config.model, federation.spec)
        algorithm = train_lib.build_algorithm(config, model)
        template = dict(
            zip(
                ("server_state", "client_states"),
                loop.fresh_state(algorithm, model, federation.num_clients, config.run.seed),
                strict=True,
            )
        )
        args = [f"--{k}={v}" for k, v in FLAGS.items()]
        results = {}
        for processes, devices in ((1, 4), (2, 2), (4, 1)):
            workdir = _tempdir(self)
            code = launch.launch(
                args + [f"--workdir={workdir}"], processes, devices, log_dir=workdir
            )
            self.assertEqual(code, 0, f"{processes} x {devices}")
            checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"))
            self.addCleanup(checkpointer.close)
            state, meta = checkpointer.restore(template)
            self.assertEqual(meta["round"], FLAGS["rounds"])
            with open(os.path.join(workdir, "metrics.jsonl")) as f:  # Process 0's alone.
                self.assertLen(f.readlines(), FLAGS["rounds"])
            results[processes] = jax.device_get(state)
        moved = np.abs(
            results[1]["server_state"].params["heads"]["correct"]["kernel"]
            - template["server_state"].params["heads"]["correct"]["kernel"]
        ).max()
        self.assertGreater(moved, 1e-4)  # Training happened.
        for processes in (2, 4):
            jax.tree.map(
                lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
                results[processes],
                results[1],
            )


if __name__ == "__main__":
    absltest.main()
