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
"""Tests of the accountants against published values and hand computations."""

import math

import dp_accounting as dpa
import pytest
from absl import logging as absl_logging
from absl.testing import absltest

from fedjax_m3t.privacy import accounting

# TF-Privacy's compute_dp_sgd_privacy order list.
TFP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


class PublishedValuesTest(absltest.TestCase):
    def test_tf_privacy_mnist_case(self):
        # TF-Privacy's compute_dp_sgd_privacy test: 60000 examples, batch 150, z = 1.3,
        # 15 epochs (6000 steps), delta 1e-5 -> eps 0.7242234026 at order 19.
        acc = accounting.make_accountant("rdp", orders=TFP_ORDERS)
        acc.compose(
            dpa.SelfComposedDpEvent(
                dpa.PoissonSampledDpEvent(150 / 60000, dpa.GaussianDpEvent(1.3)), 6000
            )
        )
        eps, order = acc.get_epsilon_and_optimal_order(1e-5)
        self.assertAlmostEqual(eps, 0.7242234026, delta=1e-6)
        self.assertEqual(order, 19)
        got = accounting.dp_sgd_epsilon(
            1.3, sampling_rate=150 / 60000, steps=6000, delta=1e-5, orders=TFP_ORDERS
        )
        self.assertAlmostEqual(got, 0.7242234026, delta=1e-6)

    def test_abadi_et_al_2016(self):
        # Abadi et al. (2016): q = 0.01, sigma = 4, 10^4 steps, delta 1e-5: eps <= 1.26
        # with their moments accountant; the tighter RDP analysis gives 1.0355.
        eps = accounting.dp_sgd_epsilon(4.0, sampling_rate=0.01, steps=10_000, delta=1e-5)
        self.assertLessEqual(eps, 1.26)
        self.assertAlmostEqual(eps, 1.0355, delta=1e-4)
        pld = accounting.dp_sgd_epsilon(
            4.0, sampling_rate=0.01, steps=10_000, delta=1e-5, accountant="pld"
        )
        self.assertLess(pld, eps)  # PLD is tighter than RDP here.

    def test_tff_tutorial_calibration(self):
        # TFF's "Differential privacy in TFF" tutorial: 3,383 clients, 100 rounds,
        # target (2, 1e-5), noise multiplier = 0.01 x clients per round: 120 clients,
        # z = 1.2, eps about 1.986 (and 119 clients would overspend).
        m, z = accounting.calibrate_cohort_size(
            2.0, delta=1e-5, rounds=100, num_clients=3383, noise_per_client=0.01
        )
        self.assertEqual(m, 120)
        self.assertAlmostEqual(z, 1.2, places=12)
        eps = accounting.dp_sgd_epsilon(1.2, sampling_rate=120 / 3383, steps=100, delta=1e-5)
        self.assertAlmostEqual(eps, 1.986, delta=1e-3)
        over = accounting.dp_sgd_epsilon(1.19, sampling_rate=119 / 3383, steps=100, delta=1e-5)
        self.assertGreater(over, 2.0)

    def test_gaussian_matches_the_analytic_gaussian_mechanism(self):
        # Balle and Wang's (2018) exact epsilon of one Gaussian mechanism, sigma = 1.
        exact = dpa.get_epsilon_gaussian(1.0, 1e-5)
        got = accounting.gaussian_epsilon(1.0, count=1, delta=1e-5, accountant="pld")
        self.assertAlmostEqual(got, exact, delta=2e-3)
        self.assertGreaterEqual(got, exact - 1e-9)  # PLD discretisation is pessimistic.
        # 4 compositions of sigma = 2 are one Gaussian of sigma = 1 (RDP adds up exactly).
        self.assertAlmostEqual(
            accounting.gaussian_epsilon(2.0, count=4, delta=1e-5),
            accounting.gaussian_epsilon(1.0, count=1, delta=1e-5),
            places=9,
        )

    def test_edge_cases(self):
        self.assertEqual(accounting.gaussian_epsilon(1.0, count=0, delta=1e-5), 0.0)
        self.assertEqual(accounting.gaussian_epsilon(0.0, count=3, delta=1e-5), math.inf)
        self.assertEqual(
            accounting.dp_sgd_epsilon(0.0, sampling_rate=0.1, steps=3, delta=1e-5), math.inf
        )
        with self.assertRaisesRegex(ValueError, "Unknown accountant"):
            accounting.make_accountant("moments")


