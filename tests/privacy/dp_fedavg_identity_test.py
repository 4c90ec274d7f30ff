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
"""DP-FedAvg with z = 0 and an infinite clip is FedAvg, bit for bit, on the M3T model.

With equal client sizes that are a power of two (16 train examples each) and
every module used by every client, FedAvg's weights n_c are all 16 and its mean
sum(16 d_c) / (16 K) rounds exactly like DP-FedAvg's sum(d_c) / K (scaling by a
power of two is exact), so the two runs agree to the last bit.

That needs the two programs to sum in the same order too: the DP aggregator builds
its per-leaf sum weights from each leaf's own weights, as the non-DP mean has them,
so that XLA merges and orders the weighted sums alike (central.py). Sharded over 2
devices XLA still orders some sums differently between the two programs (about 1
ulp a round, measured), so there the test bounds the difference instead.
"""

import dataclasses
import math

import jax
import numpy as np
import pytest
from absl.testing import absltest

import fedjax_m3t as fm
from fedjax_m3t.algorithms import registry
from fedjax_m3t.privacy import central

# Four M3T runs through simulation.run: about 90 s on 2 loaded cores, so slow (CI runs it).
pytestmark = pytest.mark.slow

COHORT = 3
MODALITIES = ("interaction", "tabular")  # Two of the four: the test's compile time.


def _federation():
    federation = fm.make_education_federation(
        fm.SyntheticConfig(
            num_clients=4, mean_examples=32, quantity_skew=0.0, test_fraction=0.5, seed=0
        )
    )
    np.testing.assert_array_equal(federation.train["mask"].sum(axis=1), 16)

    def keep(data):
        return {
            **data,
            "inputs": {m: data["inputs"][m] for m in MODALITIES},
            "present": {m: data["present"][m] for m in MODALITIES},
        }

    spec = dataclasses.replace(federation.spec, modalities=MODALITIES)
    return dataclasses.replace(
        federation, spec=spec, train=keep(federation.train), test=keep(federation.test)
    )


def _model(federation):
    return fm.build_m3t_model(
        federation.spec, fm.M3TConfig(width=16, depth=1, num_heads=2, mlp_dim=16, lora_rank=2)
    )


def _run(federation, num_devices, dp, client_optimizer):
    model = _model(federation)
    kwargs = dict(
        local=fm.LocalTrainingConfig(local_steps=2, batch_size=8),
        client_learning_rate=3e-3 if client_optimizer == "adam" else 0.1,
        client_optimizer_name=client_optimizer,
    )
    if dp is None:
        algorithm = registry.build_algorithm("fedavg", model, **kwargs)
    else:
        algorithm = registry.dp_algorithm("fedavg", model, dp=dp, **kwargs)
    config = fm.SimulationConfig(
        rounds=2,
        cohort_size=COHORT,
        num_devices=num_devices,
        seed=0,
        verbose=False,
        checkpoint_every=0,
    )
    first = []
    keep_first = lambda info: first.append(jax.device_get(info.server_state.params))
    result = fm.simulation.run(algorithm, model, federation, config, hooks=[keep_first])
    return result, first[0]


def _bits(tree_):
    return jax.tree.map(lambda x: np.asarray(x).view(np.int32), tree_)


class IdentityTest(absltest.TestCase):
    def test_dp_without_noise_or_clip_is_fedavg(self):
        self._check(num_devices=1, client_optimizer="adam")

    def test_sharded_dp_without_noise_or_clip_is_close_to_fedavg(self):
        # SGD: Adam's m / sqrt(v) turns ulp differences of near-zero gradients into
        # O(learning rate) steps (measured: 2e-3 after 2 rounds).
        self._check(num_devices=2, client_optimizer="sgd")

    def _check(self, num_devices, client_optimizer):
        federation = _federation()
        want, want_first = _run(federation, num_devices, None, client_optimizer)
        # Every client trained every leaf, so FedAvg's per-leaf weights were all 16.
        self.assertEqual([h["trained_fraction"] for h in want.history], [1.0, 1.0])
        dp = central.DPConfig(noise_multiplier=0.0, clip=math.inf, expected_cohort_size=COHORT)
        got, got_first = _run(federation, num_devices, dp, client_optimizer)
        if num_devices == 1:
            jax.tree.map(np.testing.assert_array_equal, _bits(got_first), _bits(want_first))
            jax.tree.map(
                np.testing.assert_array_equal,
                _bits(got.server_state.params),
                _bits(want.server_state.params),
            )
        else:
            jax.tree.map(
                lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
                got.server_state.params,
                want.server_state.params,
            )
        np.testing.assert_allclose(
            [h["loss"] for h in got.history], [h["loss"] for h in want.history], rtol=1e-6
        )
        # Not vacuous: training moved the params.
        init = _model(federation).init(fm.seeding.params_key(0))
        moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), got.server_state.params, init)
        self.assertGreater(max(jax.tree.leaves(moved)), 1e-3)


if __name__ == "__main__":
    absltest.main()
