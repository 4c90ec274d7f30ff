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
"""Tests for the simulation loop: resume, fingerprints, outputs, final reports, devices."""

import functools
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import simulation
from fedjax_m3t.algorithms import fed_opt, local_training, server_optimizers
from fedjax_m3t.models import linear
from tests import helpers

ROUNDS = 4


@functools.cache
def _problem():
    """6 clients, tasks 'a' (federated) and 'b' (local), FedAdam, 3 clients a round.

    FedAdam's moments, the local heads and the cohort sampling all have to survive a
    resume for it to equal an uninterrupted run.
    """
    spec = helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    rng = np.random.default_rng(0)
    train = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 3, 4, 5, 3, 2)]
    test = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 2, 3, 2, 1, 2)]
    federation = helpers.federation(spec, train, test)
    model = linear.build_linear_model(spec)
    algorithm = fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=server_optimizers.server_optimizer("fedadam", 0.05),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        policy=policy_lib.ModulePolicy(local=("heads/b",)),
    )
    return model, algorithm, federation


def _config(**kwargs):
    defaults = dict(rounds=ROUNDS, cohort_size=3, checkpoint_every=2, verbose=False)
    return simulation.SimulationConfig(**{**defaults, **kwargs})


@functools.cache
def _reference():
    """The uninterrupted ROUNDS-round run on one device, writing nothing."""
    model, algorithm, federation = _problem()
    return simulation.run(algorithm, model, federation, _config(workdir=None))


def _assert_states_close(test, got, want, atol):
    for name in ("server_state", "client_states"):
        a, b = getattr(got, name), getattr(want, name)
        test.assertEqual(jax.tree.structure(a), jax.tree.structure(b))
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=atol), a, b)


def _tempdir(test) -> str:
    """A fresh directory removed after the test (absltest's create_tempdir needs parsed flags)."""
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def _metrics_records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


class RunTest(absltest.TestCase):
    def test_resumed_run_equals_uninterrupted_run(self):
        model, algorithm, federation = _problem()
        workdir = _tempdir(self)
        fingerprint = {"algorithm": "fedadam", "lr": 0.05}
        first = simulation.run(
            algorithm,
            model,
            federation,
            _config(rounds=2, workdir=workdir),
            fingerprint=fingerprint,
        )
        self.assertEqual(int(first.server_state.round), 2)
        # The interrupted run had logged a round 3 it never checkpointed: dropped on resume.
        with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"round": 3, "loss": 123.0}) + "\n")
        resumed = simulation.run(
            algorithm, model, federation, _config(workdir=workdir), fingerprint=fingerprint
        )
        want = _reference()
        self.assertEqual(int(resumed.server_state.round), ROUNDS)
        _assert_states_close(self, resumed, want, atol=1e-6)
        # The server params moved and the local heads were trained, so the check has teeth.
        self.assertGreater(float(jnp.abs(want.server_state.params["heads"]["a"]["bias"]).max()), 0)

        records = _metrics_records(workdir)
        self.assertEqual([r["round"] for r in records], list(range(1, ROUNDS + 1)))
        self.assertEqual([r["round"] for r in resumed.history], list(range(1, ROUNDS + 1)))
        for got, ref in zip(records, want.history, strict=True):
            for key in ("loss", "num_examples", "num_clients", "update_norm"):
                np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=0)
        self.assertEqual(records[0]["num_clients"], 3.0)

    def test_resume_with_other_fingerprint_names_the_change(self):
        model, algorithm, federation = _problem()
        workdir = _tempdir(self)
        config = _config(rounds=1, workdir=workdir, checkpoint_every=1)
        simulation.run(algorithm, model, federation, config, fingerprint={"lr": 0.1, "seed": 0})
        with self.assertRaisesRegex(ValueError, r"different settings \(lr\)"):
            simulation.run(algorithm, model, federation, config, fingerprint={"lr": 0.2, "seed": 0})
        with self.assertRaisesRegex(ValueError, r"different settings \(extra\)"):
            simulation.run(
                algorithm,
                model,
                federation,
                config,
                fingerprint={"lr": 0.1, "seed": 0, "extra": 1},
            )

    def test_no_workdir_writes_nothing(self):
        model, algorithm, federation = _problem()
        cwd = os.getcwd()
        empty = _tempdir(self)
        os.chdir(empty)
        try:
            result = simulation.run(
                algorithm, model, federation, _config(rounds=1, workdir=None, tensorboard=False)
            )
        finally:
            os.chdir(cwd)
        self.assertEqual(os.listdir(empty), [])
        self.assertLen(result.history, 1)

    def test_four_devices_equal_one(self):
        model, algorithm, federation = _problem()
        sharded = simulation.run(algorithm, model, federation, _config(num_devices=4))
        _assert_states_close(self, sharded, _reference(), atol=1e-5)

    def test_personal_report_differs_where_a_head_is_local(self):
        _, _, federation = _problem()
        result = _reference()
        # Head a is federated: the global and the personal views predict it alike.
        self.assertEqual(result.global_report.pooled["a"], result.personal_report.pooled["a"])
        # Head b is local, so the server's copy keeps the initial zeros: the global model
        # predicts 0, and its RMSE is the root mean square of the pooled test labels.
        test = federation.test
        labels = test["labels"]["b"][test["mask"] & test["label_mask"]["b"]]
        self.assertLen(labels, 12)
        np.testing.assert_allclose(
            result.global_report.pooled["b"]["rmse"],
            np.sqrt(np.mean(labels**2)),
            rtol=1e-5,
            atol=0,
        )
        self.assertEqual(result.global_report.pooled["b"]["count"], 12)
        # The personal heads were trained and predict better.
        self.assertLess(
            result.personal_report.pooled["b"]["rmse"], result.global_report.pooled["b"]["rmse"]
        )


if __name__ == "__main__":
    absltest.main()
