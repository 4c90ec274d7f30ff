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
"""Tests of the one train/test split (fedjax_m3t.data.split), on hand-made rows."""

import numpy as np
from absl.testing import absltest, parameterized

from fedjax_m3t.data import split as split_lib


def _test_counts(client, unit=None, **kwargs) -> list[int]:
    """Test units per client."""
    client = np.asarray(client)
    unit = np.arange(len(client)) if unit is None else np.asarray(unit)
    test = ~split_lib.train_mask(client, unit, **kwargs)
    return [len(set(unit[test & (client == c)])) for c in range(client.max() + 1)]


class SplitTest(parameterized.TestCase):
    def test_counts_round_half_up_and_keep_one_on_each_side(self):
        client = np.repeat(np.arange(5), [4, 3, 1, 10, 2])
        # 0.25 * (4, 3, 1, 10, 2) = 1, 0.75, 0.25, 2.5, 0.5, rounded half up: 1, 1, 0, 3,
        # 1; the 1-row client keeps its row in train; clipped to [1, n - 1] otherwise.
        self.assertEqual(_test_counts(client, test_fraction=0.25), [1, 1, 0, 3, 1])
        # 0.9 * 3 = 2.7 -> 3, clipped to 2: one unit is left for train.
        self.assertEqual(_test_counts([0, 0, 0], test_fraction=0.9), [2])
        # 0.01 * 4 rounds to 0, clipped up to 1: a client of >= 2 units has a test unit.
        self.assertEqual(_test_counts([0, 0, 0, 0], test_fraction=0.01), [1])

    def test_zero_fraction_puts_every_row_in_train(self):
        train = split_lib.train_mask(np.array([0, 0, 1, 1, 1]), test_fraction=0.0)
        np.testing.assert_array_equal(train, True)

    def test_students_stay_on_one_side(self):
        client = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
        student = np.array([5, 5, 6, 6, 7, -1, 5, 5, 8, 8])
        unit = split_lib.units(client, student)
        # Student 5 at clients 0 and 1 is two units; the row without a student its own.
        np.testing.assert_array_equal(unit, [0, 0, 1, 1, 2, 3, 4, 4, 5, 5])
        for seed in range(5):
            train = split_lib.train_mask(client, unit, test_fraction=0.5, seed=seed)
            for u in np.unique(unit):
                self.assertLen(set(train[unit == u]), 1)
            # 4 units at client 0 -> 2 test units; 2 at client 1 -> 1.
            self.assertEqual(_test_counts(client, unit, test_fraction=0.5, seed=seed), [2, 1])

    def test_seeded_and_independent_of_id_values(self):
        rng = np.random.default_rng(0)
        client = rng.integers(0, 3, 60)
        student = rng.integers(0, 20, 60)
        unit = split_lib.units(client, student)
        first = split_lib.train_mask(client, unit, seed=0)
        np.testing.assert_array_equal(first, split_lib.train_mask(client, unit, seed=0))
        self.assertFalse(np.array_equal(first, split_lib.train_mask(client, unit, seed=1)))
        # Other ids for the same students (units number by first appearance).
        renamed = split_lib.units(client, 1000 - 7 * student)
        np.testing.assert_array_equal(renamed, unit)

    @parameterized.parameters(-0.1, 1.0)
    def test_bad_fraction_raises(self, fraction):
        with self.assertRaisesRegex(ValueError, r"test_fraction must be in \[0, 1\)"):
            split_lib.train_mask(np.array([0, 0]), test_fraction=fraction)

    def test_client_rows(self):
        client = np.array([2, 0, 2, 2, 0])
        train = np.array([True, False, False, True, True])
        trains, tests = split_lib.client_rows(client, train, 4)
        self.assertEqual([t.tolist() for t in trains], [[4], [], [0, 3], []])
        self.assertEqual([t.tolist() for t in tests], [[1], [], [2], []])
        self.assertEqual(trains[0].dtype, np.int64)
        self.assertEqual(split_lib.train_mask(np.zeros(0, int)).shape, (0,))


if __name__ == "__main__":
    absltest.main()
