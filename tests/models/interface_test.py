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
"""Tests for plain_model: a network without the multi-modal layout trains in the engine."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.models import interface
from fedjax_m3t.simulation import round as round_lib
from tests import helpers


class PlainModelTest(absltest.TestCase):
    def test_fedavg_step_on_a_plain_linear_network_by_hand(self):
        # Client 0: x = [[1, 0], [0, 1]], y = [1, 2]; client 1: x = [[1, 1]], y = [3].
        # From w = 0 the pooled MSE gradient over the 3 examples is (2/3) sum(-y_i x_i)
        # = [-8/3, -10/3]: one step of lr 0.1 gives w = [0.8/3, 1/3].
        spec = helpers.tabular_spec()
        model = interface.plain_model(
            spec,
            lambda key: {"w": jnp.zeros((2,))},
            lambda params, inputs: {"y": inputs["tabular"] @ params["w"]},
        )
        data = helpers.stack(
            [
                helpers.client([[1, 0], [0, 1]], {"y": [1.0, 2.0]}),
                helpers.client([[1, 1]], {"y": [3.0]}),
            ]
        )
        algorithm = registry.build_algorithm(
            "fedavg",
            model,
            client_learning_rate=0.1,
            local=local_training.LocalTrainingConfig(local_steps=1, batch_size=None),
        )
        params = model.init(jax.random.key(0))
        round_fn = round_lib.build_round(algorithm, num_clients=2, cohort_size=2, chunk_size=1)
        out = round_fn(
            algorithm.init(params), algorithm.init_client_state(params), data, jax.random.key(0)
        )
        np.testing.assert_allclose(
            out.server_state.params["w"], [0.8 / 3, 1 / 3], rtol=0, atol=1e-6
        )
        self.assertEqual(model.module_usage(data), {})


if __name__ == "__main__":
    absltest.main()
