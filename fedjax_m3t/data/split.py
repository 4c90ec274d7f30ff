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
"""The one train/test split of clients' examples: by unit, within each client.

Every federation built from data (tables, school tables, the downloaded datasets)
splits its clients' examples here. A unit is what must not straddle the split: a
student (all of one student's rows at one client go to the same side, so no test
example's history holds a train label of that student), or a single row (an essay,
a question, a record without a student). A student at two clients (a change of
school) is two units, one per client: each client splits its own students.

Within each client, with n units:

  * the test set gets round(test_fraction * n) units, rounded half up, clipped to
    [1, n - 1] when test_fraction > 0, so a client of >= 2 units keeps at least one
    unit on each side;
  * a client of one unit keeps it in train (its test set is empty);
  * test_fraction = 0 puts every row in train.

Which units: one key ~ U(0, 1) is drawn per unit (`np.random.default_rng(seed)`),
units numbered in order of first appearance (so the split depends on the order
of the rows and the seed, not on the id values), and the units with the smallest
keys of each client go to test.
"""

import numpy as np


def units(client: np.ndarray, student: np.ndarray | None = None) -> np.ndarray:
    """int64 [N] unit ids 0..U-1: one per (client, student), numbered by first appearance.

    >>> units(np.array([0, 0, 1, 0, 1]), np.array([7, 8, 7, 7, -1])).tolist()
    [0, 1, 2, 0, 3]

    Args:
      client: int [N] client index of each row.
      student: int [N] student id of each row; a negative id marks a missing one (the
        row is a unit of its own). None: every row is a unit.

    Returns:
      The unit of each row; rows of one student at one client share theirs.
    """
    client = np.asarray(client, np.int64)
    if student is None:
        return np.arange(len(client), dtype=np.int64)
    student = np.asarray(student, np.int64)
    key = np.where(student >= 0, student, -1 - np.arange(len(student)))  # Missing: a unit each.
    pairs = np.stack([client, key], axis=1)
    _, first, unit = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    # Renumber by first appearance, so the split does not depend on id values.
    order = np.argsort(np.argsort(first))
    return order[unit.reshape(-1)].astype(np.int64)


def train_mask(
    client: np.ndarray,
    unit: np.ndarray | None = None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> np.ndarray:
    """bool [N], True for train rows: a seeded shuffle of units within each client.

    See the module docstring for the rule.

    >>> train_mask(np.array([0, 0, 0, 0, 1]), test_fraction=0.25, seed=0).tolist()
    [True, True, True, False, True]

    Args:
      client: int [N] client index of each row, in 0..C-1.
      unit: int64 [N] unit of each row, from `units` (None: every row is a unit).
      test_fraction: share of each client's units in test, in [0, 1).
      seed: seed of the shuffle.

    Returns:
      The train mask; the test rows are its complement.

    Raises:
      ValueError: for test_fraction outside [0, 1).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    client = np.asarray(client, np.int64)
    if len(client) == 0:
        return np.zeros(0, bool)
    unit = np.arange(len(client)) if unit is None else np.asarray(unit, np.int64)
    num_clients = int(client.max()) + 1
    unit_client = np.zeros(int(unit.max()) + 1, np.int64)
    unit_client[unit] = client
    n = np.bincount(unit_client, minlength=num_clients)
    num_test = np.floor(test_fraction * n + 0.5).astype(np.int64)
    if test_fraction > 0:
        num_test = np.clip(num_test, 1, np.maximum(n - 1, 1))
    num_test = np.where(n >= 2, num_test, 0)
    key = np.random.default_rng(seed).random(len(unit_client))
    rank = _rank_within(unit_client, key, num_clients)
    return (rank >= num_test[unit_client])[unit]


def client_rows(
    client: np.ndarray, train: np.ndarray, num_clients: int
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per client, its train rows and its test rows (int64, ascending).

    >>> trains, tests = client_rows(np.array([1, 0, 1, 1]), np.array([1, 1, 0, 1], bool), 3)
    >>> [t.tolist() for t in trains], [t.tolist() for t in tests]
    ([[1], [0, 3], []], [[], [2], []])

    Args:
      client: int [N] client index of each row, in 0..num_clients-1.
      train: bool [N] train rows (`train_mask`).
      num_clients: C; clients without rows get empty arrays.

    Returns:
      (C train row arrays, C test row arrays), the arguments of
      `fedjax_m3t.data.federation.from_rows`.
    """
    client = np.asarray(client, np.int64)

    def per_client(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = rows[np.argsort(client[rows], kind="stable")]
        counts = np.bincount(client[rows], minlength=num_clients)
        return tuple(np.split(rows.astype(np.int64), np.cumsum(counts)[:-1]))

    train = np.asarray(train, bool)
    return per_client(np.flatnonzero(train)), per_client(np.flatnonzero(~train))


def _rank_within(client: np.ndarray, key: np.ndarray, num_clients: int) -> np.ndarray:
    """int [N]: each row's rank by `key` among its client's rows (0 = smallest)."""
    order = np.lexsort((key, client))
    counts = np.bincount(client, minlength=num_clients)
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(client), np.int64)
    rank[order] = np.arange(len(client)) - starts[client[order]]
    return rank
