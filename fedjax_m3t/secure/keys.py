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
"""Simulated Diffie-Hellman key agreement: pairwise mask seeds and their PRG keys.

Bonawitz et al. (2017, eprint 2017/281) derive the pairwise mask seed of clients
u and v as s_uv = KA.agree(s_u^SK, s_v^PK), Diffie-Hellman over an elliptic curve.
Here the group is the multiplicative group of F_65521 (generator 17), one
independent exchange per limb, so the arithmetic is the real protocol's
(pk = g^sk, s_uv = pk_v^sk_u = pk_u^sk_v, and a server that reconstructs sk_u
from Shamir shares recomputes s_uv from the public pk_v) but a 16-bit group gives
no security: this is a SIMULATION of the key agreement, not cryptography. The
encryption of shares between clients (the c keys of the paper) is not simulated:
shares are handed to their holders directly.

A seed (limbs field elements) becomes a jax.random key by folding its limbs into
a fixed, public domain key; masks are then `jax.random.bits` of that key.
"""

import jax
import jax.numpy as jnp

from fedjax_m3t.secure import shamir

GENERATOR = 17  # A primitive root mod 65521 (65520 = 2^4 3^2 5 7 13).


def keygen(key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Key pairs: secret keys uniform in [1, p - 2] and public keys g^sk.

    Args:
      key: PRNG key.
      shape: e.g. (clients, limbs).

    Returns:
      (secret keys, public keys), uint32 of `shape`.
    """
    secret = jax.random.randint(key, shape, 1, shamir.PRIME - 1, dtype=jnp.int32)
    secret = secret.astype(jnp.uint32)
    return secret, shamir.power(GENERATOR, secret)


def agree(secret_key: jax.Array, public_key: jax.Array) -> jax.Array:
    """The shared seed pk^sk (limb by limb); agree(sk_u, pk_v) == agree(sk_v, pk_u)."""
    return shamir.power(public_key, secret_key)


def prg_key(seed: jax.Array, domain: int) -> jax.Array:
    """The jax.random key of a seed.

    Args:
      seed: uint32 [limbs] field elements.
      domain: a public tag separating uses (self masks vs pairwise masks).

    Returns:
      A typed PRNG key.
    """
    key = jax.random.key(domain)
    for limb in range(seed.shape[-1]):  # Static: a seed's few limbs.
        key = jax.random.fold_in(key, seed[limb])
    return key
