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
"""One round of secure aggregation (Bonawitz et al., 2017; SecAgg+, Bell et al., 2020), simulated.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning" (CCS 2017, eprint 2017/281), honest-but-curious server, with the
sparse neighbour graph of Bell et al. (CCS 2020, eprint 2020/704) as an option:

  0. AdvertiseKeys: each participant u draws a key pair (s_u^SK, s_u^PK)
     (keys.py, simulated Diffie-Hellman); the server fixes the neighbour graph
     (graph.py) and each client's threshold t_u.
  1. ShareKeys: u draws a self-mask seed b_u and Shamir-shares s_u^SK and b_u
     among its neighbours, t_u-of-deg_u (shamir.py).
  2. MaskedInputCollection: every client that has not dropped sends
     y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv) mod 2^b
     (masking.py). The clients that sent form U2.
  3. Unmasking: the server asks the responders (U2) for the shares of b_u for
     u in U2 and of s_u^SK for u that dropped (participants not in U2): never
     both for one client. An honest client checks this and reveals nothing if
     the two sets meet. The server reconstructs each needed secret from the
     shares of u's responding neighbours; if any needed client has fewer than
     t_u of them the round aborts (`Outcome.ok` False). Otherwise it removes
     the self masks of U2 and the masks U2 shared with the dropped clients:
     what is left is sum_{u in U2} x_u mod 2^b.

Simulated: one process plays every party (no network, no encryption of shares in
transit, no signatures or consistency check of the malicious variant), the key
agreement is Diffie-Hellman in a 16-bit group. Clients drop before step 2
(`dropped`: the server unmasks with their s^SK shares) or after it (`late`: their
y_u is in the sum, they do not answer step 3, and the responders U3 = U2 minus
them reveal the shares of their self-mask seeds b_u, as for every u in U2; their
pairwise masks with the rest of U2 cancel in the sum, so s^SK is never needed).
The server-side function `server_unmask` takes only the `Transcript`: the public
keys, the graph, the masked vectors, the request sets and the revealed shares.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedjax_m3t.secure import graph as graph_lib
from fedjax_m3t.secure import keys, masking, shamir


class ClientSecrets(NamedTuple):
    """The clients' private state of one round (never given to the server).

    Attributes:
      secret_keys: uint32 [k, limbs], s_u^SK.
      self_seeds: uint32 [k, limbs], b_u.
      key_shares: uint32 [owner k, holder k, limbs], shares of s^SK (0 off the graph).
      self_shares: uint32 [k, k, limbs], shares of b.
    """

    secret_keys: jax.Array
    self_seeds: jax.Array
    key_shares: jax.Array
    self_shares: jax.Array


class Transcript(NamedTuple):
    """Everything the server sees in one round.

    Attributes:
      public_keys: uint32 [k, limbs].
      adjacency: bool [k, k], the neighbour graph.
      thresholds: int32 [k], t_u.
      participants: bool [k], the clients that advertised keys (U1).
      masked: uint32 [k, dim], y_u for u in U2, 0 elsewhere.
      sent: bool [k], U2 (they also answer the unmasking request).
      reveal_self_of: bool [k], the clients whose b shares are requested.
      reveal_key_of: bool [k], the clients whose s^SK shares are requested.
      revealed_self: uint32 [owner k, holder k, limbs], revealed b shares (0: none).
      revealed_key: uint32 [k, k, limbs], revealed s^SK shares.
      responded: bool [k], U3, the clients that answered the unmasking request
        (None: all of U2, no late dropouts).
    """

    public_keys: jax.Array
    adjacency: jax.Array
    thresholds: jax.Array
    participants: jax.Array
    masked: jax.Array
    sent: jax.Array
    reveal_self_of: jax.Array
    reveal_key_of: jax.Array
    revealed_self: jax.Array
    revealed_key: jax.Array
    responded: jax.Array | None = None


class Outcome(NamedTuple):
    """The server's result.

    Attributes:
      total: uint32 [dim], sum_{u in U2} x_u mod 2^b (meaningless when not ok).
      ok: bool scalar, every needed secret was reconstructable and the request valid.
      survivors: int32, |U2|.
      dropped: int32, participants that did not send.
      worst_holders: int32, responding share holders of the worst-off needed client.
      worst_threshold: int32, that client's threshold.
    """

    total: jax.Array
    ok: jax.Array
    survivors: jax.Array
    dropped: jax.Array
    worst_holders: jax.Array
    worst_threshold: jax.Array


class Protocol(NamedTuple):
    """Static protocol parameters.

    Attributes:
      bits: ring bits b (<= 32).
      graph: one of graph.GRAPHS.
      degree: the SecAgg+ graph's even degree (graph='harary').
      threshold: fraction of neighbours needed to reconstruct (graph.thresholds).
      limbs: field elements per secret (about 16 bits each).
    """

    bits: int
    graph: str = "complete"
    degree: int | None = None
    threshold: float = 0.5
    limbs: int = 2


def advertise_and_share(
    key: jax.Array, participants: jax.Array, protocol: Protocol
) -> tuple[ClientSecrets, jax.Array, jax.Array, jax.Array]:
    """Rounds 0 and 1: key pairs, graph, thresholds and Shamir shares.

    Args:
      key: PRNG key of the round's protocol randomness.
      participants: bool [k], U1.
      protocol: parameters.

    Returns:
      (secrets, public keys [k, limbs], adjacency [k, k], thresholds [k]).
    """
    k = participants.shape[0]
    key_pairs, seeds, share_key, share_self, graph_key = jax.random.split(key, 5)
    secret_keys, public_keys = keys.keygen(key_pairs, (k, protocol.limbs))
    self_seeds = shamir.random_elements(seeds, (k, protocol.limbs))
    adjacency = graph_lib.neighbours(protocol.graph, graph_key, participants, protocol.degree)
    thresholds = graph_lib.thresholds(adjacency, protocol.threshold)
    on_graph = adjacency[..., None]  # Shares go to neighbours only.
    key_shares = jnp.where(on_graph, shamir.share(share_key, secret_keys, thresholds, k), 0)
    self_shares = jnp.where(on_graph, shamir.share(share_self, self_seeds, thresholds, k), 0)
    secrets = ClientSecrets(secret_keys, self_seeds, key_shares, self_shares)
    return secrets, public_keys, adjacency, thresholds


def collect(
    secrets: ClientSecrets,
    public_keys: jax.Array,
    adjacency: jax.Array,
    values: jax.Array,
    holders: jax.Array,
    segment: jax.Array,
    sent: jax.Array,
    bits: int,
) -> jax.Array:
    """Round 2: the masked inputs, uint32 [k, dim] (0 rows for clients that dropped).

    Args:
      values: uint32 [k, dim], encoded inputs on Z_{2^b} (0 outside each client's segments).
      holders: bool [k, segments], the segments each client sends.
      segment: int32 [dim], each coordinate's segment.
      sent: bool [k], the clients that have not dropped.
    """
    k = values.shape[0]
    mask_one = jax.vmap(masking.mask_input, in_axes=(0, 0, 0, 0, None, 0, None, None, None))
    masked = mask_one(
        values,
        jnp.arange(k),
        secrets.self_seeds,
        secrets.secret_keys,
        public_keys,
        adjacency,
        holders,
        segment,
        bits,
    )
    return jnp.where(sent[:, None], masked, 0)


def requests(participants: jax.Array, sent: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The server's round-3 request: (b shares of U2, s^SK shares of U1 minus U2)."""
    return sent & participants, participants & ~sent


def reveal(
    secrets: ClientSecrets,
    adjacency: jax.Array,
    sent: jax.Array,
    reveal_self_of: jax.Array,
    reveal_key_of: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Round 3, client side: the responders' shares, as the server receives them.

    An honest client answers only a request that never asks for both secrets of
    one client (else the server could unmask y_u); on such a request nobody reveals.

    Returns:
      (revealed b shares, revealed s^SK shares), uint32 [owner k, holder k, limbs].
    """
    valid = ~jnp.any(reveal_self_of & reveal_key_of)
    holds = adjacency & sent[None, :] & valid  # [owner, responding holder].
    self_part = holds & reveal_self_of[:, None]
    key_part = holds & reveal_key_of[:, None]
    return (
        jnp.where(self_part[..., None], secrets.self_shares, 0),
        jnp.where(key_part[..., None], secrets.key_shares, 0),
    )


def server_unmask(
    transcript: Transcript, holders: jax.Array, segment: jax.Array, bits: int
) -> Outcome:
    """Round 3, server side: reconstruct the needed secrets and remove the masks.

    Args:
      transcript: what the server saw.
      holders: bool [k, segments] (public: the segments each client announced).
      segment: int32 [dim].
      bits: ring bits.

    Returns:
      The Outcome (ok False when some needed secret had too few responding holders).
    """
    tr = transcript
    k, dim = tr.masked.shape
    valid = ~jnp.any(tr.reveal_self_of & tr.reveal_key_of)
    responded = tr.sent if tr.responded is None else tr.responded & tr.sent
    present = tr.adjacency & responded[None, :]  # Holders that responded, per owner.
    count = jnp.sum(present, axis=1).astype(jnp.int32)
    needed = tr.reveal_self_of | tr.reveal_key_of
    margin = jnp.where(needed, count - tr.thresholds, jnp.iinfo(jnp.int32).max)
    worst = jnp.argmin(margin)
    ok = valid & jnp.all(margin >= 0) & jnp.any(tr.sent)

    # One interpolation for both kinds: a client's revealed shares are of one kind only.
    self_seeds, secret_keys = shamir.reconstruct(
        jnp.stack([tr.revealed_self, tr.revealed_key]), jnp.stack([present, present])
    )
    own = masking.coordinate_holders(holders, segment)  # [k, dim]
    self_masks = jax.vmap(masking.prg, in_axes=(0, None, None, None))(
        self_seeds, dim, masking.SELF_DOMAIN, bits
    )
    # For a dropped u, each sending neighbour v added +PRG(s_uv) if u > v, else -.
    signs = jnp.where(jnp.arange(k)[None, :] < jnp.arange(k)[:, None], 1, -1)
    # Every sender added its mask with u, responders or not (late dropouts).
    senders = tr.adjacency & tr.sent[None, :]
    leftover = jax.vmap(masking.pairwise_sum, in_axes=(0, 0, None, 0, None, None, None, 0))(
        secret_keys, jnp.arange(k), tr.public_keys, senders, holders, segment, bits, signs
    )
    total = jnp.sum(jnp.where(tr.sent[:, None], tr.masked, 0), axis=0, dtype=jnp.uint32)
    total = total - jnp.sum(
        jnp.where((tr.sent[:, None] & own), self_masks, 0), axis=0, dtype=jnp.uint32
    )
    total = total - jnp.sum(
        jnp.where(tr.reveal_key_of[:, None], leftover, 0), axis=0, dtype=jnp.uint32
    )
    return Outcome(
        total=total & jnp.uint32(masking.ring_mask(bits)),
        ok=ok,
        survivors=jnp.sum(tr.sent).astype(jnp.int32),
        dropped=jnp.sum(tr.participants & ~tr.sent).astype(jnp.int32),
        worst_holders=count[worst],
        worst_threshold=tr.thresholds[worst],
    )


def run(
    key: jax.Array,
    values: jax.Array,
    holders: jax.Array,
    segment: jax.Array,
    participants: jax.Array,
    dropped: jax.Array,
    protocol: Protocol,
    late: jax.Array | None = None,
) -> tuple[Outcome, Transcript]:
    """The whole round, every party simulated in turn.

    Args:
      key: PRNG key of the protocol's randomness.
      values: uint32 [k, dim] encoded inputs on Z_{2^b}.
      holders: bool [k, segments], the segments each client sends.
      segment: int32 [dim], each coordinate's segment.
      participants: bool [k], U1 (padding slots are not).
      dropped: bool [k], participants that drop before sending y_u.
      protocol: parameters.
      late: bool [k], clients that send y_u and then drop before the unmasking
        (None: nobody); their inputs are in the sum.

    Returns:
      (the server's Outcome, the server's Transcript).
    """
    secrets, public_keys, adjacency, thresholds = advertise_and_share(key, participants, protocol)
    sent = participants & ~dropped
    values = jnp.where(masking.coordinate_holders(holders, segment), values, 0)
    masked = collect(secrets, public_keys, adjacency, values, holders, segment, sent, protocol.bits)
    reveal_self_of, reveal_key_of = requests(participants, sent)
    responded = sent if late is None else sent & ~late
    revealed_self, revealed_key = reveal(
        secrets, adjacency, responded, reveal_self_of, reveal_key_of
    )
    transcript = Transcript(
        public_keys,
        adjacency,
        thresholds,
        participants,
        masked,
        sent,
        reveal_self_of,
        reveal_key_of,
        revealed_self,
        revealed_key,
        responded,
    )
    return server_unmask(transcript, holders, segment, protocol.bits), transcript
