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
"""Per-institution privacy policies, enforced in the round and accounted per institution.

Institutions answer to different rules (FERPA, GDPR, their boards): one shares
only adapters, one keeps its image encoder, one trusts the server to add noise
(central DP-FedAvg, McMahan et al., 2018, arXiv:1710.06963), one adds its own
(local DP, privacy/local_dp.py), one protects its students with DP-SGD
(privacy/dp_sgd.py), each with its own (epsilon, delta) budget. An
`InstitutionPolicy` says so declaratively; `read_policies` reads a JSON file
keyed by institution name (`Federation.client_names`):

    {"school_a": {"share": ["backbone", "adapters/**"], "mechanism": "local",
                  "epsilon": 4.0, "delta": 1e-5, "clip": 1.0, "noise_multiplier": 2.0},
     "school_b": {"mechanism": "student", "epsilon": 8.0, "clip": 0.5,
                  "noise_multiplier": 1.1}}

Enforcement, through the round contract and per-client data (no engine fork):

  * `enforce(algorithm, table)` wraps the client update: the leaves an
    institution does not share get delta 0 and weight 0 in every message it
    sends (so the selective mean aggregates them without it, and a module held
    only by institutions that keep it is bit-identical on the server), then its
    mechanism runs on the shared leaves: 'local' clips and noises
    (local_dp.privatize), 'central' clips (the server adds the noise). It also
    counts each institution's rounds in its client state (`rounds`, written back
    only for the clients that took part), so participation is data, exact on any
    number of devices.
  * 'student' institutions need DP-SGD in local training: build the algorithm
    with `fed_opt(..., gradient=table.student_gradient())`.
  * `BudgetLedger` is a `simulation.run` hook: after each round it reads the
    counts, accounts each institution's epsilon with the injected accountant, and
    returns the eligible mask: an institution takes part in a round only if its
    epsilon after it stays within its budget; the others go on.

Accounting (injected: privacy/accounting.py's `dp_sgd_epsilon` / `gaussian_epsilon`):
'student': DP-SGD at rate batch / its students, local_steps per round it took part
in (dp_sgd.student_epsilon); 'local': the Gaussian mechanism at z / 2 per message
(local_dp.local_epsilon, the replace-one relation on its whole data); 'central':
the Gaussian mechanism at z per round it took part in (add/remove of the
institution; no amplification by sampling is credited, an upper bound when it is
sampled); 'none': no guarantee (epsilon inf; a budget is an error).
"""

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import tree
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.privacy import dp_sgd, local_dp

