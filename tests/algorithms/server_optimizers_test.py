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
"""Tests for the FedOpt server optimizers (Reddi et al. Algorithm 2) and `lazy`."""

import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import selective
from fedjax_m3t.algorithms import fed_opt, local_training, server_optimizers
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import checkpoint
from tests import helpers

_ADAPTIVE = ("fedadagrad", "fedadam", "fedyogi")


def _reddi_numpy(name, params, grads, lr, b1, b2, tau):
    """Algorithm 2 of Reddi et al. (2021), transcribed in float64 numpy.

    Written in the paper's convention: Delta_t = -g_t (client - server) and
    x_{t+1} = x_t + lr m_t / (sqrt(v_t) + tau), with m_{-1} = 0, v_{-1} = tau^2.
    Returns the params after every round, and how often yogi's sign was +1 / -1.
    """
    x = {k: np.asarray(p, np.float64) for k, p in params.items()}
    m = {k: np.zeros_like(p) for k, p in x.items()}
    v = {k: np.full_like(p, tau**2) for k, p in x.items()}
    history, signs = [], []
    for g in grads:
        for k in x:
            delta = -np.asarray(g[k], np.float64)
            m[k] = b1 * m[k] + (1 - b1) * delta
            if name == "fedadagrad":
                v[k] = v[k] + delta**2
            elif name == "fedadam":
                v[k] = b2 * v[k] + (1 - b2) * delta**2
            else:
                sign = np.sign(v[k] - delta**2)
                signs.extend(sign.ravel())
                v[k] = v[k] - (1 - b2) * delta**2 * sign
            x[k] = x[k] + lr * m[k] / (np.sqrt(v[k]) + tau)
        history.append({k: p.copy() for k, p in x.items()})
    return history, (signs.count(1.0), signs.count(-1.0))


