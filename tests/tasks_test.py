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
"""Tests for the per-task masked losses, worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t import tasks
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.models import linear
from tests import helpers

BINARY = spec_lib.TaskSpec(name="pass", kind="binary")
REGRESSION = spec_lib.TaskSpec(name="score", kind="regression")
MULTICLASS = spec_lib.TaskSpec(name="outcome", kind="multiclass", num_classes=3)
TASKS = (BINARY, REGRESSION, MULTICLASS)


def _batch():
    """3 real examples; each task has its own labelled subset.

    pass:    logits [0, 2, 5],  labels [1, 0, -], labelled [T, T, F]
    score:   values [1, 2, 3],  labels [0, 4, 3], labelled [T, T, T]
    outcome: logits [[0, 0, 0], [ln 2, 0, 0], [9, 9, 9]], labels [2, 0, -], labelled [T, T, F]
    """
    predictions = {
        "pass": jnp.array([0.0, 2.0, 5.0]),
        "score": jnp.array([1.0, 2.0, 3.0]),
        "outcome": jnp.array([[0.0, 0.0, 0.0], [np.log(2.0), 0.0, 0.0], [9.0, 9.0, 9.0]]),
    }
    examples = {
        "labels": {
            "pass": jnp.array([1.0, 0.0, 1.0]),
            "score": jnp.array([0.0, 4.0, 3.0]),
            "outcome": jnp.array([2, 0, 1], jnp.int32),
        },
        "label_mask": {
            "pass": jnp.array([True, True, False]),
            "score": jnp.array([True, True, True]),
            "outcome": jnp.array([True, True, False]),
        },
        "mask": jnp.array([True, True, True]),
    }
    return predictions, examples


# BCE = -[y log s(z) + (1 - y) log(1 - s(z))]: z=0, y=1 -> log 2; z=2, y=0 -> log(1 + e^2).
EXPECTED_PASS = (np.log(2.0) + np.log1p(np.exp(2.0))) / 2
# MSE (no 1/2): ((1 - 0)^2 + (2 - 4)^2 + (3 - 3)^2) / 3 = 5 / 3.
EXPECTED_SCORE = 5.0 / 3.0
# CE = -log softmax[label]: uniform logits, label 2 -> log 3; [ln 2, 0, 0], label 0 -> p = 2/4,
# so log 2. Mean (log 3 + log 2) / 2 = log(6) / 2.
EXPECTED_OUTCOME = np.log(6.0) / 2


def _pad(predictions, examples, rows: int):
    """Appends `rows` padding rows (mask False) full of huge, out-of-range garbage."""
    garbage = {
        "pass": jnp.full((rows,), 1e30),
        "score": jnp.full((rows,), -1e30),
        "outcome": jnp.full((rows, 3), 1e30),
    }
    labels = {
        "pass": jnp.full((rows,), 1e30),
        "score": jnp.full((rows,), 1e30),
        "outcome": jnp.full((rows,), 99, jnp.int32),  # No such class.
    }
    cat = lambda a, b: jnp.concatenate([a, b])
    predictions = jax.tree.map(cat, predictions, garbage)
    examples = {
        "labels": jax.tree.map(cat, examples["labels"], labels),
        "label_mask": {  # The padding rows even claim to be labelled.
            k: cat(v, jnp.ones((rows,), bool)) for k, v in examples["label_mask"].items()
        },
        "mask": cat(examples["mask"], jnp.zeros((rows,), bool)),
    }
    return predictions, examples


class TaskLossesTest(absltest.TestCase):
    def test_per_kind_masked_means_by_hand(self):
        predictions, examples = _batch()
        total, per_task = jax.jit(tasks.task_losses, static_argnums=0)(TASKS, predictions, examples)
        np.testing.assert_allclose(per_task["pass"], EXPECTED_PASS, rtol=1e-6, atol=0)
        np.testing.assert_allclose(per_task["score"], EXPECTED_SCORE, rtol=1e-6, atol=0)
        np.testing.assert_allclose(per_task["outcome"], EXPECTED_OUTCOME, rtol=1e-6, atol=0)
        np.testing.assert_allclose(
            total, EXPECTED_PASS + EXPECTED_SCORE + EXPECTED_OUTCOME, rtol=1e-6, atol=0
        )

    def test_per_example_loss_by_hand(self):
        # Unmasked per-example values of the three kinds.
        np.testing.assert_allclose(
            tasks.per_example_loss(BINARY, jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0])),
            [np.log(2.0), np.log1p(np.exp(2.0))],
            rtol=1e-6,
            atol=0,
        )
        np.testing.assert_allclose(
            tasks.per_example_loss(REGRESSION, jnp.array([1.0, -1.0]), jnp.array([3.0, 0.0])),
            [4.0, 1.0],
            rtol=1e-6,
            atol=0,
        )
        np.testing.assert_allclose(
            tasks.per_example_loss(MULTICLASS, jnp.zeros((1, 3)), jnp.array([1])),
            [np.log(3.0)],
            rtol=1e-6,
            atol=0,
        )

    def test_unlabelled_task_contributes_zero_and_no_gradient(self):
        predictions, examples = _batch()
        examples["label_mask"]["score"] = jnp.zeros((3,), bool)

        def total(predictions):
            return tasks.task_losses(TASKS, predictions, examples)[0]

        value, per_task = jax.jit(tasks.task_losses, static_argnums=0)(TASKS, predictions, examples)
        self.assertEqual(float(per_task["score"]), 0.0)
        np.testing.assert_allclose(value, EXPECTED_PASS + EXPECTED_OUTCOME, rtol=1e-6, atol=0)
        grads = jax.jit(jax.grad(total))(predictions)
        np.testing.assert_array_equal(grads["score"], np.zeros(3))
        # Unlabelled rows of the other tasks get no gradient either.
        np.testing.assert_array_equal(grads["pass"][2], 0.0)
        np.testing.assert_array_equal(grads["outcome"][2], np.zeros(3))
        # d(mean BCE)/dz = (sigmoid(z) - y) / 2 over the 2 labelled rows.
        sig = lambda z: 1 / (1 + np.exp(-z))
        np.testing.assert_allclose(
            grads["pass"][:2], [(0.5 - 1) / 2, sig(2.0) / 2], rtol=1e-6, atol=0
        )

    def test_unlabelled_head_of_linear_model_gets_zero_gradient(self):
        spec = helpers.tabular_spec((("a", "regression"), ("b", "regression")))
        model = linear.build_linear_model(spec)
        batch = jax.tree.map(
            jnp.asarray,
            helpers.client(
                [[1.0, 2.0], [3.0, -1.0]],
                {"a": [1.0, 2.0], "b": [5.0, 6.0]},
                label_mask={"b": [False, False]},
            ),
        )
        params = jax.tree.map(lambda x: x + 0.5, model.init(jax.random.key(0)))

        def loss(params):
            return tasks.task_losses(spec.tasks, model.apply(params, batch), batch)[0]

        grads = jax.jit(jax.grad(loss))(params)
        for leaf in jax.tree.leaves(grads["heads"]["b"]):
            np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
        # Head a: predictions 0.5 * (x1 + x2) + 0.5 = [2, 1.5], residuals [1, -0.5];
        # d(mean sq)/d bias = 2 * mean(residual) = 0.5.
        np.testing.assert_allclose(grads["heads"]["a"]["bias"], [0.5], rtol=1e-6, atol=0)

    def test_padding_rows_with_garbage_change_nothing(self):
        predictions, examples = _batch()

        losses = jax.jit(lambda p, e: tasks.task_losses(TASKS, p, e))

        want, want_per_task = losses(predictions, examples)
        padded_predictions, padded_examples = _pad(predictions, examples, rows=4)
        got, got_per_task = losses(padded_predictions, padded_examples)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
        for name in want_per_task:
            np.testing.assert_allclose(got_per_task[name], want_per_task[name], rtol=1e-6, atol=0)
        # The gradient is finite, unchanged on real rows and zero on padding rows.
        grad = jax.jit(jax.grad(lambda p, e: losses(p, e)[0]))
        want_grads = grad(predictions, examples)
        got_grads = grad(padded_predictions, padded_examples)
        for name in want_grads:
            np.testing.assert_allclose(got_grads[name][:3], want_grads[name], rtol=1e-6, atol=0)
            np.testing.assert_array_equal(got_grads[name][3:], np.zeros_like(got_grads[name][3:]))

    def test_no_real_example_gives_zero(self):
        predictions, examples = _batch()
        examples["mask"] = jnp.zeros((3,), bool)
        total, per_task = tasks.task_losses(TASKS, predictions, examples)
        self.assertEqual(float(total), 0.0)
        self.assertEqual({k: float(v) for k, v in per_task.items()}, dict.fromkeys(per_task, 0.0))


if __name__ == "__main__":
    absltest.main()
