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
"""Tests of per-institution privacy policies: the file, enforcement, budgets."""

import json
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import seeding, simulation
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.models import linear
from fedjax_m3t.privacy import policies
from tests import helpers
from tests.privacy import fixtures

NAMES = ("school_a", "school_b", "school_c")


def _fed_opt(model, steps=2, batch=4, **kwargs):
    return fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=steps, batch_size=batch),
        **kwargs,
    )


class ReadPoliciesTest(absltest.TestCase):
    def test_reads_a_file_keyed_by_institution(self):
        entries = {
            "school_b": {
                "share": ["adapters/**"],
                "mechanism": "local",
                "epsilon": 4.0,
                "clip": 1.0,
                "noise_multiplier": 2.0,
            },
        }
        path = os.path.join(tempfile.mkdtemp(), "policies.json")
        with open(path, "w") as f:
            json.dump(entries, f)
        read = policies.read_policies(path, NAMES)
        self.assertEqual(read[0], policies.InstitutionPolicy())  # Unnamed: the default.
        self.assertEqual(read[1].share, ("adapters/**",))
        self.assertEqual((read[1].mechanism, read[1].epsilon, read[1].clip), ("local", 4.0, 1.0))

    def test_errors_name_the_key(self):
        with self.assertRaisesRegex(ValueError, r"unknown institution\(s\) \['school_z'\]"):
            policies.read_policies({"school_z": {}}, NAMES)
        with self.assertRaisesRegex(ValueError, r"'school_a' has unknown field\(s\) \['eps'\]"):
            policies.read_policies({"school_a": {"eps": 1.0}}, NAMES)
        with self.assertRaisesRegex(ValueError, r"'school_c': mechanism 'secret' is not one of"):
            policies.read_policies({"school_c": {"mechanism": "secret"}}, NAMES)
        with self.assertRaisesRegex(ValueError, "'school_a': mechanism 'none' cannot meet"):
            policies.read_policies({"school_a": {"epsilon": 1.0}}, NAMES)

    def test_share_pattern_matching_nothing_names_the_institution(self):
        spec = helpers.tabular_spec()
        algorithm = _fed_opt(linear.build_linear_model(spec))
        bad = [policies.InstitutionPolicy(), policies.InstitutionPolicy(share=("encoders/image",))]
        with self.assertRaisesRegex(ValueError, "'school_b', share: .*matched no parameter"):
            policies.make_table(bad, algorithm, NAMES[:2])


def _image_only_at_school_a():
    """Three schools; only school_a holds images (the others' images are absent)."""
    federation, model = fixtures.small_m3t(num_clients=3, modality_missing_prob=0.0)
    present = {**federation.train["present"]}
    present["image"] = present["image"].copy()
    present["image"][1:] = False
    train = {**federation.train, "present": present}
    federation = federation_lib.Federation(
        spec=federation.spec, client_names=NAMES, train=train, test=federation.test
    )
    return federation, model


