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
"""Fixed-point encoding of weighted client updates into the ring Z_{2^b}.

A client's update coordinate x is clipped to [-clip, clip] and rounded to the
grid 2^-f (f = precision bits): q = round(clip(x) * 2^f), an integer with
|q| <= M = ceil(clip * 2^f). Its aggregation weight w (an example count) is
clipped to [0, W] and rounded to an integer q_w. The client sends q_w * q for
each coordinate and q_w for each leaf, so the server's exact integer sums give
the weighted mean sum q_w q / (2^f sum q_w). Each sum over n clients lies in
[-n W M, n W M], which the ring holds without wrapping iff 2 n W M < 2^b:

    b = bit_length(2 n W M) = floor(log2(2 n W M)) + 1,   M = ceil(clip * 2^f),

plus `headroom_bits` for noise added in the integer domain. Integers are mapped
to the ring in two's complement (q mod 2^b) and the sum is read back as signed.

Quantisation error: with |x| <= clip and integer weights, every encoded
coordinate is within 2^-(f+1) of x, so the decoded weighted mean is within
2^-(f+1) of the float weighted mean (plus float32 rounding of the division).
Clipped coordinates are counted and reported.
"""

import math

import jax
import jax.numpy as jnp

from fedjax_m3t.secure import masking


def magnitude(clip: float, precision_bits: int) -> int:
    """M = ceil(clip * 2^f), the largest |q| of an encoded coordinate."""
    return math.ceil(clip * 2**precision_bits)


def required_bits(
    clip: float, precision_bits: int, weight_bound: int, num_clients: int, headroom_bits: int = 0
) -> int:
    """The fewest ring bits b with 2 n W M < 2^b (see the module docstring)."""
    bound = 2 * num_clients * weight_bound * magnitude(clip, precision_bits)
    return bound.bit_length() + headroom_bits


def largest_precision(
    clip: float, weight_bound: int, num_clients: int, bits: int, headroom_bits: int = 0
) -> int:
    """The largest precision f whose sums fit in `bits` (ValueError if none >= 0 does)."""
    f = 0
    if required_bits(clip, 0, weight_bound, num_clients, headroom_bits) > bits:
        raise ValueError(
            f"A {bits}-bit ring cannot hold the sum of {num_clients} clients with weights "
            f"<= {weight_bound} and clip {clip} even at precision 0."
        )
    while required_bits(clip, f + 1, weight_bound, num_clients, headroom_bits) <= bits:
        f += 1
    return f


def encode(values: jax.Array, clip: float, precision_bits: int) -> jax.Array:
    """int32 q = round(clip(x, -clip, clip) * 2^f) of float [...]."""
    values = jnp.clip(values.astype(jnp.float32), -clip, clip)
    return jnp.round(values * 2.0**precision_bits).astype(jnp.int32)


def encode_weights(weights: jax.Array, weight_bound: int) -> jax.Array:
    """int32 round(clip(w, 0, W))."""
    return jnp.round(jnp.clip(weights.astype(jnp.float32), 0.0, weight_bound)).astype(jnp.int32)


def to_ring(q: jax.Array, bits: int) -> jax.Array:
    """Signed int32 -> uint32 on Z_{2^b} (two's complement, q mod 2^b)."""
    ring = jax.lax.bitcast_convert_type(q.astype(jnp.int32), jnp.uint32)
    return ring & jnp.uint32(masking.ring_mask(bits))


def from_ring(total: jax.Array, bits: int) -> jax.Array:
    """uint32 on Z_{2^b} -> the signed int32 in [-2^(b-1), 2^(b-1)) it represents."""
    shift = 32 - bits
    widened = jax.lax.shift_left(total.astype(jnp.uint32), jnp.uint32(shift))
    return jax.lax.shift_right_arithmetic(
        jax.lax.bitcast_convert_type(widened, jnp.int32), jnp.int32(shift)
    )