def _run(opt, params, grads):
    """Applies `opt` to `grads` round by round; returns the params after each round."""
    state = opt.init(params)
    history = []
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def _assert_bits_equal(got, want):
    """Same structure, dtypes and bytes: stricter than ==, which equates -0.0 and 0.0."""
    chex.assert_trees_all_equal_structs(got, want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        assert a.tobytes() == b.tobytes(), (a, b)


# Six rounds of pseudo-gradients on a two-leaf tree: the round scales (1.0, 0.01, ...)
# mix large and small g, so yogi's sign(v - g^2) takes both values. Six rounds at lr 1
# move no param by more than 4.4, so params stay >= 5.6 in magnitude and an rtol of
# 1e-6 is not eaten by float32 cancellation near 0.
_PARAMS = {
    "w": jnp.array([[10.0, 20.0], [-30.0, 40.0]]),
    "b": jnp.array([10.0, -15.0, 25.0]),
}
_GRADS = [
    {
        "w": jnp.array([[1.0, -2.0], [0.5, 3.0]]) * scale,
        "b": jnp.array([0.1, -1.0, 4.0]) * scale,
    }
    for scale in (1.0, 0.01, -0.5, 0.002, 2.0, -0.03)
]


class AdaptiveServerOptimizerTest(parameterized.TestCase):
    @parameterized.product(name=_ADAPTIVE, lr=(1.0, 0.1))
    def test_matches_numpy_algorithm_2_every_round(self, name, lr):
        b1, b2, tau = 0.9, 0.99, 1e-3
        got = _run(server_optimizers.server_optimizer(name, lr), _PARAMS, _GRADS)
        want, (plus, minus) = _reddi_numpy(name, _PARAMS, _GRADS, lr, b1, b2, tau)
        if name == "fedyogi":
            # Both branches of yogi's update were exercised.
            self.assertGreater(plus, 0)
            self.assertGreater(minus, 0)
        for round_got, round_want in zip(got, want, strict=True):
            for k in _PARAMS:
                np.testing.assert_allclose(round_got[k], round_want[k], rtol=1e-6, atol=0)

    def test_fedadagrad_first_step_by_hand(self):
        opt = server_optimizers.server_optimizer("fedadagrad", 0.5, b1=0.9, eps=1e-3)
        g = {"w": jnp.array([2.0, -0.5])}
        updates, state = opt.update(g, opt.init({"w": jnp.zeros(2)}))
        # m_1 = (1 - 0.9) g = [0.2, -0.05]; v_1 = tau^2 + g^2 = [4.000001, 0.250001];
        # step = -0.5 m_1 / (sqrt(v_1) + 1e-3) = [-0.1 / 2.00100025, 0.025 / 0.501001].
        np.testing.assert_allclose(state.m["w"], [0.2, -0.05], rtol=1e-6, atol=0)
        np.testing.assert_allclose(state.v["w"], [4.000001, 0.250001], rtol=1e-6, atol=0)
        np.testing.assert_allclose(
            updates["w"], [-0.04997500625, 0.0499000999999], rtol=1e-6, atol=0
        )

    def test_fedadagrad_is_not_sgd_at_3x_for_small_deltas(self):
        g = {"w": jnp.array([1e-4])}
        params = {"w": jnp.zeros(1)}
        new = server_optimizers.server_optimizer("fedadagrad", 1.0)
        new_step, _ = new.update(g, new.init(params))
        # Algorithm 2: -(0.1 * 1e-4) / (sqrt(1e-6 + 1e-8) + 1e-3) = -4.98756e-3, i.e.
        # about -lr (1 - b1) sign(g) / 2 while |g| << tau.
        np.testing.assert_allclose(new_step["w"], [-4.9875621e-3], rtol=1e-6, atol=0)
        old = optax.adagrad(1.0, eps=1e-3)
        old_step, _ = old.update(g, old.init(params))
        # The old optax.adagrad: -g / sqrt(0.1 + g^2 + 1e-3) = -3.1466e-4 = -3.15 g.
        np.testing.assert_allclose(old_step["w"], [-3.1465837e-4], rtol=1e-5, atol=0)

    def test_fedadam_has_no_bias_correction(self):
        opt = server_optimizers.server_optimizer("fedadam", 0.1)
        updates, _ = opt.update({"w": jnp.array([2.0, -1.0])}, opt.init({"w": jnp.zeros(2)}))
        # m_1 = 0.1 g, v_1 = 1e-6 + 0.01 g^2, step = -0.1 m_1 / (sqrt(v_1) + 1e-3):
        # [-0.02 / 0.2010025, 0.01 / 0.10100500]. Bias-corrected Adam would give
        # -0.1 g / (|g| + 1e-3) = [-0.09995, 0.0999].
        np.testing.assert_allclose(updates["w"], [-0.0995012500, 0.0990049999], rtol=1e-6, atol=0)

    @parameterized.parameters(*_ADAPTIVE)
    def test_bf16_params_keep_float32_moments(self, name):
        opt = server_optimizers.server_optimizer(name, 1.0)
        params = {"w": jnp.zeros(3, jnp.bfloat16)}
        g = {"w": jnp.array([1e-4, 0.5, -3.0], jnp.bfloat16)}
        updates, state = opt.update(g, opt.init(params))
        self.assertEqual(updates["w"].dtype, jnp.bfloat16)
        self.assertEqual(state.m["w"].dtype, jnp.float32)
        self.assertEqual(state.v["w"].dtype, jnp.float32)
        # The same step computed from float32 inputs, rounded once to bf16.
        want, _ = opt.update(
            {"w": g["w"].astype(jnp.float32)}, opt.init({"w": jnp.zeros(3, jnp.float32)})
        )
        np.testing.assert_array_equal(updates["w"], want["w"].astype(jnp.bfloat16))


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


def _inner(name):
    """A server optimizer by name; 'optax_adam' adds one whose state has a step count."""
    if name == "optax_adam":
        return optax.adam(0.1)
    return server_optimizers.server_optimizer(name, 0.1)


_LAZY_CASES = server_optimizers.SERVER_OPTIMIZERS + ("optax_adam",)


class LazyTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*_LAZY_CASES)
    def test_untrained_leaf_keeps_params_and_state_bits(self, name):
        inner = _inner(name)
        opt = server_optimizers.lazy(inner)
        update = self.variant(opt.update)
        params = dict(_PARAMS)
        state = opt.init(params)
        # Round 1 trains both leaves, so 'b' has a nonzero state (moments, count) to keep.
        updates, state = update(_GRADS[0], state, params, trained={"w": True, "b": True})
        params = optax.apply_updates(params, updates)
        b_params, b_state = params["b"], state.inner["b"]
        # Rounds 2-5 train 'w' only; the delta of 'b' is NaN, which must not leak.
        for g in _GRADS[1:5]:
            g = {"w": g["w"], "b": jnp.full(3, jnp.nan)}
            updates, state = update(g, state, params, trained={"w": True, "b": False})
            params = optax.apply_updates(params, updates)
        _assert_bits_equal(params["b"], b_params)
        _assert_bits_equal(state.inner["b"], b_state)
        # 'w' moved as `inner` alone on 'w' does, every round.
        w, w_state = _PARAMS["w"], inner.init(_PARAMS["w"])
        for g in _GRADS[:5]:
            step, w_state = inner.update(g["w"], w_state, w)
            w = optax.apply_updates(w, step)
        chex.assert_trees_all_close(params["w"], w, rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(state.inner["w"], w_state, rtol=1e-6, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("fedadam", "fedyogi", "fedadagrad", "fedavgm", "optax_adam")
    def test_rounds_1_and_10_of_10_equal_rounds_1_and_2(self, name):
        opt = server_optimizers.lazy(_inner(name))
        update = self.variant(opt.update)
        g1 = {"x": jnp.array([0.3, -1.0]), "y": jnp.array([2.0])}
        g2 = {"x": jnp.array([-0.7, 0.05]), "y": jnp.array([-1.0])}
        params0 = {"x": jnp.array([1.0, 2.0]), "y": jnp.array([-1.0])}

        def run(rounds):
            params, state = params0, opt.init(params0)
            for g, x_trained in rounds:
                trained = {"x": jnp.array(x_trained), "y": jnp.array(True)}
                updates, state = update(g, state, params, trained=trained)
                params = optax.apply_updates(params, updates)
            return params, state

        # Run A: 'x' trained in rounds 1 and 10 only ('y', every round, keeps it busy).
        params_a, state_a = run([(g1, True)] + [(g1, False), (g2, False)] * 4 + [(g2, True)])
        # Run B, fresh: 'x' trained in rounds 1 and 2.
        params_b, state_b = run([(g1, True), (g2, True)])
        _assert_bits_equal(params_a["x"], params_b["x"])
        _assert_bits_equal(state_a.inner["x"], state_b.inner["x"])
        self.assertFalse(np.array_equal(params_a["x"], params0["x"]))
        if name == "optax_adam":
            # Counts are per leaf: 'x' stepped twice, 'y' ten times.
            self.assertEqual(int(state_a.inner["x"][0].count), 2)
            self.assertEqual(int(state_a.inner["y"][0].count), 10)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*_LAZY_CASES)
    def test_none_leaves_pass_through(self, name):
        opt = server_optimizers.lazy(_inner(name))
        params = {"shared": jnp.array([1.0, 2.0]), "local": None, "heads": {"a": None}}
        delta = {"shared": jnp.array([0.5, 0.5]), "local": None, "heads": {"a": None}}
        trained = {"shared": jnp.array(True), "local": None, "heads": {"a": None}}
        state = opt.init(params)
        self.assertIsNone(state.inner["local"])
        self.assertIsNone(state.inner["heads"]["a"])
        updates, state = self.variant(opt.update)(delta, state, params, trained=trained)
        self.assertEqual(jax.tree.structure(updates), jax.tree.structure(delta))
        self.assertIsNone(updates["local"])
        self.assertIsNone(state.inner["heads"]["a"])
        # The step equals the inner optimizer's on the one real leaf.
        inner = _inner(name)
        want, _ = inner.update(delta["shared"], inner.init(params["shared"]), params["shared"])
        chex.assert_trees_all_close(updates["shared"], want, rtol=1e-6, atol=0)
        stepped = optax.apply_updates(params, updates)
        self.assertIsNone(stepped["local"])

    @parameterized.parameters(*_LAZY_CASES)
    def test_trained_none_and_weights_act_as_flags(self, name):
        opt = server_optimizers.lazy(_inner(name))
        state = opt.init(_PARAMS)
        every, every_state = opt.update(_GRADS[0], state, _PARAMS)
        flags, flags_state = opt.update(_GRADS[0], state, _PARAMS, trained={"w": True, "b": True})
        _assert_bits_equal((every, every_state), (flags, flags_state))
        # Weights: > 0 trains ('w', weight 3.5), 0 does not ('b').
        weighted, weighted_state = opt.update(
            _GRADS[0], state, _PARAMS, trained={"w": jnp.float32(3.5), "b": jnp.float32(0.0)}
        )
        _assert_bits_equal(weighted["w"], every["w"])
        _assert_bits_equal(weighted_state.inner["w"], every_state.inner["w"])
        _assert_bits_equal(weighted["b"], jnp.full(3, -0.0))
        _assert_bits_equal(weighted_state.inner["b"], state.inner["b"])

    def test_zero_update_keeps_signed_zero_params(self):
        opt = server_optimizers.lazy(server_optimizers.server_optimizer("fedavgm", 1.0))
        params = {"w": jnp.array([0.0, -0.0, 1.0])}
        updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params, trained={"w": False})
        # The zero update is -0.0, and p + (-0.0) == p bit for bit, -0.0 included
        # (p + 0.0 would turn -0.0 into 0.0).
        _assert_bits_equal(optax.apply_updates(params, updates), params)

    def test_one_trace_across_rounds_with_changing_flags(self):
        opt = server_optimizers.lazy(server_optimizers.server_optimizer("fedyogi", 0.1))
        update = jax.jit(chex.assert_max_traces(opt.update, n=1))
        params, state = _PARAMS, opt.init(_PARAMS)
        for r, g in enumerate(_GRADS):
            trained = {"w": jnp.array(r % 2 == 0), "b": jnp.array(r % 3 == 0)}
            updates, state = update(g, state, params, trained=trained)
            params = optax.apply_updates(params, updates)

    def test_non_scalar_trained_raises(self):
        opt = server_optimizers.lazy(server_optimizers.server_optimizer("fedadam"))
        params = {"w": jnp.zeros(2)}
        with self.assertRaisesRegex(ValueError, r"must be scalars; got shape \(2,\)"):
            opt.update(params, opt.init(params), params, trained={"w": jnp.array([True, False])})

    def test_extra_args_of_a_chain_are_ignored(self):
        # optax.chain hands every extra argument to every member that takes extra args.
        opt = optax.chain(server_optimizers.lazy(server_optimizers.server_optimizer("fedavg")))
        params = {"w": jnp.array([1.0])}
        updates, _ = opt.update(
            {"w": jnp.array([0.25])}, opt.init(params), params, trained={"w": True}, value=3.0
        )
        np.testing.assert_allclose(updates["w"], [-0.25], rtol=0, atol=0)

    @parameterized.parameters(*_LAZY_CASES)
    def test_state_round_trips_through_the_orbax_checkpointer(self, name):
        opt = server_optimizers.lazy(_inner(name))
        # A None leaf too, as FedOpt's server state has at modules that are not federated.
        params = {**_PARAMS, "local": None}
        state = opt.init(params)
        _, state = opt.update(
            {**_GRADS[0], "local": None},
            state,
            params,
            trained={"w": True, "b": False, "local": None},
        )
        with tempfile.TemporaryDirectory() as directory:
            ckpt = checkpoint.Checkpointer(directory)
            ckpt.save(1, state, {"round": 1})
            restored, _ = ckpt.restore(opt.init(params))
            ckpt.close()
        _assert_bits_equal(restored, state)


