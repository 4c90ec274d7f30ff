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
"""Attack simulator: who attacks, the update attacks (by hand and through the
sharded round) and the data attacks (label flipping, a backdoor patch)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.aggregation import coordinate_median
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.attacks import data as data_attacks
from fedjax_m3t.attacks import selection, updates
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 6


class SelectionTest(absltest.TestCase):
    def test_fraction_seed_and_nesting(self):
        a = selection.choose_attackers(10, 0.2, seed=3)
        self.assertEqual(a.sum(), 2)
        np.testing.assert_array_equal(a, selection.choose_attackers(10, 0.2, seed=3))
        bigger = selection.choose_attackers(10, 0.4, seed=3)
        self.assertEqual(bigger.sum(), 4)
        self.assertTrue(np.all(bigger[a]))  # The 20% attackers are among the 40%.
        self.assertEqual(selection.choose_attackers(10, 0.0).sum(), 0)
        with self.assertRaisesRegex(ValueError, "fraction"):
            selection.choose_attackers(10, 1.5)


def _train():
    rng = np.random.default_rng(0)
    clients = [helpers.linear_client(rng, n, ("a",)) for n in (2, 3, 4, 5, 3, 2)]
    return helpers.stack(clients, 6)


@functools.cache
def _model():
    return linear.build_linear_model(helpers.tabular_spec((("a", "regression"),)))


def _algorithm(aggregator=coordinate_median.AGGREGATOR):
    return fed_opt.fed_opt(
        _model(),
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        aggregator=aggregator,
    )


class UpdateAttackTest(parameterized.TestCase):
    @parameterized.parameters(("sign_flip", None, -1.0), ("scale", None, 10.0), ("scale", 3.0, 3.0))
    def test_client_attacks_change_only_attackers(self, attack, scale, factor):
        honest = _algorithm()
        attackers = np.array([False, True, False, False, False, False])
        attacked = updates.with_update_attack(honest, attackers, attack, scale=scale)
        params = _model().init(jax.random.key(0))
        examples = helpers.take(_train(), 1)
        update = jax.jit(attacked.client_update)
        for client, want in ((1, factor), (0, 1.0)):
            context = base.make_context(jax.random.key(5), client)
            got = update(params, honest.init_client_state(params), examples, context).delta
            ref = honest.client_update(
                params, honest.init_client_state(params), examples, context
            ).delta
            jax.tree.map(
                lambda g, r, w=want: np.testing.assert_allclose(g, w * r, rtol=1e-6, atol=1e-7),
                got,
                ref,
            )

    def test_alie_and_ipm_by_hand(self):
        # Honest rows 0-2; attackers are clients 3 and 4; slot 5 is padding (id 9).
        x = jnp.array([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0], [50.0, 50.0], [60.0, 60.0], [7.0, 7.0]])
        weight = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
        stacked = aggregation_base.StackedUpdates(
            {"w": x}, {"w": weight}, jnp.array([0, 1, 2, 3, 4, 9])
        )
        attackers = np.array([False, False, False, True, True, False])
        # mu = [2, 2], population sd = [sqrt(2/3), sqrt(8/3)]; n = 5, f = 2:
        # s = floor(5/2 + 1) - 2 = 1, z = Phi^-1(4/5) = 0.8416212.
        mu, sd, z = np.array([2.0, 2.0]), np.sqrt([2 / 3, 8 / 3]), 0.8416212
        alie = updates.collude(stacked, attackers, "alie").delta["w"]
        np.testing.assert_allclose(alie[3], mu - z * sd, rtol=1e-5)
        np.testing.assert_allclose(alie[4], mu - z * sd, rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(alie)[[0, 1, 2, 5]], np.asarray(x)[[0, 1, 2, 5]])
        ipm = updates.collude(stacked, attackers, "ipm", eps=0.5).delta["w"]
        np.testing.assert_allclose(ipm[3:5], [[-1.0, -1.0], [-1.0, -1.0]])
        np.testing.assert_allclose(float(updates.alie_z(jnp.asarray(5), 2.0)), z, rtol=1e-5)

    def test_alie_through_the_sharded_round(self):
        # Clients 1 and 4 collude (ALIE) against the median, on 2 devices; the round
        # must hand the aggregator each slot's client id.
        attackers = np.array([False, True, False, False, True, False])
        honest = _algorithm()
        attacked = updates.with_update_attack(honest, attackers, "alie")
        train = _train()
        params = _model().init(jax.random.key(1))
        one = honest.init_client_state(params)
        states = jax.tree.map(lambda x: jnp.stack([x] * NUM_CLIENTS), one)
        round_fn = round_lib.build_round(
            attacked,
            num_clients=NUM_CLIENTS,
            cohort_size=NUM_CLIENTS,
            chunk_size=1,
            mesh=round_lib.make_client_mesh(2),
        )
        got = round_fn(attacked.init(params), states, train, jax.random.key(0)).server_state.params
        # By hand: the clients' honest deltas, ALIE on the attackers' rows, the median.
        rng = jax.random.fold_in(jax.random.key(0), 0)
        clients_key = jax.random.fold_in(rng, round_lib.CLIENTS_TAG)
        scale = round_lib.cohort_task_scale(train, jnp.arange(NUM_CLIENTS), jnp.ones(NUM_CLIENTS))
        update = jax.jit(honest.client_update)
        outs = [
            update(
                params,
                one,
                helpers.take(train, c),
                base.make_context(jax.random.fold_in(clients_key, c), c, 0, 0, scale),
            )
            for c in range(NUM_CLIENTS)
        ]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
        rows = aggregation_base.StackedUpdates(
            stacked.delta, stacked.weight, jnp.arange(NUM_CLIENTS)
        )
        crafted = updates.collude(rows, attackers, "alie")
        median, _ = coordinate_median.finalize(crafted, (), None)
        want = jax.tree.map(lambda p, d: p - d, params, median.delta)
        jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=0, atol=1e-5), got, want)
        # The crafted rows differ from the honest ones (the attack did something).
        self.assertGreater(
            np.abs(
                crafted.delta["heads"]["a"]["kernel"][1] - stacked.delta["heads"]["a"]["kernel"][1]
            ).max(),
            1e-4,
        )

    def test_unknown_attack_is_refused(self):
        with self.assertRaisesRegex(ValueError, "Unknown attack 'nope'"):
            updates.with_update_attack(_algorithm(), np.zeros(NUM_CLIENTS, bool), "nope")


@functools.cache
def _federation():
    return synthetic.make_education_federation(
        synthetic.SyntheticConfig(num_clients=4, mean_examples=24, seed=0)
    )


class DataAttackTest(absltest.TestCase):
    def test_label_flipping(self):
        federation = _federation()
        attackers = np.array([True, False, False, True])
        flipped = data_attacks.flip_labels(federation, attackers).train
        honest = federation.train
        for c in range(4):
            real = honest["mask"][c] & honest["label_mask"]["outcome"][c]
            y, got = honest["labels"]["outcome"][c][real], flipped["labels"]["outcome"][c][real]
            # 4 classes: 0 <-> 3, 1 <-> 2 for attackers; unchanged otherwise.
            np.testing.assert_array_equal(got, 3 - y if attackers[c] else y)
            real = honest["mask"][c] & honest["label_mask"]["correct"][c]
            y, got = honest["labels"]["correct"][c][real], flipped["labels"]["correct"][c][real]
            np.testing.assert_array_equal(got, 1 - y if attackers[c] else y)
            real = honest["mask"][c] & honest["label_mask"]["score"][c]
            y, got = honest["labels"]["score"][c][real], flipped["labels"]["score"][c][real]
            np.testing.assert_array_equal(got, -y if attackers[c] else y)
        np.testing.assert_array_equal(
            federation.test["labels"]["outcome"], _federation().test["labels"]["outcome"]
        )

    def test_backdoor_patch_labels_and_success_rate(self):
        federation = _federation()
        attackers = np.array([False, True, False, False])
        poisoned = data_attacks.backdoor(
            federation, attackers, task="outcome", target=3, fraction=0.5
        )
        train, honest = poisoned.train, federation.train
        changed = np.any(train["inputs"]["image"] != honest["inputs"]["image"], axis=(2, 3))
        self.assertFalse(changed[[0, 2, 3]].any())  # Honest schools untouched.
        real = honest["mask"][1] & honest["present"]["image"][1]
        share = changed[1][real].mean()
        self.assertGreater(share, 0.25)
        self.assertLess(share, 0.75)
        np.testing.assert_array_equal(train["inputs"]["image"][1][changed[1]][:, -4:, -4:], 1.0)
        np.testing.assert_array_equal(train["labels"]["outcome"][1][changed[1]], 3)
        # The success rate counts triggered test inputs whose true label is not 3.
        triggered, counted = data_attacks.triggered_test(federation.test, task="outcome", target=3)
        np.testing.assert_array_equal(triggered["inputs"]["image"][counted][:, -4:, -4:], 1.0)
        labels = federation.test["labels"]["outcome"]
        self.assertFalse(np.any(labels[counted] == 3))
        logits = np.zeros(labels.shape + (4,), np.float32)
        logits[..., 3] = 1.0  # Everything predicted as the target: rate 1.
        self.assertEqual(
            data_attacks.attack_success_rate(
                federation.spec, {"outcome": logits}, counted, task="outcome", target=3
            ),
            1.0,
        )
        logits = np.eye(4, dtype=np.float32)[labels]  # The true labels: rate 0.
        self.assertEqual(
            data_attacks.attack_success_rate(
                federation.spec, {"outcome": logits}, counted, task="outcome", target=3
            ),
            0.0,
        )
        with self.assertRaisesRegex(ValueError, "regression"):
            data_attacks.backdoor(federation, attackers, task="score", target=1)
        with self.assertRaisesRegex(ValueError, "not a class"):
            data_attacks.backdoor(federation, attackers, task="correct", target=3)


if __name__ == "__main__":
    absltest.main()