class RoundEventTest(absltest.TestCase):
    def test_fixed_size_event_halves_the_multiplier(self):
        # Replace-one sensitivity of a clipped sum is 2 clip: the event's multiplier is z / 2.
        event, relation = accounting.round_event(
            1.5, accounting.Sampling(num_clients=100, cohort_size=10)
        )
        self.assertIsInstance(event, dpa.SampledWithoutReplacementDpEvent)
        self.assertEqual((event.source_dataset_size, event.sample_size), (100, 10))
        self.assertEqual(event.event.noise_multiplier, 0.75)
        self.assertEqual(relation, dpa.NeighboringRelation.REPLACE_ONE)

    def test_wor_multiplier_is_std_over_sensitivity(self):
        # dp-accounting's WOR event at q = 1 is the plain Gaussian of that multiplier:
        # RDP(alpha) = alpha / (2 s^2). With s = z / 2 = 1 (z = 2, std 2 clip over the
        # replace-one sensitivity 2 clip): 1.0 at order 2, i.e. (2 clip)^2 * 2 / (2 (2 clip)^2).
        acc = accounting.make_accountant("rdp", dpa.NeighboringRelation.REPLACE_ONE, [2.0, 8.0])
        acc.compose(dpa.SampledWithoutReplacementDpEvent(7, 7, dpa.GaussianDpEvent(1.0)))
        self.assertEqual(acc.rdp.tolist(), [1.0, 4.0])
        event, _ = accounting.round_event(2.0, accounting.Sampling(num_clients=4, cohort_size=2))
        self.assertEqual(event.event, dpa.GaussianDpEvent(1.0))

    def test_full_participation_is_an_unsampled_gaussian(self):
        event, relation = accounting.round_event(
            1.5, accounting.Sampling(num_clients=8, cohort_size=8, num_devices=2)
        )
        self.assertEqual(event, dpa.GaussianDpEvent(1.5))
        self.assertEqual(relation, dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)

    def test_stratified_blocks(self):
        # N = 9, m = 6 over 2 devices: blocks of ceil(9/2) = 5 clients (the second holds
        # 4), 3 slots each: ratios 3/5 and 3/4, so the second block is the worst.
        sampling = accounting.Sampling(num_clients=9, cohort_size=6, num_devices=2)
        self.assertEqual(sampling.blocks(), [(5, 3), (4, 3)])
        event, _ = accounting.round_event(1.0, sampling)
        self.assertEqual((event.source_dataset_size, event.sample_size), (4, 3))
        # N = 10, m = 4, 3 devices: blocks of 4, 4, 2 with shares 2, 1, 1.
        sampling = accounting.Sampling(num_clients=10, cohort_size=4, num_devices=3)
        self.assertEqual(sampling.blocks(), [(4, 2), (4, 1), (2, 1)])
        self.assertEqual(sampling.worst_block(), (4, 2))
        # A share larger than its block takes the whole block: no amplification there.
        sampling = accounting.Sampling(num_clients=5, cohort_size=4, num_devices=2)
        self.assertEqual(sampling.blocks(), [(3, 2), (2, 2)])
        event, _ = accounting.round_event(1.0, sampling)
        self.assertEqual(event, dpa.GaussianDpEvent(0.5))


