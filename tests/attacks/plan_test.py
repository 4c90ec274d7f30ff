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
"""AttackPlan: which attack applies where, and its checks."""

import numpy as np
from absl.testing import absltest

from experiments import robustness
from fedjax_m3t.attacks import plan as plan_lib
from fedjax_m3t.datasets import synthetic


class PlanTest(absltest.TestCase):
    def test_each_attack_goes_to_data_or_algorithm(self):
        federation = synthetic.make_education_federation(
            synthetic.SyntheticConfig(num_clients=5, mean_examples=12, seed=1)
        )
        sentinel = object()
        for attack in plan_lib.ATTACKS:
            plan = plan_lib.AttackPlan(attack=attack, fraction=0.4, seed=2)
            self.assertEqual(plan.attackers(5).sum(), 0 if attack == "none" else 2)
            poisoned = plan_lib.poison(plan, federation)
            if attack in plan_lib.DATA_ATTACKS:
                self.assertIsNot(poisoned, federation)
            else:
                self.assertIs(poisoned, federation)
                if attack == "none":
                    self.assertIs(plan_lib.arm(plan, sentinel, 5), sentinel)
        self.assertEqual(plan_lib.AttackPlan(attack="backdoor").task(federation), "correct")
        # Poisoned examples carry the trigger; the clean federation is untouched.
        backdoored = plan_lib.poison(
            plan_lib.AttackPlan(attack="backdoor", fraction=0.4), federation
        )
        self.assertTrue(
            np.any(backdoored.train["inputs"]["image"] != federation.train["inputs"]["image"])
        )
        self.assertFalse(np.any(federation.train["inputs"]["image"][..., -4:, -4:] == 1.0))

    def test_bad_plans_are_refused(self):
        with self.assertRaisesRegex(ValueError, "Unknown attack 'nope'"):
            plan_lib.AttackPlan(attack="nope")
        with self.assertRaisesRegex(ValueError, "fraction"):
            plan_lib.AttackPlan(attack="alie", fraction=2.0)

    def test_experiment_gives_rules_the_attacker_count(self):
        self.assertEqual(robustness.with_f("trimmed_mean", 2), "trimmed_mean(trim=2)")
        self.assertEqual(robustness.with_f("krum", 0), "krum(f=1)")
        self.assertEqual(robustness.with_f("krum(f=3)", 1), "krum(f=3)")
        self.assertEqual(robustness.with_f("median", 4), "median")


if __name__ == "__main__":
    absltest.main()
