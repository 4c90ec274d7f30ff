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
"""HF-FM's network model against its README and its own code's numbers.

Numbers marked "their code" come from running payamsiabd/M3T-FFM
HFFM/methods/table_generator.py (commit 9299374, networkx 3.6.1, NumPy's PCG64)
with `random.choice` patched to return the given aggregators.
"""

import jax
import numpy as np
from absl.testing import absltest

from fedjax_m3t.hierarchy import hierarchical, network
from fedjax_m3t.models import linear
from tests import helpers

SCENARIO = network.Scenario()


class RadioTest(absltest.TestCase):
    def test_rate_by_hand(self):
        # 100 m: -30 - 30 log10(100) = -90 dB; |h|^2 = 1e-9 * (1^2 + 0^2); 1000 mW -> 1e-6 mW;
        # noise 10^-17.4 * 1000 (kHz, as stored) = 3.981e-15; 1000 log2(1 + 2.512e8) = 27904.2.
        rate = network.transmission_rate(np.asarray(100.0), 1000.0, 1000.0, np.asarray([1.0, 0.0]))
        np.testing.assert_allclose(rate, 1000 * np.log2(1 + 1e-6 / (10**-17.4 * 1000)), rtol=1e-12)
        np.testing.assert_allclose(rate, 27904.2, rtol=1e-5)


class ReadmeTableTest(absltest.TestCase):
    def test_star_row_is_exact(self):
        # 0.1 s + 48,000 kbit / 4,000 kbit/s; 40 users x 12.1 s x 800 mW = 387,200 mJ.
        latency, energy = network.table()["star"]
        self.assertEqual(latency, 0.1 + 48_000 / 4_000)
        np.testing.assert_allclose(energy, 387.2, rtol=1e-12)

    def test_seeded_rows_equal_their_code_and_the_readme(self):
        rows = network.table()
        theirs = {  # Their code (printed to 6 decimals).
            "edge_only": (3.597674, 59.253635),
            "hffm_2": (9.587174, 107.653635),
            "hffm_8": (5.049674, 71.353635),
        }
        for name, want in theirs.items():
            np.testing.assert_allclose(rows[name], want, atol=1e-6)
            # The README cuts to 2 decimals (9.587 -> 9.58): equal after cutting, within 1%.
            np.testing.assert_array_equal(network.truncated(rows[name]), network.README[name])
            np.testing.assert_allclose(rows[name], network.README[name], rtol=0.01)

    def test_d2d_rows_equal_their_code_for_given_aggregators(self):
        theirs = {
            (3, 2, 2, 3, 2, 3, 3, 0, 0, 1): {
                "edge_only_d2d": (1.99934, 15.325923),
                "hffm_d2d_2": (8.866827, 68.228922),
                "hffm_d2d_8": (3.664186, 28.517559),
            },
            (1, 3, 3, 0, 1, 3, 0, 3, 0, 1): {
                "edge_only_d2d": (1.951742, 13.863099),
                "hffm_d2d_2": (8.786619, 66.669115),
                "hffm_d2d_8": (3.608682, 27.031224),
            },
        }
        for aggregators, rows in theirs.items():
            got = network.table(np.asarray(aggregators))
            for name, want in rows.items():
                np.testing.assert_allclose(got[name], want, atol=2e-6)

    def test_readme_d2d_rows_lie_in_the_distribution_of_the_unseeded_choice(self):
        # 71 of the 4^10 equally likely aggregator choices give all six README D2D numbers
        # (cut to 2 decimals); (0, 0, 1, 0, 1, 3, 1, 1, 1, 0) is the first of them.
        dist = network.d2d_distribution()
        joint = np.ones(4**10, bool)
        for name in network.D2D_ROWS:
            readme = np.asarray(network.README[name])
            self.assertTrue(
                np.all(dist[name].min(0) <= readme) and np.all(readme <= dist[name].max(0))
            )
            joint &= np.all(network.truncated(dist[name]) == readme, axis=1)
        self.assertEqual(int(joint.sum()), 71)
        first = dist["choices"][np.flatnonzero(joint)[0]]
        np.testing.assert_array_equal(first, [0, 0, 1, 0, 1, 3, 1, 1, 1, 0])
        rows = network.table(first)
        for name, value in network.README.items():
            np.testing.assert_array_equal(network.truncated(rows[name]), value)


class PayloadTest(absltest.TestCase):
    def test_timeline_is_the_hierarchy_formula(self):
        deployment, links = network.hffm_network()
        p = SCENARIO.payload_kbit
        for gaf in (1, 2, 8):
            cloud = [p if r % gaf == 0 else 0.0 for r in range(1, 41)]
            got = network.timeline(deployment, links, SCENARIO, [p] * 40, cloud)
            want = network.hierarchy(deployment, links, SCENARIO, p, gaf)
            np.testing.assert_allclose(got, want, rtol=1e-12)
        # Edge only: HF-FM keeps cloud / 200 = 0.0605 s in the latency; the timeline does not.
        got = network.timeline(deployment, links, SCENARIO, [p] * 40, [0.0] * 40)
        want = network.hierarchy(deployment, links, SCENARIO, p, 200, with_cloud_energy=False)
        np.testing.assert_allclose(want[0] - got[0], 12.1 / 200, rtol=1e-9)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)

    def test_sent_bytes_are_the_scheduled_leaves(self):
        # heads/a and heads/b are 3 float32 each (bias [1], kernel [2, 1]): 12 bytes.
        model = linear.build_linear_model(
            helpers.tabular_spec((("a", "regression"), ("b", "regression")))
        )
        params = jax.eval_shape(model.init, jax.random.key(0))
        schedule = hierarchical.hffm_schedule(cloud_every=2, edge_modules=("heads/b",))
        sent = hierarchical.sent_bytes(params, None, schedule, 4)
        np.testing.assert_array_equal(sent, [[24, 0], [24, 12], [24, 0], [24, 12]])
        self.assertEqual(network.payload_kbit(1_000_000), 8000.0)


if __name__ == "__main__":
    absltest.main()
