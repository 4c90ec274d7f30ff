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
"""TAP: stage-1 replacement against hand-computed losses, its counts, stage 2, the server."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import absltest

from fedjax_m3t import tree
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import fine_tune, registry, tap
from tests import helpers
from tests.personalization import fixtures

# Features all 0, so a prediction is body . x + head = the head: loss_a(h) = h^2
# (labels 0), loss_b(h) = (h - 1)^2 (labels 1); the body only moves by replacement.
_SPEC = helpers.tabular_spec((("a", "regression"), ("b", "regression")), num_features=2)
_DATA = helpers.client(np.zeros((4, 2)), {"a": [0.0] * 4, "b": [1.0] * 4})


def _linear():
    init = lambda key: {
        "body": {"w": jnp.zeros(2)},
        "heads": {"a": jnp.zeros(()), "b": jnp.zeros(())},
    }

    def predict(p, inputs):
        z = inputs["tabular"] @ p["body"]["w"]
        return {"a": z + p["heads"]["a"], "b": z + p["heads"]["b"]}

    return interface.plain_model(_SPEC, init, predict)


def _params(w, a, b):
    return {"body": {"w": jnp.full(2, w)}, "heads": {"a": jnp.float32(a), "b": jnp.float32(b)}}


_FULL = local_training.LocalTrainingConfig(local_steps=2, batch_size=None)


def _tap(model, lr=0.0, local=_FULL, **config):
    return tap.tap(
        model,
        client_optimizer=optax.sgd(lr),
        server_optimizer=optax.sgd(1.0),
        local=local,
        config=tap.TAPConfig(**config),
    )


class ReplacementTest(absltest.TestCase):
    def test_worse_by_more_than_the_margin_replaces_better_keeps(self):
        model = _linear()
        mask = jax.tree.map(lambda _: True, _params(0, 0, 0))
        regular = _params(1.0, 0.0, 0.0)  # loss_a 0, loss_b 1
        for head_a, margins, want_a in [
            (0.11, {"a": 0.01, "b": 0.01}, True),  # 0.0121 > 0 + 0.01
            (0.09, {"a": 0.01, "b": 0.01}, False),  # 0.0081 < 0.01: worse within the margin
            (0.09, {"a": 0.005, "b": 0.01}, True),  # the smaller margin: 0.0081 > 0.005
        ]:
            personal = _params(2.0, head_a, 0.5)  # loss_b 0.25 < 1: better, kept
            new, replaced, _ = tap.replace(model, regular, personal, _DATA, mask, margins)
            self.assertEqual(bool(replaced["a"]), want_a)
            self.assertFalse(bool(replaced["b"]))
            np.testing.assert_allclose(new["heads"]["a"], 0.0 if want_a else head_a)
            np.testing.assert_allclose(new["heads"]["b"], 0.5)  # b's head never copied
            # The body is used by task a: copied with it.
            np.testing.assert_allclose(new["body"]["w"], [1.0, 1.0] if want_a else [2.0, 2.0])

    def test_counts_equal_a_hand_count(self):
        """Two rounds, SGD lr 0 (models move only by replacement).

        Round 1: received (w 1, a 0, b 0), personal (w 2, a 0.11, b 0.5):
          a: 0 + 0.01 < 0.0121 replaced; b: 1 + 0.01 < 0.25 no.  -> (w 1, a 0, b 0.5)
        Round 2: received (w 3, a 0.05, b 1):
          a: 0.0025 + 0.01 < 0 no; b: 0 + 0.01 < 0.25 replaced.   -> (w 3, a 0, b 1)
        Counts: a 1, b 1; body/w 2, heads/a 1, heads/b 1.
        """
        model = _linear()
        algorithm = _tap(model)
        state = algorithm.init_client_state(_params(2.0, 0.11, 0.5))
        context = base.make_context(jax.random.key(0))
        flags = []
        for received in (_params(1.0, 0.0, 0.0), _params(3.0, 0.05, 1.0)):
            output = jax.jit(algorithm.client_update)(received, state, _DATA, context)
            state = output.client_state
            flags.append((float(output.metrics["replaced/a"]), float(output.metrics["replaced/b"])))
        self.assertEqual(flags, [(1.0, 0.0), (0.0, 1.0)])
        counts = jax.tree.map(int, state.replacements)
        self.assertEqual(
            counts,
            {"tasks": {"a": 1, "b": 1}, "modules": {"body/w": 2, "heads/a": 1, "heads/b": 1}},
        )
        jax.tree.map(
            np.testing.assert_allclose, state.personal, _params(3.0, 0.0, 1.0), is_leaf=None
        )

    def test_components_on_the_m3t_model(self):
        """Task a's components: its head, the backbone, the adapters, the encoders it reads."""
        params = fixtures.init_params()
        mask = jax.tree.map(lambda _: True, params)
        data = fixtures.take(fixtures.federation().train, 0)
        flags = lambda d: {
            p: bool(f)
            for p, f in zip(
                tree.leaf_paths(params),
                jax.tree.leaves(tap.task_components(fixtures.model(), d, "a", mask)),
                strict=True,
            )
        }
        used = flags(data)
        for path, flag in used.items():
            self.assertEqual(flag, not path.startswith("heads/b"), path)
        self.assertTrue(any(p.startswith("adapters/lora") for p in used))
        # Without the tabular modality on a's examples its encoder is not a's component.
        absent = {**data, "present": {"tabular": np.zeros_like(data["present"]["tabular"])}}
        for path, flag in flags(absent).items():
            want = not (path.startswith("heads/b") or path.startswith("encoders/tabular"))
            self.assertEqual(flag, want, path)

    def test_no_replacement_flag(self):
        model = _linear()
        algorithm = _tap(model, replacement=False)
        state = algorithm.init_client_state(_params(2.0, 0.11, 0.5))
        output = algorithm.client_update(
            _params(1.0, 0.0, 0.0), state, _DATA, base.make_context(jax.random.key(0))
        )
        self.assertEqual(sum(map(int, jax.tree.leaves(output.client_state.replacements))), 0)
        np.testing.assert_allclose(output.client_state.personal["heads"]["a"], 0.11)


