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
"""Tests for the FedOpt server optimizers and FedOpt's server step, by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import fed_opt, local_training, server_optimizers
from fedjax_m3t.models import linear
from tests import helpers


def _algorithm(name, learning_rate, policy=None, **kwargs):
    """FedOpt on a linear model with heads 'a' and 'b' (kernels [2, 1], biases [1])."""
    model = linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )
    algorithm = fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=server_optimizers.server_optimizer(name, learning_rate, **kwargs),
        local=local_training.LocalTrainingConfig(local_steps=1, batch_size=None),
        policy=policy,
    )
    params = {
        "heads": {
            "a": {"kernel": jnp.array([[1.0], [2.0]]), "bias": jnp.array([3.0])},
            "b": {"kernel": jnp.array([[-1.0], [0.5]]), "bias": jnp.array([0.0])},
        }
    }
    return algorithm, params


def _aggregate(a, b, weight_a=1.0, weight_b=1.0):
    """A hand-made aggregate: delta `a` on every leaf of head a, `b` on head b."""
    delta = {
        "heads": {
            "a": {"kernel": jnp.full((2, 1), a), "bias": jnp.full((1,), a)},
            "b": {"kernel": jnp.full((2, 1), b), "bias": jnp.full((1,), b)},
        }
    }
    weight = {
        "heads": {
            "a": {"kernel": jnp.float32(weight_a), "bias": jnp.float32(weight_a)},
            "b": {"kernel": jnp.float32(weight_b), "bias": jnp.float32(weight_b)},
        }
    }
    return selective.Aggregate(delta=delta, weight=weight)


class ServerOptimizerTest(parameterized.TestCase):
    @parameterized.parameters(*server_optimizers.SERVER_OPTIMIZERS)
    def test_each_name_builds_and_steps_against_the_delta(self, name):
        opt = server_optimizers.server_optimizer(name, 0.1)
        params = {"w": jnp.array([1.0, -2.0])}
        delta = {"w": jnp.array([0.5, -0.5])}
        updates, _ = opt.update(delta, opt.init(params), params)
        # Every optimizer's first step moves against the pseudo-gradient: sign(-delta).
        np.testing.assert_array_equal(np.sign(updates["w"]), [-1.0, 1.0])

    def test_unknown_name_lists_the_names(self):
        with self.assertRaisesRegex(
            ValueError, r"'fedsgd'.*\('fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'\)"
        ):
            server_optimizers.server_optimizer("fedsgd")

    @parameterized.parameters(1.0, 0.5)
    def test_fedavg_applies_minus_lr_delta(self, lr):
        algorithm, params = _algorithm("fedavg", lr)
        state, metrics = algorithm.server_apply(algorithm.init(params), _aggregate(0.5, -2.0))
        # params - lr * delta on every leaf.
        expected = jax.tree.map(lambda p: p, params)
        expected["heads"]["a"] = jax.tree.map(lambda p: p - lr * 0.5, params["heads"]["a"])
        expected["heads"]["b"] = jax.tree.map(lambda p: p + lr * 2.0, params["heads"]["b"])
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), state.params, expected
        )
        self.assertEqual(int(state.round), 1)
        # update_norm: sqrt(3 * 0.5^2 + 3 * 2^2) over the 6 delta entries.
        np.testing.assert_allclose(
            metrics["update_norm"], np.sqrt(3 * 0.25 + 3 * 4.0), rtol=1e-6, atol=0
        )
        self.assertEqual(float(metrics["trained_fraction"]), 1.0)

    def test_fedavgm_two_rounds_by_hand(self):
        algorithm, params = _algorithm("fedavgm", 0.5, momentum=0.9)
        state = algorithm.init(params)
        state, _ = algorithm.server_apply(state, _aggregate(1.0, 0.0))
        state, _ = algorithm.server_apply(state, _aggregate(0.5, 0.0))
        # Heavy ball (optax trace): m1 = d1 = 1, p1 = p0 - 0.5 * 1;
        # m2 = 0.9 * m1 + d2 = 1.4, p2 = p1 - 0.5 * 1.4. In all p2 = p0 - 1.2.
        np.testing.assert_allclose(
            state.params["heads"]["a"]["kernel"], [[1.0 - 1.2], [2.0 - 1.2]], rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(
            state.params["heads"]["a"]["bias"], [3.0 - 1.2], rtol=0, atol=1e-6
        )
        self.assertEqual(int(state.round), 2)

    def test_fedadam_first_step_by_hand(self):
        algorithm, params = _algorithm("fedadam", 0.1, eps=1e-3)
        state, _ = algorithm.server_apply(algorithm.init(params), _aggregate(2.0, -1.0))
        # Bias-corrected Adam at step 1: m_hat = d, v_hat = d^2, so the step is
        # -lr * d / (|d| + eps): -0.1 * 2 / 2.001 on head a, +0.1 * 1 / 1.001 on head b.
        np.testing.assert_allclose(
            state.params["heads"]["a"]["bias"], [3.0 - 0.2 / 2.001], rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(
            state.params["heads"]["b"]["bias"], [0.0 + 0.1 / 1.001], rtol=0, atol=1e-6
        )

    def test_untrained_module_is_unchanged_under_fedadam_momentum(self):
        algorithm, params = _algorithm("fedadam", 0.1)
        state = algorithm.init(params)
        # Two rounds train both heads: Adam builds first and second moments for head b.
        for _ in range(2):
            state, _ = algorithm.server_apply(state, _aggregate(1.0, 1.0))
        before = state.params["heads"]["b"]
        # Now nobody trains head b (weight 0, delta 0): its momentum alone would move it.
        state, metrics = algorithm.server_apply(state, _aggregate(1.0, 0.0, weight_b=0.0))
        for got, want in zip(
            jax.tree.leaves(state.params["heads"]["b"]), jax.tree.leaves(before), strict=True
        ):
            np.testing.assert_array_equal(got, want)
        self.assertFalse(
            np.allclose(state.params["heads"]["a"]["bias"], params["heads"]["a"]["bias"])
        )
        # 2 of the 4 leaves were trained.
        self.assertEqual(float(metrics["trained_fraction"]), 0.5)

    def test_server_step_ignores_non_federated_leaves(self):
        # With head b local, the server optimizer sees head a only and head b never moves.
        policy = policy_lib.ModulePolicy(local=("heads/b",))
        algorithm, params = _algorithm("fedavg", 1.0, policy=policy)
        aggregate = _aggregate(0.5, 0.0)
        aggregate = selective.Aggregate(
            delta={
                "heads": {"a": aggregate.delta["heads"]["a"], "b": {"kernel": None, "bias": None}}
            },
            weight={
                "heads": {"a": aggregate.weight["heads"]["a"], "b": {"kernel": None, "bias": None}}
            },
        )
        state, _ = algorithm.server_apply(algorithm.init(params), aggregate)
        np.testing.assert_array_equal(
            state.params["heads"]["b"]["kernel"], params["heads"]["b"]["kernel"]
        )
        np.testing.assert_allclose(state.params["heads"]["a"]["bias"], [2.5], rtol=0, atol=1e-6)


if __name__ == "__main__":
    absltest.main()
