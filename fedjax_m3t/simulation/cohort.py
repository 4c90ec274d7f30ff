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


class Population(NamedTuple):
    """Per-client facts the round reads as data (changing them never recompiles).

    Attributes:
      eligible: bool [num_clients]: clients that may be sampled this round (clients
        can leave, be excluded or unlearned without a new compilation).
      group: int32 [num_clients]: each client's institution group (ClientContext.group).
    """

    eligible: jax.Array
    group: jax.Array


def everyone(num_clients: int) -> Population:
    """Every client eligible, all in group 0."""
    return Population(
        eligible=jnp.ones((num_clients,), bool), group=jnp.zeros((num_clients,), jnp.int32)
    )


def sample_cohort(
    rng: t.PRNGKey, eligible: jax.Array, cohort_size: int
) -> tuple[jax.Array, jax.Array]:
    """Client ids of one round, uniformly without replacement among the eligible.

    Args:
      rng: the round's sampler key.
      eligible: bool [num_clients].
      cohort_size: slots per round; == num_clients means full participation
        (ids 0..num_clients-1 in order, no randomness).

    Returns:
      (ids int32 [cohort_size], valid bool [cohort_size]): a slot is valid when its
      client is eligible (fewer eligible clients than slots leave slots invalid).
    """
    num_clients = eligible.shape[0]
    if cohort_size == num_clients:
        ids = jnp.arange(num_clients, dtype=jnp.int32)
    else:
        ids = shuffled_eligible(rng, eligible)[:cohort_size]
    return ids, eligible[ids]


def shuffled_eligible(rng: t.PRNGKey, eligible: jax.Array) -> jax.Array:
    """int32 [num_clients]: the eligible clients in uniformly random order, then the rest.

    Eligible clients get uniform keys in [0, 1), the others 2, so any prefix of the
    sorted order is a uniform sample without replacement of the eligible.
    """
    keys = jnp.where(eligible, jax.random.uniform(rng, eligible.shape), 2.0)
    return jnp.argsort(keys).astype(jnp.int32)


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


def layout(cohort_size: int, num_devices: int, chunk_size: int) -> CohortLayout:
    """Pads the cohort so every device runs the same whole number of chunks.

    Args:
      cohort_size: real clients per round.
      num_devices: devices to shard over.
      chunk_size: clients per vmap chunk (>= 1; more than a device's share of the
        cohort means one vmap over that share).

    Raises:
      ValueError: for non-positive sizes.
    """
    if cohort_size < 1 or num_devices < 1:
        raise ValueError(f"cohort_size ({cohort_size}) and num_devices must be >= 1.")
    per_device = math.ceil(cohort_size / num_devices)
    if chunk_size is None or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size}.")
    chunk_size = min(chunk_size, per_device)
    per_device = math.ceil(per_device / chunk_size) * chunk_size
    return CohortLayout(cohort_size, num_devices, chunk_size, per_device * num_devices)
