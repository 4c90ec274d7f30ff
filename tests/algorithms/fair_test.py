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
"""q-FFL and AFL: q = 0 is FedAvg, the q-FedAvg message by hand, AFL's simplex."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.algorithms import base, fair, fed_opt, local_training
from fedjax_m3t.models import linear
from tests import helpers

NUM_CLIENTS = 4
SIZES = (2, 3, 5, 4)
LOCAL = local_training.LocalTrainingConfig(local_steps=2, batch_size=2)
LR = 0.1


def _model():
    return linear.build_linear_model(helpers.tabular_spec((("a", "regression"),)))


def _setup():
    model = _model()
    rng = np.random.default_rng(0)
    data = helpers.stack([helpers.linear_client(rng, n, ("a",)) for n in SIZES], 5)
    # Client 3's labels are shifted far away: the worst-served client.
    data["labels"]["a"][3] += 5.0
    params = jax.tree.map(
        lambda x: jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32),
        model.init(None),
    )
    fedavg = fed_opt.fed_opt(
        model, client_optimizer=optax.sgd(LR), server_optimizer=optax.sgd(1.0), local=LOCAL
    )
    return model, data, params, fedavg


def _run(algorithm, params, data, rounds):
    """The server states after each round, every client each round (one jitted cohort)."""
    ids = jnp.arange(NUM_CLIENTS, dtype=jnp.int32)
    clients = jax.tree.map(
        lambda x: jnp.stack([x] * NUM_CLIENTS), algorithm.init_client_state(params)
    )
    cohort = jax.jit(jax.vmap(algorithm.client_update, in_axes=(None, 0, 0, base.CONTEXT_AXES)))
    state, states = algorithm.init(params), []
    for r in range(rounds):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(r), ids)
        contexts = base.ClientContext(keys, ids, state.round, jnp.zeros_like(ids))
        out = cohort(state.params, clients, data, contexts)
        acc = aggregation_base.StackedUpdates(out.delta, out.weight, ids)
        if not algorithm.aggregator.stacked:
            acc = algorithm.aggregator.accumulate(
                algorithm.aggregator.init(helpers.take(out.delta, 0)), out.delta, out.weight
            )
        aggregate, agg_state = algorithm.aggregator.finalize(acc, state.agg_state, keys[0])
        state, _ = algorithm.server_apply(state._replace(agg_state=agg_state), aggregate, keys[0])
        states.append(state)
    return states


class QFFLTest(absltest.TestCase):
    def test_q0_equals_fedavg(self):
        model, data, params, fedavg = _setup()
        qffl = fair.qffl(fedavg, model, q=0.0, lipschitz=1.0 / LR)
        want = _run(fedavg, params, data, 1)[-1].params
        got = _run(qffl, params, data, 1)[-1].params
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), got, want)
        moved = sum(
            float(jnp.sum(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True)
        )
        self.assertGreater(moved, 0.01)

    def test_message_by_hand(self):
        # Delta w = [3, 4] (||.||^2 = 25), F = 2, q = 1, L = 10: h = 1 * 2^0 * 100 * 25 +
        # 10 * 2 = 2520; sent delta = F^q L Dw / h = 20 / 2520 * [3, 4]; weight p h.
        delta = {"w": jnp.asarray([3.0, 4.0])}
        sent, weight, h = fair.qffl_rescale(
            delta, {"w": jnp.asarray(2.0)}, jnp.asarray(2.0), q=1.0, lipschitz=10.0
        )
        self.assertAlmostEqual(float(h), 2520.0, places=2)
        np.testing.assert_allclose(sent["w"], [60 / 2520, 80 / 2520], rtol=1e-6)
        self.assertAlmostEqual(float(weight["w"]), 5040.0, places=1)

    def test_projection_by_hand(self):
        # [2.5, 0.5]: theta = 1.5 -> [1, 0]; [0.4, 0.3, 0.5] (sum 1.2): theta = 0.4 / 3.
        np.testing.assert_allclose(fair.project_simplex(jnp.array([2.5, 0.5])), [1.0, 0.0])
        got = fair.project_simplex(jnp.array([0.4, 0.3, 0.5]))
        np.testing.assert_allclose(got, np.array([0.4, 0.3, 0.5]) - 0.2 / 3, rtol=1e-6)


class AFLTest(absltest.TestCase):
    def test_mixture_stays_on_simplex_and_moves_to_the_worst_client(self):
        model, data, params, fedavg = _setup()
        algorithm = fair.afl(fedavg, model, num_clients=NUM_CLIENTS, learning_rate=0.01)
        states = _run(algorithm, params, data, 3)
        local = fedavg.init_client_state(params)
        losses = [
            float(fair.client_loss(model, fedavg, params, local, helpers.take(data, c), _ctx()))
            for c in range(NUM_CLIENTS)
        ]
        self.assertEqual(int(np.argmax(losses)), 3)
        # Round 1 by hand: lambda = Proj(1/4 + 0.01 * F), F at the initial params.
        want = fair.project_simplex(jnp.full(4, 0.25) + 0.01 * jnp.asarray(losses))
        np.testing.assert_allclose(states[0].agg_state.mixture, want, rtol=1e-5, atol=1e-6)
        for s in states:
            lam = np.asarray(s.agg_state.mixture)
            self.assertTrue(np.all(lam >= 0))
            self.assertAlmostEqual(float(lam.sum()), 1.0, places=5)
        lam = np.asarray(states[-1].agg_state.mixture)
        self.assertEqual(int(np.argmax(lam)), 3)
        self.assertGreater(lam[3], 0.25)


class RegistryTest(absltest.TestCase):
    def test_names_build_the_wrappers(self):
        from fedjax_m3t.algorithms import registry

        model = _model()
        kwargs = dict(local=LOCAL, client_learning_rate=LR)
        q = registry.build_algorithm("qffl", model, qffl_q=2.0, **kwargs)
        self.assertEqual((q.description["name"], q.description["q"]), ("qffl", 2.0))
        a = registry.build_algorithm("afl", model, afl_lr=0.5, num_clients=3, **kwargs)
        self.assertEqual(a.description["afl_lr"], 0.5)
        np.testing.assert_allclose(a.init(model.init(None)).agg_state.mixture, [1 / 3] * 3)
        with self.assertRaisesRegex(ValueError, "num_clients"):
            registry.build_algorithm("afl", model, **kwargs)


def _ctx():
    return base.make_context(jax.random.key(0))


if __name__ == "__main__":
    absltest.main()