MECHANISMS = ("central", "local", "student", "none")
ROUNDS_KEY = "rounds"  # The participation counter in an enforced client state.


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstitutionPolicy:
    """One institution's privacy rules.

    >>> InstitutionPolicy(share=('adapters/**',), mechanism='local', epsilon=4.0,
    ...                   clip=1.0, noise_multiplier=2.0).mechanism
    'local'

    Attributes:
      share: globs of the federated modules that may leave (fedjax_m3t.tree
        patterns); ('**',) = all.
      mechanism: one of MECHANISMS.
      epsilon: the budget (None: no budget, never stops).
      delta: the budget's delta.
      clip: L2 clip C (of the update: 'local', 'central'; of each example: 'student').
      noise_multiplier: z (noise std z * C).
    """

    share: tuple[str, ...] = ("**",)
    mechanism: str = "none"
    epsilon: float | None = None
    delta: float = 1e-5
    clip: float = math.inf
    noise_multiplier: float = 0.0

    def __post_init__(self):
        if isinstance(self.share, str):
            object.__setattr__(self, "share", (self.share,))
        object.__setattr__(self, "share", tuple(self.share))
        problems = []
        if self.mechanism not in MECHANISMS:
            problems.append(f"mechanism {self.mechanism!r} is not one of {MECHANISMS}")
        if self.epsilon is not None and not self.epsilon > 0:
            problems.append(f"epsilon must be > 0, got {self.epsilon}")
        if not 0 < self.delta < 1:
            problems.append(f"delta must be in (0, 1), got {self.delta}")
        if not self.clip > 0:
            problems.append(f"clip must be > 0, got {self.clip}")
        if not self.noise_multiplier >= 0:
            problems.append(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.mechanism == "none" and self.epsilon is not None:
            problems.append("mechanism 'none' cannot meet an epsilon budget")
        if self.mechanism != "none" and self.epsilon is not None and self.noise_multiplier == 0:
            problems.append(
                f"mechanism {self.mechanism!r} with a budget needs noise_multiplier > 0"
            )
        if problems:
            raise ValueError("; ".join(problems) + ".")


FIELDS = tuple(f.name for f in dataclasses.fields(InstitutionPolicy))


def read_policies(
    source: str | os.PathLike | Mapping,
    client_names: Sequence[str],
    default: InstitutionPolicy = InstitutionPolicy(),
) -> tuple[InstitutionPolicy, ...]:
    """Per-client policies from a JSON file (or its parsed dict) keyed by institution.

    Args:
      source: a path to JSON, or the dict {institution name: {field: value}}.
      client_names: the federation's client names, in client order.
      default: the policy of institutions the file does not name.

    Returns:
      One policy per client, in client order.

    Raises:
      ValueError: naming the key of an unknown institution, an unknown field, or a
        bad value.
    """
    if isinstance(source, Mapping):
        entries = dict(source)
    else:
        with open(source) as f:
            entries = json.load(f)
    if not isinstance(entries, dict):
        raise ValueError("A privacy policy file must hold one JSON object keyed by institution.")
    unknown = sorted(set(entries) - set(client_names))
    if unknown:
        shown = ", ".join(repr(n) for n in list(client_names)[:5])
        raise ValueError(
            f"Privacy policies name unknown institution(s) {unknown}; the federation's are "
            f"{shown}{', ...' if len(client_names) > 5 else ''} ({len(client_names)} in all)."
        )
    by_name = {}
    for name, fields in entries.items():
        if not isinstance(fields, dict):
            raise ValueError(f"Privacy policy {name!r} must be a JSON object of fields.")
        bad = sorted(set(fields) - set(FIELDS))
        if bad:
            raise ValueError(
                f"Privacy policy {name!r} has unknown field(s) {bad}; known: {FIELDS}."
            )
        if fields.get("epsilon") is None and "epsilon" in fields:
            fields = {k: v for k, v in fields.items() if k != "epsilon"}
        try:
            by_name[name] = dataclasses.replace(default, **fields)
        except (ValueError, TypeError) as e:
            raise ValueError(f"Privacy policy {name!r}: {e}") from None
    return tuple(by_name.get(name, default) for name in client_names)


class PolicyTable(NamedTuple):
    """The policies as per-client arrays (closed over by the enforced client update).

    Attributes:
      share: bool [num_clients, num_leaves]: per client, which leaves of the
        federated delta (in its flatten order) may leave.
      clip: float32 [num_clients] C (inf where unused).
      noise_multiplier: float32 [num_clients] z (0 where unused).
      mechanism: int32 [num_clients], indices into MECHANISMS.
    """

    share: np.ndarray
    clip: np.ndarray
    noise_multiplier: np.ndarray
    mechanism: np.ndarray

    def uses(self, name: str) -> np.ndarray:
        """bool [num_clients]: the institutions whose mechanism is `name`."""
        return self.mechanism == MECHANISMS.index(name)

    def student_gradient(self) -> local_training.GradientFn:
        """The DP-SGD gradient with each 'student' institution's C and z (plain elsewhere,
        exactly when its batches are full: z = 0, C = inf)."""
        student = self.uses("student")
        return dp_sgd.dp_sgd_gradient(
            clip=jnp.asarray(np.where(student, self.clip, np.inf), jnp.float32),
            noise_multiplier=jnp.asarray(
                np.where(student, self.noise_multiplier, 0.0), jnp.float32
            ),
        )


def make_table(
    policies: Sequence[InstitutionPolicy],
    algorithm: base.FederatedAlgorithm,
    client_names: Sequence[str] | None = None,
) -> PolicyTable:
    """Resolves per-client policies against the algorithm's federated leaves.

    Raises:
      ValueError: naming the institution whose share pattern matches no parameter.
    """
    labels = algorithm.policy.labels
    rows = []
    for c, policy in enumerate(policies):
        name = client_names[c] if client_names is not None else f"client {c}"
        try:
            mask = tree.make_mask(labels, policy.share)
        except ValueError as e:
            raise ValueError(f"Privacy policy {name!r}, share: {e}") from None
        rows.append(jax.tree.leaves(tree.select(algorithm.policy.federated, mask)))
    return PolicyTable(
        share=np.asarray(rows, bool).reshape(len(policies), -1),
        clip=np.asarray([p.clip for p in policies], np.float32),
        noise_multiplier=np.asarray([p.noise_multiplier for p in policies], np.float32),
        mechanism=np.asarray([MECHANISMS.index(p.mechanism) for p in policies], np.int32),
    )


def _mask_unshared(output: base.ClientOutput, share: jax.Array) -> base.ClientOutput:
    """delta 0 and weight 0 at the leaves `share` (bool [num_leaves]) marks False."""
    leaves, treedef = jax.tree.flatten(output.delta)
    weights = jax.tree.leaves(output.weight)
    keep = [share[i] for i in range(len(leaves))]
    delta = [jnp.where(k, x, jnp.zeros_like(x)) for k, x in zip(keep, leaves, strict=True)]
    weight = [jnp.where(k, w, jnp.zeros_like(w)) for k, w in zip(keep, weights, strict=True)]
    return output._replace(
        delta=jax.tree.unflatten(treedef, delta),
        weight=jax.tree.unflatten(jax.tree.structure(output.weight), weight),
    )


def enforce(algorithm: base.FederatedAlgorithm, table: PolicyTable) -> base.FederatedAlgorithm:
    """The algorithm with each institution's sharing and update mechanism enforced.

    Args:
      algorithm: any FederatedAlgorithm (for 'student' institutions built with
        gradient=table.student_gradient()).
      table: from `make_table` (rows indexed by ClientContext.client_id).

    Returns:
      The algorithm whose client update (a) zeroes delta and weight of the leaves
      the institution does not share, (b) clips ('central', 'local') and noises
      ('local') the shared ones, (c) counts the institution's rounds in its client
      state {'state': the algorithm's, 'rounds': int32 scalar}.
    """
    share = jnp.asarray(table.share)
    clip = jnp.asarray(table.clip)
    noise = jnp.asarray(np.where(table.uses("local"), table.noise_multiplier, 0.0), jnp.float32)
    clipped = jnp.asarray(table.uses("local") | table.uses("central"))

    def client_update(received, client_state, examples, context):
        c = context.client_id
        output = algorithm.client_update(received, client_state["state"], examples, context)
        output = _mask_unshared(output, share[c])
        key = jax.random.fold_in(context.rng, local_training.PRIVACY_TAG)
        private = local_dp.privatize(output, key, jnp.where(clipped[c], clip[c], jnp.inf), noise[c])
        # Noise lands on every leaf: mask again so unshared leaves stay exactly 0.
        output = _mask_unshared(private, share[c])
        counted = {"state": output.client_state, ROUNDS_KEY: client_state[ROUNDS_KEY] + 1}
        return output._replace(client_state=counted)

    def init_client_state(params):
        return {"state": algorithm.init_client_state(params), ROUNDS_KEY: jnp.zeros((), jnp.int32)}

    def personalize(received, client_state):
        return algorithm.personalize(received, client_state["state"])

    return algorithm._replace(
        client_update=client_update, init_client_state=init_client_state, personalize=personalize
    )


EpsilonFn = Callable[..., float]


class BudgetLedger:
    """Per-institution epsilon from participation counts; the budget hook of `run`.

    Host-side bookkeeping (read after each round, never inside jit).

    Args:
      policies: one per client.
      client_names: the federation's names (for reports).
      num_examples: [num_clients] each institution's training examples (students).
      batch_size, local_steps: local training's (for 'student' accounting).
      dp_sgd_epsilon: dp_sgd_epsilon(z, *, sampling_rate, steps, delta) -> float.
      gaussian_epsilon: gaussian_epsilon(z, *, count, delta) -> float.
    """

    def __init__(
        self,
        policies: Sequence[InstitutionPolicy],
        client_names: Sequence[str],
        *,
        num_examples: Sequence[int],
        batch_size: int,
        local_steps: int,
        dp_sgd_epsilon: EpsilonFn,
        gaussian_epsilon: EpsilonFn,
    ):
        self.policies = tuple(policies)
        self.client_names = tuple(client_names)
        self.num_examples = tuple(int(n) for n in num_examples)
        self.batch_size = batch_size
        self.local_steps = local_steps
        self._dp_sgd = dp_sgd_epsilon
        self._gaussian = gaussian_epsilon
        self.counts = np.zeros(len(self.policies), np.int64)
        self.history = []  # Per round: the eligible mask it returned.

    def epsilon(self, client: int, rounds: int) -> float:
        """Institution `client`'s epsilon after taking part in `rounds` rounds."""
        p = self.policies[client]
        if rounds <= 0:
            return 0.0
        if p.mechanism == "none" or p.noise_multiplier == 0:
            return math.inf
        if p.mechanism == "student":
            return dp_sgd.student_epsilon(
                self._dp_sgd,
                noise_multiplier=p.noise_multiplier,
                batch_size=self.batch_size,
                num_examples=self.num_examples[client],
                local_steps=self.local_steps,
                rounds=rounds,
                delta=p.delta,
            )
        if p.mechanism == "local":
            return local_dp.local_epsilon(
                self._gaussian, noise_multiplier=p.noise_multiplier, rounds=rounds, delta=p.delta
            )
        return float(self._gaussian(p.noise_multiplier, count=rounds, delta=p.delta))

    def eligible(self) -> np.ndarray:
        """bool [num_clients]: whether one more round keeps each within its budget."""
        return np.asarray(
            [
                p.epsilon is None or self.epsilon(c, int(self.counts[c]) + 1) <= p.epsilon
                for c, p in enumerate(self.policies)
            ],
            bool,
        )

    def population(self, group: Sequence[int] | None = None):
        """The round-1 cohort.Population (institutions that cannot afford a round are out)."""
        from fedjax_m3t.simulation import cohort  # noqa: PLC0415 - privacy needs no engine.

        groups = np.zeros(len(self.policies), np.int32) if group is None else np.asarray(group)
        return cohort.Population(eligible=jnp.asarray(self.eligible()), group=jnp.asarray(groups))

    def __call__(self, info) -> np.ndarray:
        """The run hook: reads the counts from the client states, returns the eligible mask."""
        self.counts = np.asarray(jax.device_get(info.client_states[ROUNDS_KEY]), np.int64)
        mask = self.eligible()
        self.history.append(mask)
        return mask

    def report(self) -> dict[str, dict]:
        """{institution: {'mechanism', 'rounds', 'epsilon', 'budget', 'delta'}}."""
        return {
            name: {
                "mechanism": p.mechanism,
                "rounds": int(self.counts[c]),
                "epsilon": self.epsilon(c, int(self.counts[c])),
                "budget": p.epsilon,
                "delta": p.delta,
            }
            for c, (name, p) in enumerate(zip(self.client_names, self.policies, strict=True))
        }
