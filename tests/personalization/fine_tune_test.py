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
"""FedAvg + FT: k = 0 is FedAvg; k = 1 full-batch SGD step is w - lr grad F_c(w)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import tasks, tree
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.personalization import fine_tune, registry
from tests.personalization import fixtures


class FineTuneTest(absltest.TestCase):
    def test_zero_steps_is_fedavg(self):
        tuned = fixtures.run(
            fixtures.build("fedavg_ft", personal=registry.PersonalConfig(fine_tune_steps=0))
        )
        fedavg = fixtures.fedavg_result()
        jax.tree.map(
            np.testing.assert_array_equal,
            fixtures.host(tuned.server_state.params),
            fixtures.host(fedavg.server_state.params),
        )
        # The same params through two jitted evaluators (the personal one maps over
        # client states): equal up to float32 rounding of the metric (rtol 1e-5).
        for task in fixtures.TASKS:
            for metric in ("rmse", "r2"):
                np.testing.assert_allclose(
                    tuned.personal_report.client_values(task, metric),
                    fedavg.global_report.client_values(task, metric),
                    rtol=1e-5,
                )

    def test_one_full_batch_step_by_hand(self):
        lr = 0.1
        model = fixtures.model()
        local = dataclasses.replace(fixtures.LOCAL, batch_size=None)
        algorithm = fine_tune.with_fine_tuning(
            fixtures.build("fedavg"), model, optimizer=optax.sgd(lr), local=local, steps=1
        )
        state = algorithm.init(fixtures.init_params())
        fed = fixtures.federation()
        train = jax.tree.map(jnp.asarray, fed.train)
        groups = jnp.zeros((fixtures.NUM_CLIENTS,), jnp.int32)
        states = jax.tree.map(lambda x: x, algorithm.init_client_state(state.params))
        states = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (fixtures.NUM_CLIENTS,) + x.shape), states
        )
        adapted = base.adapt_clients(algorithm, state, states, train, groups, jax.random.key(3))
        loss = local_training.task_loss(model)
        w = state.params

        @jax.jit
        def by_hand(examples):  # One full-batch SGD step of the client's own objective.
            scale = tasks.own_task_scale(model.spec.tasks, examples)
            context = local_training.LossContext(jax.random.key(0), w, scale)
            grads = jax.grad(lambda p: loss(p, examples, context)[0])(w)
            return jax.tree.map(lambda p, g: p - lr * g, w, grads), grads

        for c in range(fixtures.NUM_CLIENTS):
            expected, grads = by_hand(fixtures.take(train, c))
            got = fixtures.take(adapted, c)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got, expected)
            self.assertGreater(float(tree.l2_norm(grads)), 1e-2)

    def test_negative_steps_raise(self):
        with self.assertRaisesRegex(ValueError, "must be >= 0"):
            fixtures.build("fedavg_ft", personal=registry.PersonalConfig(fine_tune_steps=-1))


if __name__ == "__main__":
    absltest.main()
