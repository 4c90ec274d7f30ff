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
"""User-level DP-FedAvg as an Aggregator: clip, sum, noise, fixed denominator.

McMahan, Ramage, Talwar and Zhang 2018, "Learning Differentially Private
Recurrent Language Models" (arXiv:1710.06963), with adaptive clipping from
Andrew, Thakkar, McMahan and Ramaswamy 2021, "Differentially Private Learning
with Adaptive Clipping" (arXiv:1905.03871), as TFF's
`DifferentiallyPrivateFactory.gaussian_adaptive` implements it.

One round, for the cohort's clients c (padding and ineligible slots excluded):

    clipped_c = delta_c * min(1, C / ||delta_c||)        (per module: C_m = C sqrt(s_m))
    delta     = (sum_c clipped_c + N(0, (z_v C)^2 I)) / K

with K the *expected* cohort size (a public constant, not the number that
arrived: a data-dependent denominator would need its own noise) and z_v = z
(fixed clip) or the adaptive-clipping correction below. The result goes to the
server optimizer as the pseudo-gradient (any of algorithms/server_optimizers.py),
so the pipeline reads like optax: clip -> sum -> noise -> server optimizer.

Design decisions:

  * every client weighs the same (1 if it took part, 0 for padding): example
    counts would raise the sensitivity to the largest institution's size, and
    the engine's per-module weights (local_training.leaf_weights) would reveal
    which modalities and tasks a school holds;
  * `Aggregate.weight` is K on every federated leaf: noise is added to all of
    them, so all must update (the lazy server optimizer skips weight-0 leaves,
    and skipping exactly the leaves nobody trained would leak that nobody did).
    A module the federation should not move must be frozen in the policy;
  * per-module clipping splits the squared clip: C_m^2 = s_m C^2 with shares s_m
    summing to 1, so the whole update's norm is still at most C and the same
    noise z C on every coordinate gives the same guarantee as global clipping;
  * adaptive clipping: each participant also reports b_c = 1[unclipped] - 0.5
    (sensitivity 0.5), summed with noise N(0, sigma_b^2), sigma_b =
    clipped_count_stddev (default 0.05 K); b = clip(sum / K + 0.5, 0, 1) and
    C <- C exp(-eta (b - gamma)). The value noise is corrected to
    z_v = (z^-2 - (2 sigma_b)^-2)^(-1/2), so the two Gaussian queries together
    cost exactly one Gaussian of multiplier z (accounting.py accounts z);
    z >= 2 sigma_b is an error (no budget would be left for the values);
  * clipping runs in `accumulate`, i.e. on each client's update before it is
    summed: in a deployment it would run on the client. The noise is added by
    the server (the trusted-aggregator model); secure aggregation is not
    simulated.

The clip lives in the aggregator state (`ServerState.agg_state`, `DPState`), so
it is checkpointed and resumed with the run.
"""

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base, selective


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptiveClipping:
    """Andrew et al. (2021)'s geometric quantile tracking of the clip.

    Attributes:
      target_quantile: gamma, the fraction of updates meant to be unclipped.
      learning_rate: eta of C <- C exp(-eta (b - gamma)).
      clipped_count_stddev: sigma_b, the noise std of the unclipped count (None:
        0.05 x the expected cohort size, TFF's default).
    """

    target_quantile: float = 0.5
    learning_rate: float = 0.2
    clipped_count_stddev: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPConfig:
    """Central DP-FedAvg settings.

    Attributes:
      noise_multiplier: z: the noise std over the clip (0: no noise).
      clip: the L2 clip C of each client's update (the initial one when adaptive);
        inf disables clipping (only sensible with z = 0).
      expected_cohort_size: K, the fixed denominator (clients per round, or
        sampling rate x clients).
      per_module: {module glob: share of C^2} for per-module clipping (shares sum to
        1; every federated leaf must match one glob, the first that matches wins);
        None: one global clip.
      adaptive: adaptive clipping, or None for a fixed clip.
    """

    noise_multiplier: float
    clip: float
    expected_cohort_size: int
    per_module: Mapping[str, float] | None = None
    adaptive: AdaptiveClipping | None = None

    def __post_init__(self):
        if self.noise_multiplier < 0 or not self.clip > 0 or self.expected_cohort_size < 1:
            raise ValueError(
                "DP-FedAvg needs noise_multiplier >= 0, clip > 0 and expected_cohort_size >= 1; "
                f"got {self.noise_multiplier}, {self.clip}, {self.expected_cohort_size}."
            )
        if self.per_module is not None:
            shares = list(self.per_module.values())
            if not shares or min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-6:
                raise ValueError(
                    f"per_module shares of the squared clip must be > 0 and sum to 1; got "
                    f"{dict(self.per_module)}."
                )
        if self.adaptive is not None:
            value_noise_multiplier(self)  # Raises if z >= 2 sigma_b.

    @property
    def clipped_count_stddev(self) -> float:
        """sigma_b (adaptive only)."""
        given = self.adaptive.clipped_count_stddev if self.adaptive else None
        return 0.05 * self.expected_cohort_size if given is None else given


