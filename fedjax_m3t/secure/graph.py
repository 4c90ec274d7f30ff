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
"""Neighbour graphs of secure aggregation: complete (SecAgg) or a random Harary graph (SecAgg+).

Bonawitz et al. (2017) mask every pair of participants and share every client's
secrets with all the others (the complete graph). Bell et al. (2020, "Secure
Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS, eprint
2020/704) mask and share only along a sparse random graph of degree k =
O(log n): the Harary graph H_{k,n} (each node on a ring joined to its k/2
nearest nodes on each side) over a random permutation of the participants, as
in Flower's SecAgg+. Both are built inside jit over the cohort's slots; slots
that are not participants (padding, clients that sent nothing) have no edge.

The reconstruction threshold of client u is t_u = floor(threshold * deg_u) + 1,
a fraction of its neighbours (0.5: a strict majority, Bonawitz et al.'s
honest-but-curious setting).
"""

import jax
import jax.numpy as jnp

GRAPHS = ("complete", "harary")


def complete(participants: jax.Array) -> jax.Array:
    """Every pair of distinct participants: bool [k, k] from bool [k]."""
    k = participants.shape[0]
    return participants[:, None] & participants[None, :] & ~jnp.eye(k, dtype=bool)


def ring_positions(key: jax.Array, participants: jax.Array) -> jax.Array:
    """Each participant's place 0..m-1 in a uniformly random order (others: m..k-1)."""
    priority = jax.random.uniform(key, participants.shape)
    priority = jnp.where(participants, priority, 2.0)  # Non-participants last.
    order = jnp.argsort(priority)
    return jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))


def harary(key: jax.Array, participants: jax.Array, degree: int) -> jax.Array:
    """A random Harary graph of even `degree` over the participants: bool [k, k].

    Args:
      key: PRNG key of the random ring order.
      participants: bool [k].
      degree: even k >= 2; with m <= degree + 1 participants the graph is complete.

    Raises:
      ValueError: for an odd or non-positive degree.
    """
    if degree < 2 or degree % 2:
        raise ValueError(f"The SecAgg+ graph degree must be even and >= 2, got {degree}.")
    position = ring_positions(key, participants)
    m = jnp.sum(participants)
    gap = jnp.abs(position[:, None] - position[None, :])
    ring_distance = jnp.minimum(gap, m - gap)
    near = (ring_distance >= 1) & (ring_distance <= degree // 2)
    return near & participants[:, None] & participants[None, :]


def neighbours(
    kind: str, key: jax.Array, participants: jax.Array, degree: int | None = None
) -> jax.Array:
    """The graph named `kind` (one of GRAPHS) over the participants, bool [k, k]."""
    if kind == "complete":
        return complete(participants)
    if kind == "harary":
        return harary(key, participants, degree)
    raise ValueError(f"Unknown secure aggregation graph {kind!r}; choose one of {GRAPHS}.")


def thresholds(adjacency: jax.Array, threshold: float) -> jax.Array:
    """t_u = floor(threshold * deg_u) + 1, int32 [k] (see the module docstring)."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"The threshold fraction must be in [0, 1), got {threshold}.")
    degree = jnp.sum(adjacency, axis=1)
    return jnp.floor(threshold * degree).astype(jnp.int32) + 1
