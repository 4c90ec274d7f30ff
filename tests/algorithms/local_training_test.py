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
"""Tests for the client update: the FedSGD identity, policies, purity, batching, FedProx."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t.algorithms import base, local_training, registry
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

ATOL = 1e-6


def _config(steps=1, batch_size=None, **kwargs):
    return local_training.LocalTrainingConfig(local_steps=steps, batch_size=batch_size, **kwargs)


def _mse_grad(w, b, x, y):
    """NumPy gradient of mean((x w + b - y)^2) in (w [F], b scalar)."""
    r = x @ w + b - y
    return 2 * x.T @ r / len(y), 2 * np.mean(r)


def _two_task_model():
    return linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )


def _two_task_clients():
    """Two clients (3 and 2 examples) labelled for both tasks, padded to 3 examples."""
    rng = np.random.default_rng(0)
    clients = [helpers.linear_client(rng, n, tasks=("a", "b")) for n in (3, 2)]
    return jax.tree.map(jnp.asarray, helpers.stack(clients))


def _nonzero_params(model):
    """Params with distinct non-zero values (model.init is all zeros)."""
    params = model.init(jax.random.key(0))
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(1)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(rng.normal(size=x.shape), jnp.float32) for x in leaves]
    )


def _run_round(algorithm, params, data):
    """One jitted round: vmapped client updates over the stacked clients, then the server."""
    num_clients = data["mask"].shape[0]
    one = algorithm.init_client_state(params)
    states = jax.tree.map(lambda x: jnp.stack([x] * num_clients), one)
    keys = jax.random.split(jax.random.key(0), num_clients)

    @jax.jit
    def run(params, states, data, keys):
        # The cohort's task scale, as the engine's round computes it.
        ids = jnp.arange(num_clients)
        scale = round_lib.cohort_task_scale(data, ids, jnp.ones(num_clients))

        def one(p, s, d, k):
            return algorithm.client_update(p, s, d, base.make_context(k, task_scale=scale))

        outputs = jax.vmap(one, in_axes=(None, 0, 0, 0))(params, states, data, keys)
        state, _ = base.server_update(algorithm, algorithm.init(params), outputs, keys[0])
        return state, outputs

    return run(params, states, data, keys)


class FedSGDIdentityTest(absltest.TestCase):
    """FedAvg, 1 full-batch SGD step, server SGD lr 1 == centralised SGD on the pooled data."""

    def test_by_hand(self):
        # Client 0: x = [[1, 0], [0, 1]], y = [1, 2]; client 1: x = [[1, 1]], y = [3].
        # From w = 0, b = 0 the pooled MSE gradient over the 3 examples is
        #   dw = (2/3) sum(-y_i x_i) = (2/3) * -[1 + 3, 2 + 3] = [-8/3, -10/3],
        #   db = (2/3) sum(-y_i) = -4,
        # so one step of lr 0.1 gives w = [0.8/3, 1/3], b = 0.4. Client-wise, the deltas
        # are 0.1 * ([-1, -2], -3) and 0.1 * ([-6, -6], -6), and their mean weighted by
        # the sizes 2 and 1 is the same step.
        model = linear.build_linear_model(helpers.tabular_spec())
        data = jax.tree.map(
            jnp.asarray,
            helpers.stack(
                [
                    helpers.client([[1, 0], [0, 1]], {"y": [1.0, 2.0]}),
                    helpers.client([[1, 1]], {"y": [3.0]}),
                ]
            ),
        )
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=_config()
        )
        state, outputs = _run_round(algorithm, model.init(jax.random.key(0)), data)
        head = state.params["heads"]["y"]
        np.testing.assert_allclose(head["kernel"][:, 0], [0.8 / 3, 1 / 3], rtol=0, atol=ATOL)
        np.testing.assert_allclose(head["bias"], [0.4], rtol=0, atol=ATOL)
        np.testing.assert_allclose(
            outputs.delta["heads"]["y"]["bias"][:, 0], [-0.3, -0.6], rtol=0, atol=ATOL
        )
        np.testing.assert_array_equal(outputs.weight["heads"]["y"]["kernel"], [2.0, 1.0])
        np.testing.assert_array_equal(outputs.metrics["num_examples"], [2.0, 1.0])
        np.testing.assert_array_equal(state.round, 1)

    def test_random_clients_of_different_sizes(self):
        model = linear.build_linear_model(helpers.tabular_spec(num_features=3))
        rng = np.random.default_rng(2)
        clients = [helpers.linear_client(rng, n, num_features=3) for n in (1, 4, 7)]
        data = jax.tree.map(jnp.asarray, helpers.stack(clients))
        params = _nonzero_params(model)
        lr = 0.05
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=lr, local=_config()
        )
        state, _ = _run_round(algorithm, params, data)

        # Centralised SGD on the 12 pooled examples, by hand in NumPy ...
        x = np.concatenate([c["inputs"]["tabular"] for c in clients])
        y = np.concatenate([c["labels"]["y"] for c in clients])
        w0 = np.asarray(params["heads"]["y"]["kernel"][:, 0], np.float64)
        b0 = float(params["heads"]["y"]["bias"][0])
        dw, db = _mse_grad(w0, b0, x, y)
        head = state.params["heads"]["y"]
        np.testing.assert_allclose(head["kernel"][:, 0], w0 - lr * dw, rtol=0, atol=1e-5)
        np.testing.assert_allclose(head["bias"], [b0 - lr * db], rtol=0, atol=1e-5)

        # ... and with jax.grad of the model's own loss on the pooled batch.
        def pooled_loss(p):
            pred = model.apply(
                p, {"inputs": {"tabular": x}, "present": {"tabular": np.ones(12, bool)}}
            )
            return jnp.mean(jnp.square(pred["y"] - y))

        grads = jax.jit(jax.grad(pooled_loss))(params)
        want = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5), state.params, want
        )

    def test_missing_labels_selective_identity(self):
        # The identity holds per head even when clients lack labels: client 0 has no 'b'
        # label, client 1 has 2 of 4. With the cohort's task scale N^b / N_b = 6 / 4 and
        # weights n_c for the holders of 'b', the mean of the client gradients of head b
        # is the gradient of the pooled mean over the 2 + 2 pooled 'b' labels, and
        # client 0 (weight 0) does not dilute it (local_training.leaf_weights).
        model = _two_task_model()
        rng = np.random.default_rng(5)
        clients = [helpers.linear_client(rng, n, ("a", "b")) for n in (3, 4, 2)]
        clients[0]["label_mask"]["b"][:] = False
        clients[1]["label_mask"]["b"][:] = [True, False, True, False]
        data = jax.tree.map(jnp.asarray, helpers.stack(clients))
        params = _nonzero_params(model)
        lr = 0.1
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=lr, local=_config()
        )
        state, outputs = _run_round(algorithm, params, data)
        np.testing.assert_array_equal(outputs.weight["heads"]["b"]["bias"], [0.0, 4.0, 2.0])
        np.testing.assert_array_equal(outputs.weight["heads"]["a"]["bias"], [3.0, 4.0, 2.0])

        pooled = jax.tree.map(lambda *xs: np.concatenate(xs), *clients)

        def pooled_loss(p):
            return tasks.task_losses(model.spec.tasks, model.apply(p, pooled), pooled)[0]

        grads = jax.jit(jax.grad(pooled_loss))(params)
        want = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5), state.params, want
        )


class PolicyTest(absltest.TestCase):
    def test_frozen_head_is_untouched_and_not_sent(self):
        model = _two_task_model()
        params = _nonzero_params(model)
        policy = policy_lib.ModulePolicy(frozen=("heads/a",))
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=_config(2), policy=policy
        )
        state, outputs = _run_round(algorithm, params, _two_task_clients())
        # Bit-identical after the round.
        for got, want in zip(
            jax.tree.leaves(state.params["heads"]["a"]),
            jax.tree.leaves(params["heads"]["a"]),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)
        # Not in what the clients send: None at its leaves.
        self.assertEqual(outputs.delta["heads"]["a"], {"kernel": None, "bias": None})
        self.assertEqual(jax.tree.leaves(outputs.weight["heads"]["a"]), [])
        self.assertEqual(tree.leaf_paths(outputs.delta), ["heads/b/bias", "heads/b/kernel"])
        # The federated head moved.
        self.assertGreater(float(tree.l2_norm(outputs.delta["heads"]["b"])), 1e-3)
        self.assertFalse(
            np.allclose(state.params["heads"]["b"]["kernel"], params["heads"]["b"]["kernel"])
        )

    def test_local_head_stays_on_the_client(self):
        model = _two_task_model()
        params = _nonzero_params(model)
        policy = policy_lib.ModulePolicy(local=("heads/b",))
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=_config(2), policy=policy
        )
        state, outputs = _run_round(algorithm, params, _two_task_clients())
        # Never in the delta (what the server receives) ...
        self.assertEqual(tree.leaf_paths(outputs.delta), ["heads/a/bias", "heads/a/kernel"])
        self.assertEqual(tree.leaf_paths(outputs.weight), ["heads/a/bias", "heads/a/kernel"])
        # ... but trained into each client's state (stacked [2, ...]).
        self.assertEqual(tree.leaf_paths(outputs.client_state), ["heads/b/bias", "heads/b/kernel"])
        self.assertIsNone(outputs.client_state["heads"]["a"]["kernel"])
        for c in range(2):
            moved = outputs.client_state["heads"]["b"]["kernel"][c] - params["heads"]["b"]["kernel"]
            self.assertGreater(float(jnp.abs(moved).max()), 1e-3)
        # The server's copy (the initial values new clients start from) is unchanged.
        np.testing.assert_array_equal(
            state.params["heads"]["b"]["kernel"], params["heads"]["b"]["kernel"]
        )
        self.assertFalse(
            np.allclose(state.params["heads"]["a"]["kernel"], params["heads"]["a"]["kernel"])
        )

    def test_local_state_is_read_from_client_state(self):
        # The client trains from its own local leaves, not the server's copy of them.
        model = _two_task_model()
        params = _nonzero_params(model)
        policy = policy_lib.ModulePolicy(local=("heads/b",))
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.0, local=_config(), policy=policy
        )
        mine = jax.tree.map(
            lambda x: None if x is None else x + 5.0, algorithm.init_client_state(params)
        )
        out = algorithm.client_update(
            params, mine, helpers.take(_two_task_clients(), 0), base.make_context(jax.random.key(0))
        )
        # lr 0: the state comes back exactly as it went in.
        np.testing.assert_array_equal(
            out.client_state["heads"]["b"]["kernel"], params["heads"]["b"]["kernel"] + 5.0
        )


class ClientUpdateTest(chex.TestCase):
    def _setup(self, batch_size=None, steps=2):
        model = _two_task_model()
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=_config(steps, batch_size)
        )
        params = _nonzero_params(model)
        data = helpers.take(_two_task_clients(), 1)  # 2 real examples + 1 padding row.
        return algorithm, params, algorithm.init_client_state(params), data

    def test_pure(self):
        algorithm, params, state, data = self._setup(batch_size=1)
        before = jax.tree.map(np.array, (params, data))
        first = algorithm.client_update(params, state, data, base.make_context(jax.random.key(0)))
        second = algorithm.client_update(params, state, data, base.make_context(jax.random.key(0)))
        jax.tree.map(np.testing.assert_array_equal, first, second)
        # Inputs are not modified.
        jax.tree.map(np.testing.assert_array_equal, (params, data), before)
        # With batch_size 1 the key decides the order of the examples, hence the result:
        # some other key gives the other order ([0, 1] and [1, 0] give different deltas).
        update = jax.jit(algorithm.client_update)
        kernel = lambda k: update(params, state, data, base.make_context(jax.random.key(k))).delta[
            "heads"
        ]["a"]
        self.assertTrue(
            any(
                not np.allclose(kernel(k)["kernel"], first.delta["heads"]["a"]["kernel"])
                for k in range(1, 6)
            )
        )

    def test_fixed_batch_order_ignores_the_key(self):
        # shuffle=False reads the examples in stored order: batch_size 1 over the 2 real
        # examples, so every key gives the same steps (with shuffling, some key does not).
        model = _two_task_model()
        params = _nonzero_params(model)
        data = helpers.take(_two_task_clients(), 1)
        config = _config(2, 1, shuffle=False)
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=config
        )
        update = jax.jit(algorithm.client_update)
        state = algorithm.init_client_state(params)
        outs = [update(params, state, data, base.make_context(jax.random.key(k))) for k in range(4)]
        for out in outs[1:]:
            jax.tree.map(np.testing.assert_array_equal, out.delta, outs[0].delta)
        order = local_training.example_order(
            jnp.asarray([True, False, True, True]), jax.random.key(0), shuffle=False
        )
        np.testing.assert_array_equal(order, [0, 2, 3, 1])

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        algorithm, params, state, data = self._setup(batch_size=2)
        got = self.variant(algorithm.client_update)(
            params, state, data, base.make_context(jax.random.key(0))
        )
        want = jax.jit(algorithm.client_update)(
            params, state, data, base.make_context(jax.random.key(0))
        )
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=ATOL), got, want)
        # And it equals two full-batch SGD steps on the client's 2 examples, by hand.
        x, w, b = np.asarray(data["inputs"]["tabular"][:2], np.float64), {}, {}
        for task in ("a", "b"):
            y = np.asarray(data["labels"][task][:2], np.float64)
            w[task] = np.asarray(params["heads"][task]["kernel"][:, 0], np.float64)
            b[task] = float(params["heads"][task]["bias"][0])
            for _ in range(2):
                dw, db = _mse_grad(w[task], b[task], x, y)
                w[task], b[task] = w[task] - 0.1 * dw, b[task] - 0.1 * db
            np.testing.assert_allclose(
                got.delta["heads"][task]["kernel"][:, 0],
                params["heads"][task]["kernel"][:, 0] - w[task],
                rtol=0,
                atol=1e-5,
            )

    @parameterized.parameters(None, 2)
    def test_client_without_examples_sends_nothing(self, batch_size):
        algorithm, params, state, data = self._setup(batch_size=batch_size)
        data = {**data, "mask": jnp.zeros_like(data["mask"])}
        out = jax.jit(algorithm.client_update)(
            params, state, data, base.make_context(jax.random.key(0))
        )
        for leaf in jax.tree.leaves(out.delta) + jax.tree.leaves(out.weight):
            np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
        self.assertLen(jax.tree.leaves(out.weight), 4)
        self.assertEqual(float(out.metrics["num_examples"]), 0.0)
        self.assertEqual(float(out.metrics["loss"]), 0.0)

    def test_per_leaf_weights_follow_labels(self):
        model = _two_task_model()
        algorithm = registry.build_algorithm(
            "fedavg", model, client_learning_rate=0.1, local=_config()
        )
        params = _nonzero_params(model)
        # 3 real examples + 1 padding row (labelled for both tasks, but not real);
        # task 'b' is labelled on no real example.
        data = helpers.client(
            [[1, 2], [3, 4], [5, 6], [7, 8]],
            {"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0, 1.0]},
            label_mask={"b": [False, False, False, True]},
            mask=[True, True, True, False],
        )
        out = algorithm.client_update(
            params, algorithm.init_client_state(params), data, base.make_context(jax.random.key(0))
        )
        weights = dict(
            zip(tree.leaf_paths(out.weight), map(float, jax.tree.leaves(out.weight)), strict=True)
        )
        # The client's 3 real examples where it used the head, 0 where it did not.
        self.assertEqual(
            weights,
            {
                "heads/a/bias": 3.0,
                "heads/a/kernel": 3.0,
                "heads/b/bias": 0.0,
                "heads/b/kernel": 0.0,
            },
        )
        np.testing.assert_array_equal(out.delta["heads"]["b"]["kernel"], np.zeros((2, 1)))

    def test_leaf_weights_longest_prefix(self):
        usage = {
            "enc": jnp.float32(7.0),
            "enc/text": jnp.float32(0.0),
            "heads/a": jnp.float32(1.0),
        }
        shared = {
            "enc": {"text": {"k": 0.0}, "image": {"k": 0.0}},
            "heads": {"a": {"k": 0.0}, "ab": {"k": 0.0}},
            "backbone": {"k": 0.0},
            "off": None,
        }
        got = local_training.leaf_weights(usage, jnp.float32(9.0), shared)
        # n_c = 9 where the longest-prefix module was used (count > 0), else 0.
        self.assertEqual(
            jax.tree.map(float, got),
            {
                "enc": {"text": {"k": 0.0}, "image": {"k": 9.0}},  # Longest prefix wins.
                # 'heads/a' is not a prefix module of 'heads/ab'; unlisted: num_examples.
                "heads": {"a": {"k": 9.0}, "ab": {"k": 9.0}},
                "backbone": {"k": 9.0},
                "off": None,
            },
        )

    @parameterized.parameters(3, 4, 16)
    def test_batch_at_least_client_size_is_full_batch(self, batch_size):
        # The client has 3 real examples (padded to 5); with batch_size >= 3 every step
        # must use each real example exactly once: 3 steps == 3 full-batch steps.
        model = _two_task_model()
        rng = np.random.default_rng(3)
        data = jax.tree.map(
            jnp.asarray, helpers.stack([helpers.linear_client(rng, 3, ("a", "b"))], 5)
        )
        data = helpers.take(data, 0)
        params = _nonzero_params(model)
        outs = []
        for size in (batch_size, None):
            algorithm = registry.build_algorithm(
                "fedavg", model, client_learning_rate=0.1, local=_config(3, size)
            )
            outs.append(
                jax.jit(algorithm.client_update)(
                    params,
                    algorithm.init_client_state(params),
                    data,
                    base.make_context(jax.random.key(0)),
                )
            )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=ATOL),
            outs[0].delta,
            outs[1].delta,
        )
        self.assertGreater(float(tree.l2_norm(outs[0].delta)), 1e-2)

    def test_config_validation(self):
        with self.assertRaisesRegex(ValueError, "local_steps"):
            _config(0)
        with self.assertRaisesRegex(ValueError, "batch_size"):
            _config(1, 0)
        with self.assertRaisesRegex(ValueError, "mu must be >= 0"):
            local_training.proximal(local_training.task_loss(_two_task_model()), -1.0, {})


class FedProxTest(absltest.TestCase):
    def _delta(self, mu, steps=10):
        model = linear.build_linear_model(helpers.tabular_spec())
        rng = np.random.default_rng(4)
        data = jax.tree.map(jnp.asarray, helpers.linear_client(rng, 6))
        params = _nonzero_params(model)
        algorithm = registry.build_algorithm(
            "fedprox", model, prox_mu=mu, client_learning_rate=0.1, local=_config(steps)
        )
        out = jax.jit(algorithm.client_update)(
            params, algorithm.init_client_state(params), data, base.make_context(jax.random.key(0))
        )
        return params, data, out.delta

    def test_huge_mu_keeps_client_near_server(self):
        # lr * mu = 0.9: each step pulls the client 90% of the way back to the server.
        _, _, prox = self._delta(mu=9.0)
        _, _, plain = self._delta(mu=0.0)
        prox_norm, plain_norm = float(tree.l2_norm(prox)), float(tree.l2_norm(plain))
        self.assertTrue(np.isfinite(prox_norm), f"FedProx delta is not finite: {prox}")
        self.assertGreater(plain_norm, 0.1)
        self.assertLess(prox_norm, 0.2 * plain_norm)

    def test_two_steps_by_hand(self):
        # Step 1 starts at the server params, where the proximal gradient mu (w - w0) is 0;
        # step 2 adds mu (w1 - w0) to the data gradient.
        mu, lr = 2.0, 0.1
        params, data, delta = self._delta(mu=mu, steps=2)
        x = np.asarray(data["inputs"]["tabular"], np.float64)
        y = np.asarray(data["labels"]["y"], np.float64)
        w0 = np.asarray(params["heads"]["y"]["kernel"][:, 0], np.float64)
        b0 = float(params["heads"]["y"]["bias"][0])
        dw, db = _mse_grad(w0, b0, x, y)
        w1, b1 = w0 - lr * dw, b0 - lr * db
        dw, db = _mse_grad(w1, b1, x, y)
        w2, b2 = w1 - lr * (dw + mu * (w1 - w0)), b1 - lr * (db + mu * (b1 - b0))
        np.testing.assert_allclose(delta["heads"]["y"]["kernel"][:, 0], w0 - w2, rtol=0, atol=1e-5)
        np.testing.assert_allclose(delta["heads"]["y"]["bias"], [b0 - b2], rtol=0, atol=1e-5)


if __name__ == "__main__":
    absltest.main()
