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
"""Assigning examples to clients when the data has no natural institution.

Dirichlet label skew (Hsu et al., 2019, "Measuring the Effects of Non-Identical
Data Distribution for Federated Visual Classification", arXiv:1909.06335): for
each class k, client shares q_k ~ Dirichlet(alpha * 1), and the class's examples
are dealt to clients in those proportions. Small alpha gives each client a few
dominant classes; alpha -> infinity gives every client the global class shares.
"""

import numpy as np


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float | None, *, seed: int = 0
) -> np.ndarray:
    """Client id of every example under Dirichlet label skew.

    Args:
      labels: int [n] class of each example.
      num_clients: clients to deal the examples to.
      alpha: Dirichlet concentration; None or inf deals every class evenly
        (round-robin over a shuffle: IID up to rounding).
      seed: seed of the shares and shuffles.

    Returns:
      int64 [n]: each example's client in [0, num_clients). Every example lands in
      exactly one client.

    Raises:
      ValueError: for num_clients < 1 or alpha <= 0.
    """
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}.")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"alpha must be > 0 (or None for IID), got {alpha}.")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    client = np.empty(len(labels), np.int64)
    for k in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == k))
        if alpha is None or np.isinf(alpha):
            client[rows] = np.arange(len(rows)) % num_clients
            continue
        shares = rng.dirichlet(np.full(num_clients, float(alpha)))
        cuts = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(int)
        for c, part in enumerate(np.split(rows, cuts)):
            client[part] = c
    return client


def label_shares(client: np.ndarray, labels: np.ndarray, num_clients: int) -> np.ndarray:
    """Per client, the share of each class among its examples: float [num_clients, K].

    Classes are the sorted distinct labels; a client without examples has zeros.
    """
    classes = np.unique(labels)
    counts = np.zeros((num_clients, len(classes)))
    np.add.at(counts, (client, np.searchsorted(classes, labels)), 1.0)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def mean_total_variation(client: np.ndarray, labels: np.ndarray, num_clients: int) -> float:
    """Mean over non-empty clients of the total-variation distance between the client's
    class shares and the global ones (0 = IID, up to 1 = disjoint)."""
    shares = label_shares(client, labels, num_clients)
    _, counts = np.unique(labels, return_counts=True)
    overall = counts / counts.sum()
    nonempty = np.bincount(client, minlength=num_clients) > 0
    return float(0.5 * np.abs(shares[nonempty] - overall).sum(axis=1).mean())
