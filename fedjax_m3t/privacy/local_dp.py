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
"""Local differential privacy: clip and noise each update on the client, before it leaves.

For institutions that do not trust the server (Truex et al., 2020, LDP-Fed,
arXiv:2006.03637; the Gaussian mechanism of Dwork & Roth, 2014). The client's
delta (all federated leaves together) is scaled to L2 norm at most C and
N(0, z^2 C^2) noise is added to every coordinate:

    delta' = delta * min(1, C / ||delta||) + N(0, z^2 C^2 I).

It is fed_opt's `client_transform` (`local_dp_transform`), which runs on the
client with its own key (fold_in(client key, TRANSFORM_TAG)), or `privatize` with
per-institution values (privacy/policies.py). With z = 0 and C = inf the update
is returned unchanged, bit for bit.

What is guaranteed: each message is (epsilon, delta)-DP with respect to the
institution's whole data set (any two data sets of the institution: the
replace-one relation, sensitivity 2C, so the accountant sees a noise multiplier
z / 2), composed over the rounds it took part in, whatever the server does
(`local_epsilon`). The aggregation weights (`ClientOutput.weight`, example
counts per module) are released as they are unless `equal_weights` is set; the
round's training metrics are not privatised (a simulation reports them).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.privacy import dp_sgd

GaussianEpsilonFn = Callable[..., float]
"""gaussian_epsilon(noise_multiplier, *, count, delta) -> epsilon."""


def clip_update(delta: t.PyTree, clip: jax.typing.ArrayLike) -> tuple[t.PyTree, jax.Array]:
    """Scales `delta` (all leaves together) to L2 norm at most `clip`.

    Args:
      delta: a pytree of arrays (None leaves are skipped).
      clip: scalar C > 0 (inf: unchanged, bit for bit).

    Returns:
      (clipped delta, its norm before clipping, float32 scalar).
    """
    norm = tree.l2_norm(delta)
    factor = jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-30))
    # where(): with factor 1 the leaves are returned as they are, not multiplied.
    clipped = jax.tree.map(lambda x: jnp.where(factor < 1, x * factor.astype(x.dtype), x), delta)
    return clipped, norm


def privatize(
    output: base.ClientOutput,
    rng: t.PRNGKey,
    clip: jax.typing.ArrayLike,
    noise_multiplier: jax.typing.ArrayLike,
    *,
    equal_weights: bool = False,
) -> base.ClientOutput:
    """The local Gaussian mechanism on one client's output.

    Args:
      output: the client's output (delta: federated leaves, None elsewhere).
      rng: the client's transform key (used once).
      clip: C (traced values allowed, e.g. an institution's own).
      noise_multiplier: z (std z * C per coordinate); 0 adds nothing.
      equal_weights: give every leaf weight 1 (the weights then reveal nothing of
        the institution's size or modalities, and the server's mean is a plain
        mean over clients); False keeps the example counts.

    Returns:
      The output with its delta clipped and noised.
    """
    clipped, _ = clip_update(output.delta, clip)
    z = jnp.asarray(noise_multiplier, jnp.float32)
    std = jnp.where(z > 0, z * clip, 0.0)
    noise = dp_sgd.gaussian_noise(rng, clipped, std)
    delta = jax.tree.map(lambda x, n: jnp.where(std > 0, x + n, x), clipped, noise)
    weight = output.weight
    if equal_weights:
        weight = jax.tree.map(jnp.ones_like, weight)
    return output._replace(delta=delta, weight=weight)


def local_dp_transform(
    clip: float, noise_multiplier: float, *, equal_weights: bool = False
) -> Callable[[base.ClientOutput, t.PRNGKey], base.ClientOutput]:
    """Local DP as fed_opt's `client_transform`.

    >>> transform = local_dp_transform(clip=1.0, noise_multiplier=1.0)

    Args:
      clip: C > 0 (inf: no clipping).
      noise_multiplier: z >= 0.
      equal_weights: see `privatize`.

    Raises:
      ValueError: for C <= 0 or z < 0.
    """
    if not clip > 0 or not noise_multiplier >= 0:
        raise ValueError(f"Local DP needs clip > 0 and noise >= 0, got {clip}, {noise_multiplier}.")

    def transform(output, rng):
        return privatize(output, rng, clip, noise_multiplier, equal_weights=equal_weights)

    return transform


def local_epsilon(
    accountant: GaussianEpsilonFn, *, noise_multiplier: float, rounds: int, delta: float
) -> float:
    """An institution's epsilon after `rounds` locally privatised messages.

    Args:
      accountant: gaussian_epsilon(z, *, count, delta) -> epsilon for `count`
        Gaussian mechanisms of sensitivity 1 and std z (privacy/accounting.py, injected).
      noise_multiplier: z of the local mechanism (std z * C).
      rounds: messages it sent.
      delta: the target delta.

    Returns:
      epsilon of the replace-one relation (sensitivity 2C: multiplier z / 2); 0 for
      no round, inf for z = 0.
    """
    if rounds <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return float("inf")
    return float(accountant(noise_multiplier / 2, count=rounds, delta=delta))