def equal_shares(patterns: tuple[str, ...] | list[str]) -> dict[str, float]:
    """{pattern: 1 / len(patterns)}: the squared clip split equally between modules."""
    return {p: 1.0 / len(patterns) for p in patterns}


def value_noise_multiplier(config: DPConfig) -> float:
    """z_v: z itself, or with adaptive clipping (z^-2 - (2 sigma_b)^-2)^(-1/2).

    >>> value_noise_multiplier(DPConfig(noise_multiplier=1.0, clip=1.0,
    ...     expected_cohort_size=100, adaptive=AdaptiveClipping()))  # doctest: +ELLIPSIS
    1.00503781...

    Raises:
      ValueError: with adaptive clipping, if z >= 2 sigma_b.
    """
    z = config.noise_multiplier
    if config.adaptive is None or z == 0:
        return z
    sigma_b = config.clipped_count_stddev
    if z >= 2 * sigma_b:
        raise ValueError(
            f"Adaptive clipping needs noise_multiplier ({z}) < 2 x clipped_count_stddev "
            f"({2 * sigma_b}): the count query would use the whole budget."
        )
    return (z**-2 - (2 * sigma_b) ** -2) ** -0.5


class DPState(NamedTuple):
    """The aggregator state: this round's clip (float32 scalar; fixed unless adaptive)."""

    clip: jax.Array


class DPAccumulator(NamedTuple):
    """Running sums of one round.

    Attributes:
      total: sum of the participants' clipped deltas, float32, the delta's structure.
      unclipped: float32 scalar, sum of (1[unclipped] - 0.5) over participants.
      clip: float32 scalar, this round's clip (from DPState).
    """

    total: t.PyTree
    unclipped: jax.Array
    clip: jax.Array


def _groups(config: DPConfig, deltas: t.PyTree) -> tuple[list[int], list[float]]:
    """Each leaf's clip group (flatten order) and each group's share of C^2."""
    paths = tree.leaf_paths(deltas)
    if config.per_module is None:
        return [0] * len(paths), [1.0]
    patterns = list(config.per_module)
    groups = []
    for path in paths:
        hit = [i for i, p in enumerate(patterns) if tree.path_matches(p, path)]
        if not hit:
            raise ValueError(
                f"Federated parameter {path!r} matches no per-module clip pattern {patterns}."
            )
        groups.append(hit[0])
    unused = [p for i, p in enumerate(patterns) if i not in groups]
    if unused:
        raise ValueError(f"Per-module clip patterns {unused} matched no parameter.")
    return groups, [config.per_module[p] for p in patterns]


def clip_factors(
    deltas: t.PyTree, clip: jax.Array, groups: list[int], shares: list[float]
) -> tuple[t.PyTree, jax.Array]:
    """Each client's L2 clip factor min(1, C_g / ||delta_g||), per leaf.

    Args:
      deltas: leaves [k, ...], k clients' updates.
      clip: float32 scalar C.
      groups: each leaf's group (flatten order); group g's clip is C sqrt(shares[g]).
      shares: each group's share of C^2.

    Returns:
      (factors: float32 [k] per leaf (deltas' structure), exactly 1 for C = inf and
      for zero updates; unclipped: bool [k], no group was clipped).
    """
    leaves, treedef = jax.tree.flatten(deltas)
    k = leaves[0].shape[0]
    sq = [jnp.zeros((k,), jnp.float32) for _ in shares]
    for g, x in zip(groups, leaves, strict=True):
        sq[g] = sq[g] + jnp.sum(jnp.square(x.astype(jnp.float32)).reshape(k, -1), axis=1)
    limits = [clip * jnp.sqrt(jnp.float32(s)) for s in shares]
    norms = [jnp.sqrt(s) for s in sq]
    factors = [jnp.minimum(1.0, c / n) for c, n in zip(limits, norms, strict=True)]
    unclipped = jnp.all(jnp.stack([n <= c for c, n in zip(limits, norms, strict=True)]), axis=0)
    return treedef.unflatten([factors[g] for g in groups]), unclipped


def clip_updates(
    deltas: t.PyTree, clip: jax.Array, groups: list[int], shares: list[float]
) -> tuple[t.PyTree, jax.Array]:
    """Clips each client's update in L2 (per clip group); see `clip_factors`.

    Returns:
      (clipped deltas [k, ...] at least float32, unclipped bool [k]).
    """
    factors, unclipped = clip_factors(deltas, clip, groups, shares)

    def scale(x, f):
        return x.astype(jnp.promote_types(x.dtype, jnp.float32)) * f.reshape(
            (-1,) + (1,) * (x.ndim - 1)
        )

    return jax.tree.map(scale, deltas, factors), unclipped