class CentralAccountantTest(absltest.TestCase):
    def test_rdp_matches_composing_the_rounds(self):
        sampling = accounting.Sampling(num_clients=50, cohort_size=5)
        acc = accounting.CentralAccountant(1.0, sampling=sampling, delta=1e-5)
        event, relation = accounting.round_event(1.0, sampling)
        for rounds in (1, 30):
            want = accounting.event_epsilon(
                dpa.SelfComposedDpEvent(event, rounds),
                delta=1e-5,
                neighboring_relation=relation,
            )
            self.assertAlmostEqual(acc.epsilon(rounds), want, places=9)
        self.assertEqual(acc.epsilon(0), 0.0)

    def test_pld_full_participation(self):
        sampling = accounting.Sampling(num_clients=4, cohort_size=4)
        acc = accounting.CentralAccountant(2.0, sampling=sampling, delta=1e-5, accountant="pld")
        got = [acc.epsilon(r) for r in (1, 2, 3)]
        for rounds, eps in zip((1, 2, 3), got, strict=True):
            want = accounting.gaussian_epsilon(2.0, count=rounds, delta=1e-5, accountant="pld")
            self.assertAlmostEqual(eps, want, delta=1e-3)
        # A Gaussian composed r times is one of sigma / sqrt(r): Balle-Wang's exact value.
        self.assertAlmostEqual(got[-1], dpa.get_epsilon_gaussian(2.0 / 3**0.5, 1e-5), delta=3e-3)
        self.assertAlmostEqual(acc.epsilon(2), got[1], places=12)  # Cached / recomposed.

    def test_pld_refuses_fixed_size_sampling(self):
        with self.assertRaisesRegex(ValueError, "no fixed-size"):
            accounting.CentralAccountant(
                1.0,
                sampling=accounting.Sampling(num_clients=10, cohort_size=5),
                delta=1e-5,
                accountant="pld",
            )

    def test_max_rounds(self):
        acc = accounting.CentralAccountant(
            1.0, sampling=accounting.Sampling(num_clients=40, cohort_size=4), delta=1e-5
        )
        budget = acc.epsilon(13) + 1e-9
        self.assertEqual(acc.max_rounds(budget, limit=100), 13)
        self.assertEqual(acc.max_rounds(budget, limit=9), 9)
        self.assertEqual(acc.max_rounds(acc.epsilon(1) / 2, limit=100), 0)

    def _check_calibration(self, sampling, accountant):
        z = accounting.calibrate_noise(
            3.0, delta=1e-5, rounds=20, sampling=sampling, accountant=accountant, tol=1e-4
        )

        def eps(z):
            acc = accounting.CentralAccountant(
                z, sampling=sampling, delta=1e-5, accountant=accountant
            )
            return acc.epsilon(20)

        self.assertLessEqual(eps(z), 3.0)
        self.assertGreater(eps(z - 2e-4), 3.0)
        return z

    def test_calibrate_noise_full_participation(self):
        self._check_calibration(accounting.Sampling(num_clients=8, cohort_size=8), "rdp")

    @pytest.mark.slow  # About 25 s: a fixed-size RDP curve or a PLD takes about 0.5 s.
    def test_calibrate_noise_stratified_and_pld(self):
        self._check_calibration(
            accounting.Sampling(num_clients=40, cohort_size=4, num_devices=2), "rdp"
        )
        sampling = accounting.Sampling(num_clients=8, cohort_size=8)
        z_pld = self._check_calibration(sampling, "pld")
        self.assertLess(z_pld, self._check_calibration(sampling, "rdp"))  # PLD is tighter.

    def test_dropped_orders_are_silenced_and_summarised(self):
        with self.assertLogs("fedjax_m3t.privacy.accounting", "INFO") as logs:
            with accounting._dropped_orders() as dropped:
                absl_logging.warning(
                    "_compute_log_a_frac failed to converge after %d iterations with q=%f, "
                    "sigma=%f, alpha=%f. Excluding this order from the epsilon computation.",
                    10,
                    0.5,
                    1.0,
                    1.5,
                )
        self.assertEqual(dropped, [1.5])
        self.assertIn("excluded RDP orders [1.5]", logs.output[0])


if __name__ == "__main__":
    absltest.main()
