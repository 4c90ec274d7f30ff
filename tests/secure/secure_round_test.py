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
"""The secure-aggregated FedAvg round on the M3T model equals the plain round (1 and 2 devices).

Slow (compiles three M3T rounds): runs in CI with the other slow tests.
"""

import jax
import jax.numpy as jnp
import pytest
from absl.testing import absltest, parameterized

from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import m3t
from fedjax_m3t.simulation import round as round_lib
from tests.secure import fast_compile

pytestmark = pytest.mark.slow

F = 16  # Precision bits of the default SecAggConfig: the error is <= 2^-(F+1) per coordinate.
setUpModule = fast_compile.set_up
tearDownModule = fast_compile.tear_down


class M3TRoundTest(parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.federation = synthetic.make_education_federation(
            synthetic.SyntheticConfig(
                num_clients=6,
                mean_examples=16,
                modality_missing_prob=0.3,
                task_missing_prob=0.2,
                image_size=8,
                text_length=8,
                interaction_length=8,
                num_skills=10,
            )
        ).with_modalities(["tabular", "text"])
        cls.model = m3t.build_m3t_model(
            cls.federation.spec,
            m3t.M3TConfig(width=16, depth=1, num_heads=2, lora_rank=0, patch_size=4),
        )
        cls.plain = cls._round("mean", 1)

    @classmethod
    def _round(cls, aggregator, num_devices):
        algorithm = registry.build_algorithm(
            "fedavg",
            cls.model,
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=8),
            client_learning_rate=0.01,
            aggregator=aggregator,
        )
        params = cls.model.init(jax.random.key(0))
        state = algorithm.init(params)
        states = jax.tree.map(lambda x: jnp.stack([x] * 6), algorithm.init_client_state(params))
        mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
        round_fn = round_lib.build_round(
            algorithm, num_clients=6, cohort_size=6, chunk_size=1, mesh=mesh
        )
        return round_fn(state, states, cls.federation.train, jax.random.key(0)).server_state

    @parameterized.parameters(1, 2)
    def test_secure_round_equals_the_plain_round(self, num_devices):
        # Server lr 1: params move by the aggregate, so they differ by at most the
        # quantisation error 2^-(F+1) (float32 rounding aside).
        secure = self._round("secagg", num_devices)
        self.assertFalse(bool(secure.agg_state.aborted))
        self.assertEqual(int(secure.agg_state.clipped), 0)
        self.assertEqual(int(secure.agg_state.survivors), 6)
        errors = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), secure.params, self.plain.params
        )
        self.assertLessEqual(max(jax.tree.leaves(errors)), 2.0 ** -(F + 1) + 1e-6)
        self.assertGreater(max(jax.tree.leaves(errors)), 0.0)


if __name__ == "__main__":
    absltest.main()
