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
"""Secure aggregation as an Aggregator of the round (stacked mode), with dropouts.

The weighted selective mean of aggregation/selective.py, computed so that the
server sees only masked vectors and their sum (protocol.py: Bonawitz et al.,
2017, eprint 2017/281; SecAgg+, Bell et al., 2020, eprint 2020/704).

Stacked mode: `finalize` receives every cohort slot's delta and per-leaf weight
(aggregation/base.py; the round joins the devices' rows, so it runs the same on 1
and on D devices). Slots whose weights are all 0 (padding, clients with nothing
to send) are not participants. Each participant u encodes (quantize.py), for
every leaf l it trained (w_ul > 0), round(w_ul) * round(clip(delta_ul) 2^f) and
round(w_ul); a leaf it did not train (a module its institution does not share,
a modality it lacks) is not in its masked vector: the leaf is a segment whose
masks involve only its holders. The secure sums give
sum_u w_ul delta_ul and sum_u w_ul per leaf, hence the selective mean, exactly
up to quantisation (error <= 2^-(f+1) per coordinate when nothing is clipped).

Dropouts: a fraction `dropout` of the participants (round(dropout * m) of the m,
chosen with the aggregator's key) drop after training and before sending; the
sum is then over the survivors, whose personal states the round still writes.

Failure: when some needed secret has fewer surviving share holders than its
threshold, the protocol aborts. Inside the jitted round this cannot raise: the
aggregate then has weight 0 on every leaf, so the lazy server step leaves the
params and optimizer state unchanged (only `round` advances), and
`SecAggState.aborted` is set. On the host, `check(agg_state)` (or `abort_hook`
in simulation.run's hooks) raises SecAggAbortedError with the numbers.

Central DP composes through two hooks, both run on each client's row before
masking: `client_noise` on the float update before quantisation (each client's
share of the noise), `integer_noise` on the integers after it (discrete noise,
e.g. Kairouz et al. 2021); give `headroom_bits` for the noise's range. Built in:
`SecAggConfig.skellam_std`, Skellam noise on the integers whose secure sum has
the target std (skellam_rows).
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base, selective
from fedjax_m3t.secure import graph as graph_lib
from fedjax_m3t.secure import protocol as protocol_lib
from fedjax_m3t.secure import quantize

FloatNoise = Callable[[jax.Array, jax.Array, t.PRNGKey], jax.Array]
"""(float32 [k, dim] client rows, bool [k] participants, key) -> float32 [k, dim]."""

IntegerNoise = Callable[[jax.Array, jax.Array, t.PRNGKey], jax.Array]
"""(int32 [k, dim] encoded rows, bool [k] participants, key) -> int32 [k, dim]."""

# fold_in tags of the aggregator's key.
_DROPOUT_TAG, _PROTOCOL_TAG, _NOISE_TAG, _LATE_TAG = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecAggConfig:
    """Secure aggregation settings.

    Attributes:
      clip: per-coordinate clip of the deltas before encoding.
      precision_bits: f, the fixed-point grid 2^-f (None: the most that `bits` allows).
      weight_bound: W, the largest aggregation weight (weights are clipped to it).
      bits: ring bits b <= 32 (None: the fewest that cannot wrap, quantize.required_bits).
      graph: 'complete' (SecAgg) or 'harary' (SecAgg+).
      degree: the SecAgg+ graph's even degree.
      threshold: fraction of a client's neighbours needed to reconstruct its secrets.
      dropout: fraction of the participants that drop before sending.
      late_dropout: fraction of the senders that drop after sending their masked
        vector, before the unmasking (their inputs stay in the sum; protocol.py).
      limbs: field elements per secret.
      headroom_bits: extra ring bits for integer-domain noise.
      skellam_std: sigma > 0 adds discrete Skellam noise (skellam_rows) to the value
        coordinates of each participant's integer row, so that the secure sum of
        each coordinate of sum_u w_u x_u carries noise of std sigma (float units);
        give headroom_bits for its range (about log2(6 sigma 2^f) bits more).
      client_noise: float noise hook, before quantisation (see the module docstring).
      integer_noise: integer noise hook, after quantisation.
    """

    clip: float = 1.0
    precision_bits: int | None = 16
    weight_bound: int = 1024
    bits: int | None = None
    graph: str = "complete"
    degree: int = 8
    threshold: float = 0.5
    dropout: float = 0.0
    late_dropout: float = 0.0
    limbs: int = 2
    headroom_bits: int = 0
    skellam_std: float = 0.0
    client_noise: FloatNoise | None = None
    integer_noise: IntegerNoise | None = None


class SecAggState(NamedTuple):
    """The aggregator's record of the last round (ServerState.agg_state).

    Attributes:
      aborted: bool scalar, the last round aborted (the server state was kept).
      aborted_rounds: int32, rounds aborted so far.
      survivors: int32, clients whose masked vector was summed last round.
      dropped: int32, participants that dropped last round.
      worst_holders: int32, surviving share holders of the worst-off client.
      worst_threshold: int32, that client's threshold.
      clipped: int32, coordinates clipped by the encoding last round, summed over
        clients (a simulation diagnostic; a deployment would secure-sum it too, as
        TFF's SecureSumFactory does with its clipped counts).
    """

    aborted: jax.Array
    aborted_rounds: jax.Array
    survivors: jax.Array
    dropped: jax.Array
    worst_holders: jax.Array
    worst_threshold: jax.Array
    clipped: jax.Array


class SecAggAbortedError(RuntimeError):
    """Secure aggregation could not unmask the sum (too many dropouts)."""


def init_state(delta_template: t.PyTree) -> SecAggState:
    """All-zero record."""
    del delta_template  # Unused: the record does not depend on the model.
    zero = jnp.zeros((), jnp.int32)
    return SecAggState(jnp.zeros((), bool), zero, zero, zero, zero, zero, zero)


def resolve_bits(config: SecAggConfig, num_slots: int) -> tuple[int, int]:
    """(ring bits b, precision bits f) for a cohort of `num_slots` slots.

    Raises:
      ValueError: when the sum cannot fit in the ring (the message says what to lower).
    """
    n, w, clip, extra = num_slots, config.weight_bound, config.clip, config.headroom_bits
    if config.precision_bits is None:
        bits = config.bits or 32
        return bits, quantize.largest_precision(clip, w, n, bits, extra)
    needed = quantize.required_bits(clip, config.precision_bits, w, n, extra)
    bits = config.bits or needed
    if needed > min(bits, 32):
        raise ValueError(
            f"Secure aggregation of {n} slots with clip {clip}, precision 2^-"
            f"{config.precision_bits} and weights <= {w} needs a {needed}-bit ring "
            f"(b = bit_length(2 n W ceil(clip 2^f)) + headroom), more than "
            f"{min(bits, 32)}: lower the precision, the clip or the weight bound."
        )
    return bits, config.precision_bits


def _layout(leaves: list[jax.Array]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Segment (leaf index) of every coordinate of [values..., weights], and leaf shapes."""
    shapes = [x.shape[1:] for x in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    segment = np.concatenate(
        [np.full(size, i, np.int32) for i, size in enumerate(sizes)]
        + [np.arange(len(leaves), dtype=np.int32)]
    )
    return segment, shapes


def _dropouts(key: t.PRNGKey, participants: jax.Array, rate: float) -> jax.Array:
    """round(rate * m) of the m participants, uniformly at random: bool [k]."""
    count = jnp.round(rate * jnp.sum(participants)).astype(jnp.int32)
    return participants & (graph_lib.ring_positions(key, participants) < count)


def encode_rows(
    config: SecAggConfig,
    deltas: jax.Array,
    weights: jax.Array,
    segment: np.ndarray,
    participants: jax.Array,
    precision_bits: int,
    key: t.PRNGKey,
) -> tuple[jax.Array, jax.Array]:
    """Each client's integer row [round(w) q..., round(w)...] and the clipped count.

    Args:
      deltas: float32 [k, values] (the leaves flattened and joined).
      weights: float32 [k, leaves].
      segment: int [values + leaves], each coordinate's leaf.

    Returns:
      (int32 [k, values + leaves], int32 clipped coordinates of participants).
    """
    noise_key, integer_key = jax.random.split(key)
    if config.client_noise is not None:
        deltas = config.client_noise(deltas, participants, noise_key)
    q = quantize.encode(deltas, config.clip, precision_bits)
    held = (weights > 0)[:, segment[: deltas.shape[1]]] & participants[:, None]
    clipped = jnp.sum(held & (jnp.abs(deltas) > config.clip), dtype=jnp.int32)
    weight_q = quantize.encode_weights(weights, config.weight_bound)
    rows = jnp.concatenate([weight_q[:, segment[: deltas.shape[1]]] * q, weight_q], axis=1)
    if config.skellam_std > 0:
        values = deltas.shape[1]
        noise = skellam_rows(
            jax.random.fold_in(integer_key, 1),
            participants,
            values,
            config.skellam_std * 2.0**precision_bits,
        )
        rows = rows.at[:, :values].add(noise)
    if config.integer_noise is not None:
        rows = config.integer_noise(rows, participants, integer_key)
    return rows, clipped


def skellam_rows(
    key: t.PRNGKey, participants: jax.Array, dim: int, sum_std: float | jax.Array
) -> jax.Array:
    """Each participant's share of Skellam noise whose sum has std `sum_std`.

    Skellam(mu) = Poisson(mu) - Poisson(mu) has variance 2 mu and sums of
    independent Skellams are Skellam (Agarwal, Kairouz and Liu, 2021, "The Skellam
    Mechanism for Differentially Private Federated Learning"), so with m
    participants each adds Skellam(sum_std^2 / (2 m)) and the sum is
    Skellam(sum_std^2 / 2): integers, exact under the ring's modular sum.

    Args:
      key: PRNG key.
      participants: bool [k]; other slots get 0.
      dim: coordinates per row.
      sum_std: std of the sum over participants, in integer units.

    Returns:
      int32 [k, dim].
    """
    m = jnp.maximum(jnp.sum(participants), 1).astype(jnp.float32)
    mu = jnp.square(jnp.asarray(sum_std, jnp.float32)) / (2.0 * m)
    k = participants.shape[0]
    plus, minus = jax.random.split(key)
    draw = lambda kk: jax.random.poisson(kk, mu, (k, dim), dtype=jnp.int32)
    return jnp.where(participants[:, None], draw(plus) - draw(minus), 0)


def secure_aggregator(config: SecAggConfig = SecAggConfig()) -> base.Aggregator:  # noqa: B008
    """The secure selective weighted mean as a stacked-mode Aggregator.

    >>> aggregator = secure_aggregator(SecAggConfig(dropout=0.3))
    >>> aggregator.stacked
    True

    Args:
      config: settings (clip, precision, ring, graph, dropouts, DP hooks).

    Returns:
      An Aggregator whose state is a SecAggState.
    """
    if config.graph not in graph_lib.GRAPHS:
        raise ValueError(f"Unknown graph {config.graph!r}; choose one of {graph_lib.GRAPHS}.")
    if not 0.0 <= config.dropout <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {config.dropout}.")

    def finalize(updates: base.StackedUpdates, agg_state: SecAggState, rng: t.PRNGKey):
        leaves, treedef = jax.tree.flatten(updates.delta)
        weight_leaves = jax.tree.leaves(updates.weight)
        k = leaves[0].shape[0]
        bits, precision = resolve_bits(config, k)
        segment, shapes = _layout(leaves)
        deltas = jnp.concatenate([x.reshape(k, -1).astype(jnp.float32) for x in leaves], axis=1)
        weights = jnp.stack([w.astype(jnp.float32) for w in weight_leaves], axis=1)  # [k, L]
        participants = jnp.any(weights > 0, axis=1)
        rows, clipped = encode_rows(
            config,
            deltas,
            weights,
            segment,
            participants,
            precision,
            jax.random.fold_in(rng, _NOISE_TAG),
        )
        dropped = _dropouts(jax.random.fold_in(rng, _DROPOUT_TAG), participants, config.dropout)
        late = _dropouts(
            jax.random.fold_in(rng, _LATE_TAG), participants & ~dropped, config.late_dropout
        )
        protocol = protocol_lib.Protocol(
            bits=bits,
            graph=config.graph,
            degree=config.degree,
            threshold=config.threshold,
            limbs=config.limbs,
        )
        outcome, _ = protocol_lib.run(
            jax.random.fold_in(rng, _PROTOCOL_TAG),
            quantize.to_ring(rows, bits),
            weights > 0,
            jnp.asarray(segment),
            participants,
            dropped,
            protocol,
            late,
        )
        aggregate = decode(outcome, segment, shapes, treedef, precision, bits)
        state = SecAggState(
            aborted=~outcome.ok,
            aborted_rounds=agg_state.aborted_rounds + (~outcome.ok).astype(jnp.int32),
            survivors=outcome.survivors,
            dropped=outcome.dropped,
            worst_holders=outcome.worst_holders,
            worst_threshold=outcome.worst_threshold,
            clipped=clipped,
        )
        return aggregate, state

    return base.stacked_aggregator(finalize, init_state)


def decode(
    outcome: protocol_lib.Outcome,
    segment: np.ndarray,
    shapes: list[tuple[int, ...]],
    treedef,
    precision_bits: int,
    bits: int,
) -> base.Aggregate:
    """The selective mean from the secure sums; all-zero weights when aborted."""
    total = quantize.from_ring(outcome.total, bits)
    num_leaves = len(shapes)
    sums, weight_sums = total[:-num_leaves], total[-num_leaves:]
    weight_sums = jnp.where(outcome.ok, weight_sums, 0).astype(jnp.float32)
    per_coordinate = weight_sums[segment[:-num_leaves]]
    mean = jnp.where(
        per_coordinate > 0,
        sums.astype(jnp.float32) / (jnp.maximum(per_coordinate, 1.0) * 2.0**precision_bits),
        0.0,
    )
    splits = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    parts = jnp.split(mean, splits)
    delta = [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]
    weight = [weight_sums[i] for i in range(num_leaves)]
    return base.Aggregate(
        delta=jax.tree.unflatten(treedef, delta), weight=jax.tree.unflatten(treedef, weight)
    )


def check(agg_state: SecAggState, round_num: int | None = None) -> None:
    """Raises SecAggAbortedError if the last round aborted (call on the host).

    Raises:
      SecAggAbortedError: naming the survivors, the threshold and what to change.
    """
    if not bool(agg_state.aborted):
        return
    where = f" in round {round_num}" if round_num is not None else ""
    raise SecAggAbortedError(
        f"Secure aggregation aborted{where}: {int(agg_state.dropped)} participants dropped, "
        f"{int(agg_state.survivors)} sent their masked vectors, and a client's secrets had "
        f"only {int(agg_state.worst_holders)} surviving share holders for a threshold of "
        f"{int(agg_state.worst_threshold)}, so the sum cannot be unmasked. The server "
        "params and optimizer state were left unchanged. Lower the dropout rate or the "
        "threshold fraction, or use more neighbours."
    )


def abort_hook(info) -> None:
    """A simulation.run hook that raises SecAggAbortedError after an aborted round."""
    check(info.server_state.agg_state, info.round)


def reference_aggregator(config: SecAggConfig = SecAggConfig()) -> base.Aggregator:  # noqa: B008
    """The plain selective mean over the same survivors: no masks, no quantisation.

    Drops the clients the secure aggregator with `config` drops (same key, same
    rule), so a round with each differs only by the encoding: the reference that
    the quantisation error is measured against (experiments/secagg_table.py).
    """

    def finalize(updates: base.StackedUpdates, agg_state: SecAggState, rng: t.PRNGKey):
        participants = jnp.any(
            jnp.stack([w > 0 for w in jax.tree.leaves(updates.weight)], axis=1), axis=1
        )
        dropped = _dropouts(jax.random.fold_in(rng, _DROPOUT_TAG), participants, config.dropout)
        kept = jax.tree.map(lambda w: w * ~dropped, updates.weight)
        return selective.mean(updates.delta, kept), agg_state

    return base.stacked_aggregator(finalize, init_state)


AGGREGATOR = secure_aggregator()
"""Secure aggregation with the default SecAggConfig (complete graph, no dropouts)."""
