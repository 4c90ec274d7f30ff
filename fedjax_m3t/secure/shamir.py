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
"""t-of-n Shamir secret sharing over the prime field F_p, p = 65521, in uint32.

Shamir (1979), "How to share a secret", as used by Bonawitz et al. (2017,
"Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS,
eprint 2017/281) to share each client's key-agreement secret and self-mask seed.

p = 65521 is the largest prime below 2^16, so a product of two field elements is
below 2^32 and every operation is exact uint32 arithmetic that runs inside jit
(no x64, no Python ints). A secret is a vector of `limbs` field elements; each
limb is shared independently with the same threshold. The field is far too small
for real security; it is a faithful simulation of the arithmetic (the byte model
counts the share sizes of a real deployment).

A share for holder h (0-based slot) is f(h + 1), f of degree t - 1 with f(0) the
secret; any t shares give f(0) by Lagrange interpolation at 0, fewer give a value
independent of the secret.
"""

import jax
import jax.numpy as jnp

PRIME = 65521
_EXPONENT_BITS = 16  # Exponents are field elements or p - 2, all < 2^16.


def _u32(x) -> jax.Array:
    return jnp.asarray(x, jnp.uint32)


def mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """(a * b) mod p for uint32 field elements (the product is < 2^32)."""
    return (_u32(a) * _u32(b)) % PRIME


def add(a: jax.Array, b: jax.Array) -> jax.Array:
    """(a + b) mod p."""
    return (_u32(a) + _u32(b)) % PRIME


def sub(a: jax.Array, b: jax.Array) -> jax.Array:
    """(a - b) mod p."""
    return (_u32(a) + PRIME - _u32(b)) % PRIME


def power(base: jax.Array, exponent: jax.Array) -> jax.Array:
    """base^exponent mod p (square and multiply over 16 exponent bits), elementwise."""
    base = jnp.asarray(base, jnp.uint32) % PRIME
    exponent = jnp.asarray(exponent, jnp.uint32)
    shape = jnp.broadcast_shapes(base.shape, exponent.shape)

    def step(bit, carry):  # A rolled loop: small programs, fast compiles.
        result, base = carry
        result = jnp.where((exponent >> bit.astype(jnp.uint32)) & 1, mul(result, base), result)
        return result, mul(base, base)

    init = (jnp.ones(shape, jnp.uint32), jnp.broadcast_to(base, shape))
    return jax.lax.fori_loop(0, _EXPONENT_BITS, step, init)[0]


def inverse(a: jax.Array) -> jax.Array:
    """a^-1 mod p by Fermat (a^(p-2)); 0 maps to 0."""
    return power(a, PRIME - 2)


def random_elements(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform field elements in [0, p), uint32."""
    return jax.random.randint(key, shape, 0, PRIME, dtype=jnp.int32).astype(jnp.uint32)


def share(key: jax.Array, secret: jax.Array, threshold: jax.Array, num_holders: int) -> jax.Array:
    """Shares secrets among `num_holders` slots, any `threshold` of which recover them.

    Args:
      key: PRNG key of the random coefficients.
      secret: uint32 [..., limbs] field elements.
      threshold: int32 [...] (broadcast against secret's leading axes), t in
        [1, num_holders]: the polynomial has degree t - 1.
      num_holders: static number of holder slots (shares at x = 1..num_holders).

    Returns:
      uint32 [..., num_holders, limbs]: holder h's share is f(h + 1).
    """
    lead = secret.shape[:-1]
    coefficients = random_elements(key, (num_holders,) + secret.shape)  # [K, ..., limbs]
    degree = jnp.arange(num_holders).reshape((-1,) + (1,) * secret.ndim)
    keep = degree < jnp.broadcast_to(threshold, lead)[None, ..., None]
    coefficients = jnp.where(keep, coefficients, 0).at[0].set(secret % PRIME)
    x = jnp.arange(1, num_holders + 1, dtype=jnp.uint32).reshape((num_holders,) + (1,) * len(lead))
    x = x[..., None]  # [holders, ..., 1]

    def horner(acc, coefficient):  # Highest degree first.
        return add(mul(acc, x), coefficient[None]), None

    init = jnp.zeros((num_holders,) + secret.shape, jnp.uint32)
    values, _ = jax.lax.scan(horner, init, coefficients[::-1])
    return jnp.moveaxis(values, 0, -2)


def lagrange_at_zero(present: jax.Array) -> jax.Array:
    """Lagrange coefficients at 0 over the present holders (x = slot + 1).

    Args:
      present: bool [..., k], which holders' shares are used.

    Returns:
      uint32 [..., k]: lambda_i = prod_{j present, j != i} x_j / (x_j - x_i) for
      present i, 0 elsewhere.
    """
    k = present.shape[-1]
    x = jnp.arange(1, k + 1, dtype=jnp.uint32)

    def step(carry, j):
        numerator, denominator = carry
        use = jnp.take(present, j, axis=-1)[..., None] & (jnp.arange(k) != j)  # [..., k]
        numerator = jnp.where(use, mul(numerator, x[j]), numerator)
        denominator = jnp.where(use, mul(denominator, sub(x[j], x)), denominator)
        return (numerator, denominator), None

    ones = jnp.ones(present.shape, jnp.uint32)
    (numerator, denominator), _ = jax.lax.scan(step, (ones, ones), jnp.arange(k))
    return jnp.where(present, mul(numerator, inverse(denominator)), 0)


def reconstruct(shares: jax.Array, present: jax.Array) -> jax.Array:
    """The secrets from the present holders' shares (exact iff >= t are present).

    Args:
      shares: uint32 [..., k, limbs], holder h's share in slot h.
      present: bool [..., k].

    Returns:
      uint32 [..., limbs].
    """
    weights = lagrange_at_zero(present)[..., None]
    terms = mul(weights, jnp.where(present[..., None], shares, 0))  # Each < p.
    # k terms < 2^16 each: the uint32 sum is exact for k < 2^16 holders.
    return jnp.sum(terms, axis=-2, dtype=jnp.uint32) % PRIME