def dp_aggregator(config: DPConfig) -> base.Aggregator:
    """DP-FedAvg's clip -> sum -> noise -> fixed-denominator mean, as a streaming Aggregator.

    >>> aggregator = dp_aggregator(DPConfig(noise_multiplier=1.0, clip=0.5,
    ...                                     expected_cohort_size=10))
    >>> aggregator.init_state({'w': jnp.zeros(3)}).clip.tolist()
    0.5

    Args:
      config: the DP settings.

    Returns:
      The Aggregator (state `DPState`); pass it to fed_opt / registry.build_algorithm.

    Raises:
      ValueError: for invalid settings (see DPConfig), or, when traced, a
        per-module pattern that matches no federated leaf.
    """
    z_value = value_noise_multiplier(config)
    denominator = float(config.expected_cohort_size)

    def init_state(delta_template):
        del delta_template  # Unused: the clip is one scalar.
        return DPState(clip=jnp.asarray(config.clip, jnp.float32))

    def init(delta_template):
        total = jax.tree.map(
            lambda x: jnp.zeros(x.shape, jnp.promote_types(x.dtype, jnp.float32)), delta_template
        )
        zero = jnp.zeros((), jnp.float32)
        return DPAccumulator(total, zero, jnp.asarray(config.clip, jnp.float32))

    def begin_round(acc, agg_state):
        return acc._replace(clip=agg_state.clip.astype(jnp.float32))

    def accumulate(acc, deltas, weights):
        # A slot takes part when it trained anything (padding / ineligible slots weigh 0).
        took_part = jnp.zeros(jax.tree.leaves(deltas)[0].shape[:1], bool)
        for w in jax.tree.leaves(weights):
            took_part = took_part | (w > 0)
        factors, unclipped = clip_factors(deltas, acc.clip, *_groups(config, deltas))
        # Weight 1 x the clip factor where the client trained the leaf (an untrained
        # leaf's delta is 0 under the engine's optimizers, so leaving it out changes no
        # value; either way a client adds at most C in norm). Built from each leaf's own
        # weights, the sum is the non-DP mean's op for op (XLA then merges and orders
        # the sums alike), so z = 0 and clip = inf give FedAvg bit for bit.
        clip_weights = jax.tree.map(lambda w, f: (w > 0).astype(jnp.float32) * f, weights, factors)
        summed = tree.weighted_sum(clip_weights, deltas, min_dtype=jnp.float32)
        took_part = took_part.astype(jnp.float32)
        return acc._replace(
            total=jax.tree.map(jnp.add, acc.total, summed),
            unclipped=acc.unclipped + jnp.sum(took_part * (unclipped.astype(jnp.float32) - 0.5)),
        )

    def merge_across(acc, axis):
        # The clip is the same on every device: pmax makes it device-invariant.
        return DPAccumulator(
            total=jax.lax.psum(acc.total, axis),
            unclipped=jax.lax.psum(acc.unclipped, axis),
            clip=jax.lax.pmax(acc.clip, axis),
        )

    def finalize(acc, agg_state, rng):
        value_key, count_key = jax.random.split(rng)
        total = acc.total
        if z_value > 0:  # Static: z = 0 adds nothing (not even -0.0 -> +0.0 changes).
            leaves, treedef = jax.tree.flatten(total)
            keys = jax.random.split(value_key, len(leaves))
            std = z_value * agg_state.clip
            total = treedef.unflatten(
                [
                    x + std * jax.random.normal(key, x.shape, x.dtype)
                    for x, key in zip(leaves, keys, strict=True)
                ]
            )
        # The non-DP mean's own division (selective.mean_of), by K kept opaque to XLA
        # (a barrier: a constant K would be folded into another rounding), so that
        # z = 0 and clip = inf give FedAvg bit for bit.
        k = jax.lax.optimization_barrier(jnp.float32(denominator))
        weight = jax.tree.map(lambda _: k, total)
        aggregate = selective.mean_of(selective.Accumulator(weighted_delta=total, weight=weight))
        new_state = agg_state
        if config.adaptive is not None:
            new_state = DPState(clip=_next_clip(config, agg_state.clip, acc.unclipped, count_key))
        return aggregate, new_state

    return base.Aggregator(
        init_state=init_state,
        init=init,
        accumulate=accumulate,
        merge_across=merge_across,
        finalize=finalize,
        begin_round=begin_round,
    )


def _next_clip(
    config: DPConfig, clip: jax.Array, unclipped: jax.Array, rng: t.PRNGKey
) -> jax.Array:
    """C exp(-eta (b - gamma)), b the noised unclipped fraction in [0, 1]."""
    adaptive = config.adaptive
    noised = unclipped + config.clipped_count_stddev * jax.random.normal(rng, (), jnp.float32)
    fraction = jnp.clip(noised / config.expected_cohort_size + 0.5, 0.0, 1.0)
    return clip * jnp.exp(-adaptive.learning_rate * (fraction - adaptive.target_quantile))
