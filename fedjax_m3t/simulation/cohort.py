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
"""Cohort sampling and the layout of a (padded) cohort."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedjax_m3t import typing as t


def sample_cohort(rng: t.PRNGKey, num_clients: int, cohort_size: int) -> jax.Array:
    """Client ids of one round, uniformly without replacement.

    Args:
      rng: the round's sampler key.
      num_clients: clients in the federation.
      cohort_size: clients per round; == num_clients means full participation
        (ids 0..num_clients-1 in order, no randomness).

    Returns:
      int32 [cohort_size].
    """
    if cohort_size == num_clients:
        return jnp.arange(num_clients, dtype=jnp.int32)
    perm = jax.random.permutation(rng, num_clients)
    return perm[:cohort_size].astype(jnp.int32)


class CohortLayout(NamedTuple):
    """How a cohort is padded and split.

    Attributes:
      cohort_size: real clients per round.
      num_devices: devices the cohort axis is sharded over.
      chunk_size: clients vmapped together on one device (a scan runs over chunks).
      padded_size: cohort_size rounded up to a multiple of num_devices * chunk_size.
    """

    cohort_size: int
    num_devices: int
    chunk_size: int
    padded_size: int


def layout(cohort_size: int, num_devices: int = 1, chunk_size: int | None = None) -> CohortLayout:
    """Pads the cohort so every device runs the same whole number of chunks.

    Args:
      cohort_size: real clients per round.
      num_devices: devices to shard over.
      chunk_size: clients per vmap chunk; None = all of a device's clients at once.

    Raises:
      ValueError: for non-positive sizes.
    """
    if cohort_size < 1 or num_devices < 1:
        raise ValueError(f"cohort_size ({cohort_size}) and num_devices must be >= 1.")
    per_device = math.ceil(cohort_size / num_devices)
    if chunk_size is None:
        chunk_size = per_device
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}.")
    chunk_size = min(chunk_size, per_device)
    per_device = math.ceil(per_device / chunk_size) * chunk_size
    return CohortLayout(cohort_size, num_devices, chunk_size, per_device * num_devices)