class DistillationTest(absltest.TestCase):
    def test_kl_and_mse_values(self):
        spec = helpers.tabular_spec((("c", "multiclass"), ("r", "regression")), num_classes=2)
        model = interface.plain_model(spec, lambda key: {}, lambda p, x: {})
        batch = {
            "mask": np.ones(1, bool),
            "label_mask": {"c": np.ones(1, bool), "r": np.ones(1, bool)},
        }
        teacher = {"c": jnp.zeros((1, 2)), "r": jnp.array([1.0])}
        student = {"c": jnp.array([[np.log(3.0), 0.0]]), "r": jnp.array([3.0])}
        # KL([.5, .5] || [.75, .25]) = 0.5 ln(4/3); MSE (3 - 1)^2 = 4.
        value = tap.distillation(model, {"c": 2.0, "r": 0.5}, 1.0)(student, teacher, batch)
        np.testing.assert_allclose(value, 2.0 * 0.5 * np.log(4 / 3) + 0.5 * 4.0, rtol=1e-6)
        # T = 2 (the T^2 factor): 4 * KL([.5, .5] || softmax([ln 3 / 2, 0])).
        q = np.array([np.sqrt(3.0), 1.0]) / (np.sqrt(3.0) + 1.0)
        kl = 0.5 * np.log(0.5 / q[0]) + 0.5 * np.log(0.5 / q[1])
        value = tap.distillation(model, {"c": 1.0, "r": 0.0}, 2.0)(student, teacher, batch)
        np.testing.assert_allclose(value, 4.0 * kl, rtol=1e-5)

    def test_weight_zero_is_plain_fine_tuning(self):
        model = _linear()
        rng = np.random.default_rng(0)
        x = rng.normal(size=(6, 2))
        data = helpers.client(x, {"a": x @ [1.0, -1.0], "b": x @ [0.5, 2.0] + 1.0})
        local = local_training.LocalTrainingConfig(local_steps=2, batch_size=3)
        received = _params(0.0, 0.0, 0.0)
        personal = _params(0.3, 0.3, 0.3)  # Away from the teacher, so its pull would move it.
        context = base.make_context(jax.random.key(7), 1)

        def adapted(weight):
            algorithm = _tap(model, lr=0.1, local=local, distill_weight=weight, steps=3)
            state = algorithm.init_client_state(personal)
            return algorithm, state, algorithm.adapt(received, state, data, context)

        algorithm, state, zero = adapted(0.0)
        plain = fine_tune.fine_tuning(model, algorithm, optax.sgd(0.1), local, 3)
        expected = plain(received, state, data, context)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), zero, expected)
        moved = tree.l2_norm(jax.tree.map(jnp.subtract, expected, personal))
        self.assertGreater(float(moved), 0.05)  # Fine-tuning did train.
        _, _, strong = adapted(1.0)
        gap = tree.l2_norm(jax.tree.map(jnp.subtract, strong, expected))
        self.assertGreater(float(gap), 1e-3)  # A nonzero weight changes the student.


class EngineTest(absltest.TestCase):
    @pytest.mark.slow  # Two 2-round runs (FedAvg's is cached across tests).
    def test_server_is_fedavg_and_counts_add_up(self):
        result = fixtures.run(fixtures.build("tap", personal=_personal(steps=0)))
        fedavg = fixtures.fedavg_result()
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
            fixtures.host(result.server_state.params),
            fixtures.host(fedavg.server_state.params),
        )
        counts = fixtures.host(result.client_states.replacements)
        for name in ("a", "b"):
            per_client = counts["tasks"][name]
            self.assertTrue(np.all((per_client >= 0) & (per_client <= 2)))
            # A task's replacement copies its head, and only it does.
            np.testing.assert_array_equal(counts["modules"][f"heads/{name}"], per_client)


def _personal(steps):
    return dataclasses.replace(registry.PersonalConfig(), fine_tune_steps=steps)


if __name__ == "__main__":
    absltest.main()
