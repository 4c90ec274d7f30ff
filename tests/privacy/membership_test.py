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
"""Tests of the membership-inference audit: ROC numbers by hand, LiRA, DP vs no DP."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import seeding
from fedjax_m3t.algorithms import fed_opt, local_training
from fedjax_m3t.models import linear
from fedjax_m3t.privacy import dp_sgd, membership
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

# Hand-checked: members score 0.9, 0.8, 0.6; non-members 0.7, 0.55, 0.4.
LABELS = np.array([1, 1, 0, 1, 0, 0], bool)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4])


class MetricsTest(absltest.TestCase):
    def test_roc_by_hand(self):
        fpr, tpr = membership.roc_curve(LABELS, SCORES)
        # Thresholds 0.9, 0.8, 0.7, 0.6, 0.55, 0.4 in turn.
        np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
        np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
        result = membership.evaluate(LABELS, SCORES)
        # 8 of the 9 (member, non-member) pairs are ordered right (0.6 < 0.7).
        self.assertAlmostEqual(result.auc, 8 / 9, places=12)
        self.assertAlmostEqual(result.tpr[1e-2], 2 / 3, places=12)  # Only FPR 0 allowed.
        self.assertAlmostEqual(result.tpr[1e-3], 2 / 3, places=12)
        self.assertAlmostEqual(membership.tpr_at_fpr(LABELS, SCORES, 0.34), 1.0, places=12)
        self.assertEqual(result.count, (3, 3))

    def test_ties_share_a_threshold(self):
        fpr, tpr = membership.roc_curve([1, 0, 1, 0], [1.0, 1.0, 0.5, 0.2])
        np.testing.assert_allclose(fpr, [0, 0.5, 0.5, 1])
        np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
        # Member 1.0 ties one non-member (1/2) and beats one; member 0.5 beats one: 2.5 / 4.
        self.assertAlmostEqual(membership.evaluate([1, 0, 1, 0], [1.0, 1.0, 0.5, 0.2]).auc, 0.625)

    def test_logit_confidence(self):
        p = np.array([0.5, 0.9, 0.01])
        np.testing.assert_allclose(
            membership.logit_confidence(-np.log(p)), np.log(p / (1 - p)), rtol=1e-10
        )

    def test_offline_lira_by_hand(self):
        ref_phi = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]])  # mu (1, 2), var (1, 3).
        losses = lambda phi: -np.log(1 / (1 + np.exp(-phi)))  # Inverse of logit_confidence.
        scores = membership.offline_lira_scores(losses(np.array([3.0, 2.0])), losses(ref_phi))
        np.testing.assert_allclose(scores, [2.0, 0.0], atol=1e-5)  # (3 - 1) / 1, (2 - 2) / 3^.5.
        pooled = membership.offline_lira_scores(
            losses(np.array([3.0, 2.0])), losses(ref_phi), global_variance=True
        )
        np.testing.assert_allclose(pooled, [2 / 2**0.5, 0.0], atol=1e-5)  # sigma^2 = (1 + 3) / 2.
        with self.assertRaisesRegex(ValueError, "R >= 2"):
            membership.offline_lira_scores(np.zeros(2), np.zeros((1, 2)))

    def test_user_scores_and_audit_rows(self):
        labels, scores = membership.user_scores(
            np.array([1.0, 3.0, 0.0, 1.0, 5.0]),
            np.array([7, 7, 2, 2, 9]),
            np.array([1, 1, 0, 0, 1], bool),
        )
        np.testing.assert_array_equal(labels, [False, True, True])  # Users 2, 7, 9.
        np.testing.assert_allclose(scores, [0.5, 2.0, 5.0])
        with self.assertRaisesRegex(ValueError, "both member and non-member"):
            membership.user_scores(np.zeros(2), np.array([1, 1]), np.array([1, 0], bool))
        rows = membership.audit(
            LABELS,
            -np.log(SCORES),
            np.stack([-np.log(SCORES) + 0.1, -np.log(SCORES)]),
            users=np.arange(6),
        )
        self.assertEqual(sorted(rows), ["lira/example", "lira/user", "loss/example", "loss/user"])
        # -loss = log(score) is monotone in the score: the same ROC.
        self.assertAlmostEqual(rows["loss/example"].auc, 8 / 9, places=12)


# The DP-vs-no-DP setting: logistic regression on 64 features with random labels
# (only memorisation helps), 4 schools of 16 students, FedAvg 40 rounds of 4 SGD
# steps (batch 8, lr 1) with every school; DP: student-level DP-SGD, C = 0.2, z = 4.
# Non-members: 4 more schools from the same distribution. 4 offline reference
# models, each trained the same way on 4 fresh schools. Seeds fixed throughout.
F, SCHOOLS, STUDENTS, ROUNDS, REFERENCES = 64, 4, 16, 40, 4


def _schools(seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(SCHOOLS):
        y = (rng.uniform(size=STUDENTS) < 0.5).astype(np.float32)
        out.append(helpers.client(rng.normal(size=(STUDENTS, F)), {"y": y}))
    return helpers.stack(out)


@functools.cache
def _audit(private: bool):
    spec = helpers.tabular_spec((("y", "binary"),), num_features=F)
    model = linear.build_linear_model(spec)
    gradient = dp_sgd.dp_sgd_gradient(clip=0.2, noise_multiplier=4.0) if private else None
    algorithm = fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(1.0),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=4, batch_size=8),
        gradient=gradient or local_training.batch_gradient,
    )
    round_fn = round_lib.build_round(
        algorithm, num_clients=SCHOOLS, cohort_size=SCHOOLS, chunk_size=SCHOOLS
    )
    losses = jax.jit(lambda p, ex: membership.example_losses(model, p, ex))

    def train(data, seed):
        state = algorithm.init(model.init(seeding.params_key(0)))
        one = algorithm.init_client_state(state.params)
        states = jax.tree.map(lambda x: jnp.broadcast_to(x, (SCHOOLS,) + x.shape), one)
        for _ in range(ROUNDS):
            state, states, _ = round_fn(state, states, data, jax.random.key(seed))
        return state.params

    flat = lambda d: jax.tree.map(lambda x: jnp.asarray(x.reshape((-1,) + x.shape[2:])), d)
    target, outside = _schools(0), _schools(1)
    examples = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), flat(target), flat(outside))
    members = np.r_[np.ones(SCHOOLS * STUDENTS, bool), np.zeros(SCHOOLS * STUDENTS, bool)]
    target_losses = np.asarray(losses(train(target, 1), examples))
    reference = [losses(train(_schools(100 + r), 2 + r), examples) for r in range(REFERENCES)]
    users = np.repeat(np.arange(2 * SCHOOLS), STUDENTS)
    return membership.audit(
        members, target_losses, np.stack(reference), users, global_variance=True
    )


class DpAuditTest(absltest.TestCase):
    def test_dp_brings_the_example_level_auc_towards_one_half(self):
        plain, private = _audit(False), _audit(True)
        print("no DP\n" + membership.format_table(plain))
        print("DP-SGD C=0.2 z=4\n" + membership.format_table(private))
        for attack in ("loss/example", "lira/example"):
            self.assertGreater(plain[attack].auc, 0.62)  # The audit sees memorisation,
            self.assertLess(abs(private[attack].auc - 0.5), abs(plain[attack].auc - 0.5) - 0.05)


if __name__ == "__main__":
    absltest.main()
