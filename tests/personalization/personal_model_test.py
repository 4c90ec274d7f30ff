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
"""Ditto's limits (lambda = 0: local-only; lambda large: FedAvg's model) and local-only."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import absltest

from fedjax_m3t import tree
from fedjax_m3t.algorithms import local_training
from fedjax_m3t.personalization import personal_model
from fedjax_m3t.simulation import round as round_lib
from tests.personalization import fixtures

LAMBDA = 1000.0
FULL_BATCH = dataclasses.replace(fixtures.LOCAL, batch_size=None)


def _ditto(lam, personal_lr, personal=None):
    return personal_model.ditto(
        fixtures.model(),
        client_optimizer=optax.sgd(fixtures.LR),
        server_optimizer=optax.sgd(1.0),
        local=fixtures.LOCAL,
        lam=lam,
        personal_optimizer=optax.sgd(personal_lr),
        personal=personal,
    )


class DittoTest(absltest.TestCase):
    @pytest.mark.slow  # Two runs (about 25 s on one core).
    def test_lambda_zero_is_local_only_training(self):
        ditto = fixtures.run(_ditto(0.0, fixtures.LR))
        alone = fixtures.run(fixtures.build("local_only"))
        personal = fixtures.host(ditto.client_states.personal)
        own = fixtures.host(alone.client_states)
        self.assertEqual(tree.leaf_paths(personal), tree.leaf_paths(own))
        # The same ops on the same keys and data: equal to float32 rounding.
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), personal, own)
        init = fixtures.init_params()
        self.assertGreater(
            tree.l2_norm(jax.tree.map(jnp.subtract, own["heads"], init["heads"])), 0.1
        )
        np.testing.assert_allclose(
            ditto.personal_report.client_values("a", "rmse"),
            alone.personal_report.client_values("a", "rmse"),
            rtol=1e-5,
        )
        # Local-only sends nothing and its server never moves.
        jax.tree.map(np.testing.assert_array_equal, fixtures.host(alone.server_state.params), init)

    @pytest.mark.slow  # A run and FedAvg's (about 25 s on one core).
    def test_large_lambda_is_the_global_model(self):
        """lambda = 1000, personal SGD step eta = 1 / lambda, full-batch personal steps.

        Derivation of the tolerance: with eta * lambda = 1 a personal step is
        v <- v - eta (g(v) + lambda (v - w)) = w - eta g(v), so after the round's
        steps ||v - w|| = eta ||g(v_prev)|| with v_prev within eta ||g|| of w, so
        | ||g(v_prev)|| - ||g(w)|| | <= L eta ||g|| (L: the gradient's Lipschitz
        constant near w) and
            ||v_c - w|| = (||g_c(w)|| / lambda) (1 + delta),  |delta| <= L / lambda,
        w the global model client c received (FedAvg's after round 1), g_c its
        task-loss gradient there. The tolerance: |delta| <= 0.1, i.e. L <= 100 near
        w (measured |delta| <= 0.035 on this model); the gap is about 1e-3, against a
        model that moved by O(1) from its init.
        """
        received = []
        hook = lambda info: received.append(fixtures.host(info.server_state.params))
        ditto = fixtures.run(_ditto(LAMBDA, 1.0 / LAMBDA, FULL_BATCH), hooks=[hook])
        fedavg = fixtures.fedavg_result()
        # The global model is FedAvg's, bit for bit (same code, same keys).
        jax.tree.map(
            np.testing.assert_array_equal,
            fixtures.host(ditto.server_state.params),
            fixtures.host(fedavg.server_state.params),
        )
        w = received[0]  # The model every client received in round 2.
        fed = fixtures.federation()
        train = jax.tree.map(jnp.asarray, fed.train)
        n = fixtures.NUM_CLIENTS
        scale = round_lib.cohort_task_scale(train, jnp.arange(n), jnp.ones(n))
        loss = local_training.task_loss(fixtures.model())

        def grad_norm(examples):
            context = local_training.LossContext(jax.random.key(0), w, scale)
            grads = jax.grad(lambda p: loss(p, examples, context)[0])(w)
            return tree.l2_norm(grads)

        personal = fixtures.host(ditto.client_states.personal)
        for c in range(n):
            g = float(grad_norm(fixtures.take(train, c)))
            gap = float(tree.l2_norm(jax.tree.map(jnp.subtract, fixtures.take(personal, c), w)))
            self.assertBetween(gap / (g / LAMBDA), 0.9, 1.1)
        moved = tree.l2_norm(jax.tree.map(jnp.subtract, w, fixtures.init_params()))
        self.assertGreater(float(moved), 100 * gap)

    def test_negative_lambda_raises(self):
        with self.assertRaisesRegex(ValueError, "lambda must be >= 0"):
            _ditto(-1.0, 0.1)


if __name__ == "__main__":
    absltest.main()