# --------------------------------------------------------------------------------------
# FedOpt's server step (fedjax_m3t/algorithms/fed_opt.py). These build full algorithms
# and call `fed_opt` internals (server_apply, selective.Aggregate, its metrics), so they
# follow fed_opt's API, not this module's: adapt them with fed_opt.
# --------------------------------------------------------------------------------------

_KEY = jax.random.key(0)  # server_apply's key; FedOpt's server step does not use it.


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


class FedOptServerStepTest(parameterized.TestCase):
    @parameterized.parameters(1.0, 0.5)
    def test_fedavg_applies_minus_lr_delta(self, lr):
        algorithm, params = _algorithm("fedavg", lr)
        state, metrics = algorithm.server_apply(algorithm.init(params), _aggregate(0.5, -2.0), _KEY)
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
        state, _ = algorithm.server_apply(state, _aggregate(1.0, 0.0), _KEY)
        state, _ = algorithm.server_apply(state, _aggregate(0.5, 0.0), _KEY)
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
        state, _ = algorithm.server_apply(algorithm.init(params), _aggregate(2.0, -1.0), _KEY)
        # Reddi et al. Algorithm 2, no bias correction: m_1 = 0.1 d, v_1 = 1e-6 + 0.01 d^2,
        # step = -0.1 m_1 / (sqrt(v_1) + 1e-3): -0.0995012 on head a (d = 2),
        # +0.0990050 on head b (d = -1).
        np.testing.assert_allclose(
            state.params["heads"]["a"]["bias"], [3.0 - 0.0995012500], rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(
            state.params["heads"]["b"]["bias"], [0.0 + 0.0990049999], rtol=0, atol=1e-6
        )

    def test_untrained_module_is_unchanged_under_fedadam_momentum(self):
        algorithm, params = _algorithm("fedadam", 0.1)
        state = algorithm.init(params)
        # Two rounds train both heads: Adam builds first and second moments for head b.
        for _ in range(2):
            state, _ = algorithm.server_apply(state, _aggregate(1.0, 1.0), _KEY)
        before = state.params["heads"]["b"]
        # Now nobody trains head b (weight 0, delta 0): its momentum alone would move it.
        state, metrics = algorithm.server_apply(state, _aggregate(1.0, 0.0, weight_b=0.0), _KEY)
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
        state, _ = algorithm.server_apply(algorithm.init(params), aggregate, _KEY)
        np.testing.assert_array_equal(
            state.params["heads"]["b"]["kernel"], params["heads"]["b"]["kernel"]
        )
        np.testing.assert_allclose(state.params["heads"]["a"]["bias"], [2.5], rtol=0, atol=1e-6)


if __name__ == "__main__":
    absltest.main()
