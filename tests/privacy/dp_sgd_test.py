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
"""Tests of student-level DP-SGD in the client update, on the M3T model."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest
from scipy import stats

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tasks, tree
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.models import linear
from fedjax_m3t.privacy import dp_sgd
from tests import helpers
from tests.privacy import fixtures


def _setup():
    federation, model = fixtures.small_m3t()
    params = model.init(jax.random.key(0))
    examples = jax.tree.map(jnp.asarray, helpers.take(federation.train, 0))
    return federation, model, params, examples


def _objective(model, examples):
    scale = tasks.own_task_scale(model.spec.tasks, examples)

    def objective(params, batch, key):
        predictions = model.apply(params, batch, rng=key, train=True)
        return tasks.scaled_loss(model.spec.tasks, predictions, batch, scale)

    return objective


class DpSgdTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.federation, cls.model, cls.params, cls.examples = _setup()

    def test_per_example_clipped_norms_at_most_clip(self):
        objective = _objective(self.model, self.examples)

        @jax.jit
        def run(params, examples, clip):
            _, _, grads = dp_sgd.per_example_gradients(
                objective, params, examples, jax.random.key(1)
            )
            clipped, norms = dp_sgd.clip_per_example(grads, examples["mask"], clip)
            _, clipped_norms = dp_sgd.clip_per_example(clipped, examples["mask"], jnp.inf)
            n = jnp.sum(examples["mask"])
            mean = jax.tree.map(lambda g: jnp.sum(g, 0) / n, grads)
            batch = jax.grad(lambda p: objective(p, examples, jax.random.key(1))[0])(params)
            return norms, clipped_norms, mean, batch

        norms = run(self.params, self.examples, jnp.inf)[0]
        clip = float(np.median(np.asarray(norms)[np.asarray(self.examples["mask"])]))
        norms, clipped_norms, mean, batch = run(self.params, self.examples, clip)
        self.assertGreater(int(jnp.sum(norms > clip)), 0)  # Some students are clipped,
        np.testing.assert_array_less(np.asarray(clipped_norms), clip * (1 + 1e-5))
        # and the unclipped ones keep their gradients exactly.
        small = np.asarray(norms <= clip)
        self.assertGreater(int(small.sum()), 0)
        np.testing.assert_allclose(np.asarray(clipped_norms)[small], np.asarray(norms)[small])
        # The per-example gradients average to the batch gradient (missing modalities
        # included: an absent encoder gets 0 from that student).
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), mean, batch
        )

    def test_zero_noise_infinite_clip_is_plain_local_sgd(self):
        policy = policy_lib.resolve(policy_lib.ModulePolicy(), self.params)
        config = local_training.LocalTrainingConfig(local_steps=2, batch_size=8)
        context = base.make_context(jax.random.key(3), client_id=0)
        make = lambda **kw: local_training.make_client_update(
            self.model, policy, optax.sgd(0.5), config, **kw
        )
        state = tree.select(policy.local, self.params)
        plain = jax.jit(make())(self.params, state, self.examples, context)
        private = jax.jit(
            make(gradient=dp_sgd.dp_sgd_gradient(clip=jnp.inf, noise_multiplier=0.0))
        )(self.params, state, self.examples, context)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            plain.delta,
            private.delta,
        )
        self.assertGreater(float(jnp.abs(plain.delta["backbone"]["cls"]).max()), 1e-4)
        np.testing.assert_allclose(plain.metrics["loss"], private.metrics["loss"], rtol=1e-6)

    def test_padding_examples_contribute_exactly_zero(self):
        # A linear model keeps this one cheap: padding is handled before the model matters.
        model = linear.build_linear_model(helpers.tabular_spec(num_features=3))
        params = model.init(jax.random.key(0))
        examples = helpers.linear_client(np.random.default_rng(0), 10, num_features=3)
        examples = jax.tree.map(jnp.asarray, examples)
        objective = _objective(model, examples)
        gradient = dp_sgd.dp_sgd_gradient(clip=0.3, noise_multiplier=1.0)
        context = local_training.LossContext(jax.random.key(0), params, {}, jnp.int32(0))
        padded = jax.tree.map(lambda x: jnp.concatenate([x, x[:4]]), examples)
        mask = jnp.arange(padded["mask"].shape[0]) < examples["mask"].shape[0]
        garbage = {**padded, "mask": padded["mask"] & mask}
        garbage["inputs"] = {
            **garbage["inputs"],
            "tabular": jnp.where(mask[:, None], garbage["inputs"]["tabular"], jnp.nan),
        }
        step = jax.jit(
            lambda batch: gradient(objective, params, batch, jax.random.key(5), context)[1]
        )
        out = step(garbage)
        # The same data with 4 padding rows of zeros: only the denominator B is shared.
        zeros = jax.tree.map(lambda x: jnp.where(_rows(mask, x), x, jnp.zeros_like(x)), padded)
        ref = step({**zeros, "mask": garbage["mask"]})
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), out, ref)
        self.assertTrue(all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(out)))

    def test_noise_has_std_z_clip_over_batch_slots(self):
        # A constant objective: every per-example gradient is 0, so the output is
        # noise / B, with noise ~ N(0, (z C)^2) per coordinate.
        params = {"w": jnp.zeros((20_000,))}
        objective = lambda p, batch, key: (0.0 * jnp.sum(p["w"]), {})
        batch = {"mask": jnp.ones((16,), bool)}
        z, clip = 1.3, 0.7
        gradient = dp_sgd.dp_sgd_gradient(clip=clip, noise_multiplier=z)
        context = local_training.LossContext(jax.random.key(0), params, {}, jnp.int32(0))
        out = gradient(objective, params, batch, jax.random.key(11), context)[1]["w"]
        standardised = np.asarray(out) * 16 / (z * clip)
        self.assertGreater(stats.kstest(standardised, "norm").pvalue, 0.01)
        # The test has power: a 5% error in the std is rejected.
        self.assertLess(stats.kstest(standardised / 1.05, "norm").pvalue, 1e-3)
        other = gradient(objective, params, batch, jax.random.key(12), context)[1]["w"]
        self.assertFalse(np.allclose(out, other))

    def test_per_client_parameters_by_client_id(self):
        params = {"w": jnp.zeros((4_000,))}
        objective = lambda p, batch, key: (0.0 * jnp.sum(p["w"]), {})
        batch = {"mask": jnp.ones((4,), bool)}
        gradient = dp_sgd.dp_sgd_gradient(
            clip=jnp.array([1.0, 2.0]), noise_multiplier=jnp.array([0.0, 1.0])
        )
        stds = []
        for client in (0, 1):
            context = local_training.LossContext(jax.random.key(0), params, {}, jnp.int32(client))
            out = gradient(objective, params, batch, jax.random.key(1), context)[1]["w"]
            stds.append(float(jnp.std(out)) * 4)
        self.assertEqual(stds[0], 0.0)
        np.testing.assert_allclose(stds[1], 2.0, rtol=0.05)  # z * C_1 = 2, 4000 draws.

    def test_student_epsilon_composes_the_rounds_taken(self):
        kwargs = dict(
            noise_multiplier=1.1, batch_size=8, num_examples=160, local_steps=5, delta=1e-5
        )
        eps = dp_sgd.student_epsilon(fixtures.rdp_dp_sgd_epsilon, rounds=3, **kwargs)
        ref = fixtures.rdp_dp_sgd_epsilon(1.1, sampling_rate=0.05, steps=15, delta=1e-5)
        self.assertAlmostEqual(eps, ref, places=10)
        self.assertEqual(dp_sgd.student_epsilon(fixtures.rdp_dp_sgd_epsilon, rounds=0, **kwargs), 0)
        more = dp_sgd.student_epsilon(fixtures.rdp_dp_sgd_epsilon, rounds=6, **kwargs)
        self.assertGreater(more, eps)
        self.assertTrue(math.isfinite(more))

    def test_bad_parameters_raise(self):
        with self.assertRaisesRegex(ValueError, "clip must be > 0"):
            dp_sgd.dp_sgd_gradient(clip=0.0, noise_multiplier=1.0)
        with self.assertRaisesRegex(ValueError, "noise must be >= 0"):
            dp_sgd.dp_sgd_gradient(clip=1.0, noise_multiplier=-1.0)


def _rows(mask, x):
    return mask.reshape((-1,) + (1,) * (x.ndim - 1))


if __name__ == "__main__":
    absltest.main()