class EnforcementTest(absltest.TestCase):
    def test_a_private_module_never_leaves_and_stays_bit_identical(self):
        federation, model = _image_only_at_school_a()
        plain = _fed_opt(model)
        keep_image = policies.InstitutionPolicy(
            share=("backbone", "adapters", "heads", "encoders/tabular"),
            mechanism="local",
            clip=1.0,
            noise_multiplier=0.5,
        )
        rules = (keep_image, policies.InstitutionPolicy(), policies.InstitutionPolicy())
        table = policies.make_table(rules, plain, NAMES)
        algorithm = policies.enforce(plain, table)
        params = model.init(seeding.params_key(0))  # What run() starts from (seed 0).
        examples = jax.tree.map(jnp.asarray, helpers.take(federation.train, 0))
        context = base.make_context(jax.random.key(1), client_id=0)

        @jax.jit
        def messages(params):
            local = algorithm.init_client_state(params)
            sent = algorithm.client_update(params, local, examples, context)
            unenforced = plain.client_update(params, local["state"], examples, context)
            return sent, unenforced

        sent, unenforced = messages(params)
        image = lambda d: jax.tree.leaves(d["encoders"]["image"])
        # Without the policy school_a's image encoder would leave, trained:
        self.assertTrue(all(float(jnp.abs(x).max()) > 0 for x in image(unenforced.delta)))
        self.assertTrue(all(float(w) > 0 for w in image(unenforced.weight)))
        # with it, zero delta and zero weight in its message (noise included),
        for x, w in zip(image(sent.delta), image(sent.weight), strict=True):
            np.testing.assert_array_equal(x, 0.0)
            self.assertEqual(float(w), 0.0)
        # while its shared modules leave noised.
        self.assertGreater(float(jnp.abs(sent.delta["backbone"]["cls"]).max()), 0.0)
        self.assertEqual(int(sent.client_state["rounds"]), 1)
        # One round with every school: the image encoder, held only by school_a,
        # is bit-identical on the server; the shared backbone moved.
        config = simulation.SimulationConfig(rounds=1, cohort_size=3, verbose=False)
        result = simulation.run(algorithm, model, federation, config)
        after = result.server_state.params
        for a, b in zip(
            jax.tree.leaves(params["encoders"]["image"]),
            jax.tree.leaves(after["encoders"]["image"]),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        self.assertGreater(
            float(jnp.abs(after["backbone"]["cls"] - params["backbone"]["cls"]).max()), 0
        )
        np.testing.assert_array_equal(result.client_states["rounds"], [1, 1, 1])


class BudgetTest(absltest.TestCase):
    def test_institutions_stop_at_the_round_their_accountant_says(self):
        spec = helpers.tabular_spec()
        rng = np.random.default_rng(0)
        train = [helpers.linear_client(rng, n) for n in (6, 8, 5)]
        federation = federation_lib.Federation(
            spec=spec, client_names=NAMES, train=helpers.stack(train), test=helpers.stack(train)
        )
        model = linear.build_linear_model(spec)
        plain = _fed_opt(model)
        eps = lambda k: fixtures.rdp_gaussian_epsilon(1.0, count=k, delta=1e-5)  # z / 2 = 1.
        # Budgets that allow 2 and 4 rounds of local DP at z = 2 (their accountant's
        # epsilon after 2 / 4 rounds, with room below that after 3 / 5); school_c has none.
        budgets = (eps(2) + 1e-6, eps(4) + 1e-6, None)
        self.assertGreater(eps(3), budgets[0])
        self.assertGreater(eps(5), budgets[1])
        rules = [
            policies.InstitutionPolicy(mechanism="local", epsilon=b, clip=1.0, noise_multiplier=2.0)
            if b is not None
            else policies.InstitutionPolicy()
            for b in budgets
        ]
        algorithm = policies.enforce(plain, policies.make_table(rules, plain, NAMES))
        ledger = policies.BudgetLedger(
            rules,
            NAMES,
            num_examples=federation.num_examples(),
            batch_size=4,
            local_steps=2,
            dp_sgd_epsilon=fixtures.rdp_dp_sgd_epsilon,
            gaussian_epsilon=fixtures.rdp_gaussian_epsilon,
        )
        config = simulation.SimulationConfig(rounds=6, cohort_size=3, verbose=False)
        result = simulation.run(
            algorithm, model, federation, config, hooks=[ledger], population=ledger.population()
        )
        np.testing.assert_array_equal(result.client_states["rounds"], [2, 4, 6])
        # Clients per round: 3, 3, then school_a stops (round 3), school_b after round 4.
        self.assertEqual([r["num_clients"] for r in result.history], [3, 3, 2, 2, 1, 1])
        report = ledger.report()
        self.assertAlmostEqual(report["school_a"]["epsilon"], eps(2), places=10)
        self.assertAlmostEqual(report["school_b"]["epsilon"], eps(4), places=10)
        self.assertLessEqual(report["school_b"]["epsilon"], budgets[1])
        self.assertEqual(report["school_c"]["epsilon"], float("inf"))


if __name__ == "__main__":
    absltest.main()
