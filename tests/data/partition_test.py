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
"""Dirichlet label-skew partitioning: exactly-once assignment and measured skew."""

import numpy as np
import pytest

from fedjax_m3t.data import partition


def _labels(n=6000, classes=4, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 100.0, None])
def test_every_example_lands_in_exactly_one_client(alpha):
    labels = _labels()
    client = partition.dirichlet_partition(labels, 20, alpha, seed=1)
    assert client.shape == labels.shape and client.dtype == np.int64
    assert client.min() >= 0 and client.max() < 20
    # One id per example: the per-client counts add up to the examples, class by class.
    for k in range(4):
        assert np.bincount(client[labels == k], minlength=20).sum() == (labels == k).sum()


def test_skew_shrinks_as_alpha_grows():
    labels = _labels()
    tv = {
        alpha: partition.mean_total_variation(
            partition.dirichlet_partition(labels, 20, alpha, seed=1), labels, 20
        )
        for alpha in (0.1, 1.0, 1e4, None)
    }
    # Measured (seed 1, 6,000 examples, 4 balanced classes, 20 clients):
    # alpha 0.1 -> about 0.6, 1 -> about 0.3, 1e4 and None -> a few hundredths.
    assert tv[0.1] > 0.45
    assert tv[0.1] > tv[1.0] > tv[1e4]
    assert tv[1e4] < 0.05 and tv[None] < 0.05


def test_same_seed_same_partition_and_bad_arguments():
    labels = _labels(500)
    a = partition.dirichlet_partition(labels, 5, 0.5, seed=3)
    np.testing.assert_array_equal(a, partition.dirichlet_partition(labels, 5, 0.5, seed=3))
    with pytest.raises(ValueError, match="alpha must be > 0"):
        partition.dirichlet_partition(labels, 5, 0.0)
    with pytest.raises(ValueError, match="num_clients"):
        partition.dirichlet_partition(labels, 0, 1.0)


def test_label_shares_by_hand():
    # Client 0 holds labels [0, 0, 1]; client 1 holds [1]; client 2 holds nothing.
    shares = partition.label_shares(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 3)
    np.testing.assert_allclose(shares, [[2 / 3, 1 / 3], [0, 1], [0, 0]], atol=1e-12)
