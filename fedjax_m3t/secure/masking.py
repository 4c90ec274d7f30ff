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
"""Masks on the ring Z_{2^b}: the self mask and the pairwise masks of a client.

Bonawitz et al. (2017, eprint 2017/281), the MaskedInputCollection round:

    y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)   (mod 2^b),

the sums over u's neighbours (graph.py). PRG(seed) is `jax.random.bits` of the
seed's key (keys.prg_key): 32 uniform bits per coordinate, reduced mod 2^b by a
bit mask, so every mask is uniform on the whole ring (b <= 32). All sums run in
uint32 (mod 2^32, exact wrap-around); 2^b divides 2^32, so masking the result
with 2^b - 1 gives the sum mod 2^b.

Selective aggregation: the vector is split into segments (one per parameter
leaf); a client sends only the segments it holds. The self mask covers the
client's own segments, and the pairwise mask of u and v only the segments both
hold, so that the masks cancel within each segment's holders.
"""

import jax
import jax.numpy as jnp

from fedjax_m3t.secure import keys

SELF_DOMAIN, PAIR_DOMAIN = 1, 2  # Public domain tags of the two kinds of masks.


def ring_mask(bits: int) -> int:
    """2^b - 1, the bit mask that reduces a uint32 mod 2^b."""
    if not 1 <= bits <= 32:
        raise ValueError(f"The ring must have 1 to 32 bits, got {bits}.")
    return (1 << bits) - 1


def prg(seed: jax.Array, dim: int, domain: int, bits: int) -> jax.Array:
    """PRG(seed): uint32 [dim], uniform on Z_{2^bits}."""
    return jax.random.bits(keys.prg_key(seed, domain), (dim,), jnp.uint32) & jnp.uint32(
        ring_mask(bits)
    )


def coordinate_holders(holders: jax.Array, segment: jax.Array) -> jax.Array:
    """bool [..., dim]: which coordinates a client holds, from bool [..., segments]."""
    return jnp.take(holders, segment, axis=-1)


def pairwise_sum(
    secret_key: jax.Array,
    index: jax.Array,
    public_keys: jax.Array,
    use: jax.Array,
    holders: jax.Array,
    segment: jax.Array,
    bits: int,
    sign_of: jax.Array,
) -> jax.Array:
    """sum_v sign_v * PRG(agree(sk, pk_v)) on the segments u and v both hold.

    Args:
      secret_key: uint32 [limbs], the key-agreement secret of client u.
      index: int32 scalar, u's slot.
      public_keys: uint32 [k, limbs].
      use: bool [k], the v to include (u's neighbours, possibly only survivors).
      holders: bool [k, segments], each slot's segments; row `index` is u's.
      segment: int32 [dim], each coordinate's segment.
      bits: ring bits.
      sign_of: int32 [k] in {-1, 0, 1}, the sign of v's term.

    Returns:
      uint32 [dim] (mod 2^32; reduce with ring_mask).
    """
    dim = segment.shape[0]
    mine = holders[index]

    def step(acc, v):
        seed = keys.agree(secret_key, public_keys[v])
        common = coordinate_holders(mine & holders[v], segment)
        mask = jnp.where(common, prg(seed, dim, PAIR_DOMAIN, bits), 0)
        acc = jnp.where(use[v] & (sign_of[v] > 0), acc + mask, acc)
        acc = jnp.where(use[v] & (sign_of[v] < 0), acc - mask, acc)
        return acc, None

    acc, _ = jax.lax.scan(step, jnp.zeros((dim,), jnp.uint32), jnp.arange(public_keys.shape[0]))
    return acc


def mask_input(
    value: jax.Array,
    index: jax.Array,
    self_seed: jax.Array,
    secret_key: jax.Array,
    public_keys: jax.Array,
    adjacency_row: jax.Array,
    holders: jax.Array,
    segment: jax.Array,
    bits: int,
) -> jax.Array:
    """A client's masked input y_u (what it sends), uint32 [dim] on Z_{2^b}.

    Args:
      value: uint32 [dim], the encoded input x_u (0 outside u's segments).
      index: int32 scalar, u's slot.
      self_seed: uint32 [limbs], b_u.
      secret_key: uint32 [limbs], s_u^SK.
      public_keys: uint32 [k, limbs], everyone's s^PK.
      adjacency_row: bool [k], u's neighbours.
      holders: bool [k, segments].
      segment: int32 [dim].
      bits: ring bits.

    Returns:
      y_u, 0 on the coordinates u does not send.
    """
    own = coordinate_holders(holders[index], segment)
    sign = jnp.where(jnp.arange(public_keys.shape[0]) > index, 1, -1)
    masked = value + jnp.where(own, prg(self_seed, segment.shape[0], SELF_DOMAIN, bits), 0)
    masked = masked + pairwise_sum(
        secret_key, index, public_keys, adjacency_row, holders, segment, bits, sign
    )
    return jnp.where(own, masked & jnp.uint32(ring_mask(bits)), 0)
