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
"""Model-update attacks by the attacking institutions, without forking the engine.

Per-client attacks change what an attacker's client sends, in its client update
(`with_update_attack` wraps `FederatedAlgorithm.client_update`), so the round's
guard (aggregation/guard.py) screens them like any update:

  * 'sign_flip': the attacker sends -scale * its honest delta (scale default 1);
  * 'scale': the attacker sends scale * its honest delta (a boosted update; default 10).

Colluding attacks need the honest updates' statistics, so they act on the
cohort's stacked updates at the aggregator (a stacked wrapper of it; a streaming
rule runs through aggregation.base.as_stacked). Threat model: the attackers are
omniscient about this round's honest updates (the worst case, as in Baruch et al.'s
analysis; their experiments estimate the same statistics from the attackers' own
benign data). They run after the guard, and send finite vectors inside the
honest spread by design. Per coordinate, over the rows that trained the leaf:

  * 'alie' (Baruch, Baruch and Goldberg, 2019, "A Little Is Enough: Circumventing
    Defenses For Distributed Learning", NeurIPS): with n rows, f of them attackers,
    s = floor(n/2 + 1) - f and z = Phi^-1((n - s) / n), every attacker sends
    mu + sign * z * sigma (mu, sigma: mean and standard deviation of the honest
    rows; sign -1 by default). s is clipped to [1, n - 1] so that z stays finite
    when attackers are a majority;
  * 'ipm' (Xie, Koyejo and Gupta, 2020, "Fall of Empires: Breaking Byzantine-tolerant
    SGD by Inner Product Manipulation", UAI): every attacker sends -eps * mu.
"""

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.algorithms import base

CLIENT_ATTACKS = ("sign_flip", "scale")
COHORT_ATTACKS = ("alie", "ipm")
ATTACKS = CLIENT_ATTACKS + COHORT_ATTACKS


def is_attacker(attackers: np.ndarray, client_id: jax.Array) -> jax.Array:
    """bool, shaped like client_id: whether each id is an attacker (False past the end)."""
    return jnp.take(jnp.asarray(attackers, bool), client_id, mode="fill", fill_value=False)


def alie_z(n: jax.Array, f: jax.Array) -> jax.Array:
    """ALIE's z = Phi^-1((n - s) / n), s = floor(n/2 + 1) - f clipped to [1, n - 1]."""
    n = n.astype(jnp.float32)
    s = jnp.clip(jnp.floor(n / 2 + 1) - f, 1.0, jnp.maximum(n - 1, 1.0))
    return jax.scipy.special.ndtri((n - s) / jnp.maximum(n, 1.0))


def collude(
    updates: aggregation_base.StackedUpdates,
    attackers: np.ndarray,
    attack: str,
    *,
    eps: float = 0.5,
    sign: float = -1.0,
) -> aggregation_base.StackedUpdates:
    """The cohort's updates with the attackers' rows replaced (see the module docstring).

    Args:
      updates: rows [k, ...], per-leaf weights [k] and client ids [k].
      attackers: bool [num_clients].
      attack: 'alie' or 'ipm'.
      eps: IPM's scale.
      sign: ALIE's direction (+1 or -1).

    Returns:
      The updates, the attackers' rows crafted, weights unchanged.

    Raises:
      ValueError: if the updates carry no client ids.
    """
    if updates.client_id is None:
        raise ValueError("Colluding attacks need StackedUpdates.client_id (the round fills it).")
    bad = is_attacker(attackers, updates.client_id)

    def craft(x, w):
        rows = lambda m: m.reshape((-1,) + (1,) * (x.ndim - 1))
        x32 = x.astype(jnp.float32)
        honest = (w > 0) & ~bad
        count = jnp.maximum(jnp.sum(honest.astype(jnp.float32)), 1.0)
        mu = jnp.sum(jnp.where(rows(honest), x32, 0.0), axis=0) / count
        var = jnp.sum(jnp.where(rows(honest), jnp.square(x32 - mu), 0.0), axis=0) / count
        if attack == "alie":
            z = alie_z(jnp.sum(w > 0), jnp.sum((w > 0) & bad).astype(jnp.float32))
            crafted = mu + sign * z * jnp.sqrt(var)
        else:
            crafted = -eps * mu
        return jnp.where(rows(bad), crafted.astype(x.dtype), x)

    return updates._replace(delta=jax.tree.map(craft, updates.delta, updates.weight))


def with_update_attack(
    algorithm: base.FederatedAlgorithm,
    attackers: np.ndarray,
    attack: str,
    *,
    scale: float | None = None,
    eps: float = 0.5,
    sign: float = -1.0,
) -> base.FederatedAlgorithm:
    """The algorithm with the attackers' updates attacked.

    Args:
      algorithm: the honest algorithm.
      attackers: bool [num_clients] (attacks.selection.choose_attackers).
      attack: one of ATTACKS.
      scale: 'sign_flip' sends -scale * delta (default 1), 'scale' scale * delta
        (default 10).
      eps, sign: IPM's scale and ALIE's direction.

    Returns:
      The algorithm with a wrapped client_update (per-client attacks) or aggregator
      (colluding attacks, stacked mode).

    Raises:
      ValueError: for an unknown attack.
    """
    if attack not in ATTACKS:
        raise ValueError(f"Unknown attack {attack!r}; choose one of {ATTACKS}.")
    attackers = np.asarray(attackers, bool)
    if attack in CLIENT_ATTACKS:
        factor = (-1.0 if attack == "sign_flip" else 1.0) * (
            scale if scale is not None else (1.0 if attack == "sign_flip" else 10.0)
        )
        honest_update = algorithm.client_update

        def client_update(received, client_state, examples, context):
            out = honest_update(received, client_state, examples, context)
            bad = is_attacker(attackers, context.client_id)
            delta = jax.tree.map(
                lambda d: jnp.where(bad, (factor * d).astype(d.dtype), d), out.delta
            )
            return out._replace(delta=delta)

        return algorithm._replace(client_update=client_update)

    inner = aggregation_base.as_stacked(algorithm.aggregator)

    def finalize(updates, agg_state, rng):
        attacked = collude(updates, attackers, attack, eps=eps, sign=sign)
        return inner.finalize(attacked, agg_state, rng)

    aggregator = aggregation_base.stacked_aggregator(finalize, inner.init_state)
    return algorithm._replace(aggregator=aggregator)
