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
"""Aggregation of LoRA adapters trained at different ranks (heterogeneous compute).

A constrained institution trains a LoRA adapter of smaller rank r_i: A_i [d_in, r_i],
B_i [r_i, d_out], update A_i B_i. Two rules:

  * `zero_pad_mean` (HetLoRA, Cho et al. 2024, arXiv:2401.06432): pad every A_i with
    zero columns and B_i with zero rows to the largest rank, average A and B
    separately; client i then takes the first r_i columns / rows (`truncate`).
    Cheap and factored (the server holds rank r_max), but the mean of the factors
    is not the mean of the products: it is biased (tests: 10.5 against 14.5).
  * `product_mean`: the weighted mean of the products A_i B_i [d_in, d_out], exact
    for the update; `refactor` gives each client the best rank-r_i factorisation
    (truncated SVD, Eckart-Young) of it.

Default: `product_mean`, since it aggregates what the adapters compute (the
update) exactly, and the models here are small enough for the d_in x d_out
matrix; zero padding is for adapters whose full product does not fit.
"""

from collections.abc import Sequence

import jax.numpy as jnp

RULES = ("product", "zero_pad")
DEFAULT_RULE = "product"


def zero_pad_mean(
    a: Sequence, b: Sequence, weights: Sequence[float]
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """HetLoRA: factors A_i [d_in, r_i], B_i [r_i, d_out] zero-padded to max r_i, averaged.

    Returns:
      (A [d_in, r_max], B [r_max, d_out]), each the weights-weighted mean.
    """
    r_max = max(x.shape[1] for x in a)
    w = jnp.asarray(weights, jnp.float32)
    pad_a = jnp.stack([jnp.pad(x, ((0, 0), (0, r_max - x.shape[1]))) for x in a])
    pad_b = jnp.stack([jnp.pad(x, ((0, r_max - x.shape[0]), (0, 0))) for x in b])
    mean = lambda x: jnp.tensordot(w, x, axes=1) / jnp.sum(w)
    return mean(pad_a), mean(pad_b)


def truncate(a: jnp.ndarray, b: jnp.ndarray, rank: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """HetLoRA's rank-r share of padded factors: A[:, :r], B[:r]."""
    return a[:, :rank], b[:rank]


def product_mean(a: Sequence, b: Sequence, weights: Sequence[float]) -> jnp.ndarray:
    """The weighted mean of the products A_i B_i: [d_in, d_out] (exact for the update)."""
    w = jnp.asarray(weights, jnp.float32)
    products = jnp.stack([x @ y for x, y in zip(a, b, strict=True)])
    return jnp.tensordot(w, products, axes=1) / jnp.sum(w)


def refactor(delta: jnp.ndarray, rank: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The best rank-r factors (A [d_in, r], B [r, d_out]) of delta [d_in, d_out] (SVD).

    Singular values are split evenly (A = U sqrt(S), B = sqrt(S) V^T); ranks above
    min(d_in, d_out) are padded with zeros.
    """
    u, s, vt = jnp.linalg.svd(delta, full_matrices=False)
    k = min(rank, s.shape[0])
    root = jnp.sqrt(s[:k])
    a = u[:, :k] * root
    b = root[:, None] * vt[:k]
    return jnp.pad(a, ((0, 0), (0, rank - k))), jnp.pad(b, ((0, rank - k), (0, 0)))
