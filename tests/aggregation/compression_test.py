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
"""Byte accounting by hand, top-k with error feedback, unbiased quantisation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t.aggregation import compression
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import linear
from tests import helpers


def _model():
    return linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )


def _fedavg(model, policy=None):
    return fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=1, batch_size=2),
        policy=policy,
    )


class BytesTest(absltest.TestCase):
    def test_bytes_are_the_federated_arrays_sent(self):
        # heads/a federated (kernel [2, 1] + bias [1], float32: 12 bytes); heads/b local.
        model = _model()
        algorithm = _fedavg(model, policy_lib.ModulePolicy(local=("heads/b/**",)))
        params = model.init(None)
        got = compression.round_bytes(algorithm.policy, params)
        self.assertEqual(got, {"down": {"heads/a": 12}, "up": {"heads/a": 12}})
        sent = tree.select(algorithm.policy.federated, params)
        self.assertEqual(sum(x.nbytes for x in jax.tree.leaves(sent)), 12)
        # 4-bit codes: kernel ceil(2 * 4 / 8) + 8 = 9, bias ceil(1 * 4 / 8) + 8 = 9.
        q = compression.round_bytes(algorithm.policy, params, compression="quantize", bits=4)
        self.assertEqual(q["up"], {"heads/a": 18})
        # top-1: one float32 value + one int32 index per leaf, 2 leaves.
        k = compression.round_bytes(algorithm.policy, params, compression="top_k", k=1)
        self.assertEqual(k["up"], {"heads/a": 16})
        self.assertEqual(k["down"], {"heads/a": 12})


class TopKTest(absltest.TestCase):
    def test_k_values_per_leaf_and_the_residual_carries_the_rest(self):
        model = _model()
        inner = _fedavg(model)
        params = model.init(None)
        delta = {
            "heads": {
                "a": {"bias": jnp.asarray([0.5]), "kernel": jnp.asarray([[3.0], [-4.0]])},
                "b": {"bias": jnp.asarray([-1.0]), "kernel": jnp.asarray([[0.1], [0.2]])},
            }
        }
        fixed = base.ClientOutput(delta, jax.tree.map(lambda _: 1.0, delta), None, {})
        inner = inner._replace(client_update=lambda r, s, e, c: fixed)
        algorithm = compression.top_k(inner, 1)
        state = algorithm.init_client_state(params)
        out = algorithm.client_update(params, state, None, None)
        kernel_a = out.delta["heads"]["a"]["kernel"]
        np.testing.assert_allclose(kernel_a, [[0.0], [-4.0]])
        for leaf in jax.tree.leaves(out.delta):
            self.assertEqual(int(jnp.sum(leaf != 0)), 1)
        residual = out.client_state[1]
        np.testing.assert_allclose(residual["heads"]["a"]["kernel"], [[3.0], [0.0]])
        np.testing.assert_allclose(residual["heads"]["b"]["kernel"], [[0.1], [0.0]])
        jax.tree.map(
            lambda s, r, d: np.testing.assert_allclose(s + r, d), out.delta, residual, delta
        )
        # Round 2: delta + residual = [[6], [-4]] for heads/a/kernel: 6 is sent now.
        out2 = algorithm.client_update(params, out.client_state, None, None)
        np.testing.assert_allclose(out2.delta["heads"]["a"]["kernel"], [[6.0], [0.0]])
        np.testing.assert_allclose(out2.client_state[1]["heads"]["a"]["kernel"], [[0.0], [-4.0]])


class QuantizeTest(absltest.TestCase):
    def test_unbiased_on_the_grid(self):
        x = jnp.asarray([0.0, 0.1, 0.37, 0.5, 1.0])
        keys = jax.random.split(jax.random.key(0), 4000)
        q = jax.vmap(lambda k: compression.quantize(x, 2, k))(keys)
        # 2 bits on [0, 1]: levels 0, 1/3, 2/3, 1; the mean converges to x
        # (std of one draw <= 1/6, of the mean <= 1/6 / sqrt(4000) = 0.0026).
        levels = np.asarray([0, 1 / 3, 2 / 3, 1])
        self.assertTrue(np.all(np.min(np.abs(np.asarray(q)[..., None] - levels), -1) < 1e-6))
        np.testing.assert_allclose(jnp.mean(q, 0), x, atol=0.012)
        self.assertGreater(float(jnp.std(q[:, 1])), 0.05)  # It does round at random.

    def test_transform_quantizes_every_leaf(self):
        delta = {"w": jnp.asarray([0.0, 0.25, 1.0]), "b": jnp.asarray([2.0, 3.0])}
        out = base.ClientOutput(delta, {"w": 1.0, "b": 1.0}, None, {})
        got = compression.stochastic_quantize(1)(out, jax.random.key(1)).delta
        self.assertTrue(set(np.asarray(got["w"]).tolist()) <= {0.0, 1.0})
        np.testing.assert_allclose(got["b"], [2.0, 3.0])  # The leaf's min and max.


if __name__ == "__main__":
    absltest.main()
