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
"""Per-module policies: which parameters are federated, local or frozen.

  * federated: trained on clients, sent to the server, averaged (selectively);
  * local:     trained on clients, never leaves the client (personal modules);
  * frozen:    neither trained nor sent (no gradient is even computed for it).

A `ModulePolicy` names modules by glob patterns over parameter paths (see
`fedjax_m3t.tree`); the first of (frozen, local, federated) that matches wins,
and leaves no pattern matches take `default`. `resolve` turns a policy into
static boolean masks, once, outside jit.
"""

import collections
import dataclasses
from collections.abc import Sequence

import jax

from fedjax_m3t import tree
from fedjax_m3t import typing as t

FEDERATED = "federated"
LOCAL = "local"
FROZEN = "frozen"
POLICIES = (FEDERATED, LOCAL, FROZEN)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModulePolicy:
    """Glob patterns per policy (precedence: frozen, then local, then federated).

    >>> policy = ModulePolicy(frozen=('encoders/text',), local=('heads/**',))
    """

    federated: tuple[str, ...] = ()
    local: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    default: str = FEDERATED

    def __post_init__(self):
        if self.default not in POLICIES:
            raise ValueError(f"default policy {self.default!r} is not one of {POLICIES}.")
        for name in POLICIES:
            value = getattr(self, name)
            if isinstance(value, str):  # A lone string would be iterated per character.
                object.__setattr__(self, name, (value,))


# eq=False: hashed by identity (the masks are dicts), so it can key caches of jitted fns.
@dataclasses.dataclass(frozen=True, eq=False)
class ResolvedPolicy:
    """Static masks (pytrees of Python bools with the params' structure).

    Attributes:
      federated: leaves trained and aggregated.
      local: leaves trained and kept on the client.
      frozen: leaves neither trained nor sent.
      labels: per leaf, one of POLICIES (for printing and tests).
    """

    federated: t.PyTree
    local: t.PyTree
    frozen: t.PyTree
    labels: t.PyTree

    @property
    def trainable(self) -> t.PyTree:
        """federated or local."""
        return jax.tree.map(lambda fed, loc: fed or loc, self.federated, self.local)

    def describe(self) -> str:
        """One line per module (path prefix of depth 2) with its policies."""
        by_module = collections.defaultdict(set)
        paths = tree.leaf_paths(self.labels)
        for path, label in zip(paths, jax.tree.leaves(self.labels), strict=True):
            by_module["/".join(path.split("/")[:2])].add(label)
        return "\n".join(f"  {m:<28} {'+'.join(sorted(v))}" for m, v in sorted(by_module.items()))


def resolve(policy: ModulePolicy, params: t.Params) -> ResolvedPolicy:
    """Applies `policy` to `params`.

    Args:
      policy: the patterns.
      params: the full params pytree (arrays or ShapeDtypeStructs).

    Returns:
      The static masks.

    Raises:
      ValueError: naming any pattern that matches no parameter.
    """
    for name in (FROZEN, LOCAL, FEDERATED):
        patterns = getattr(policy, name)
        if patterns:
            try:
                tree.make_mask(params, patterns)
            except ValueError as e:
                raise ValueError(f"In the {name!r} module patterns: {e}") from None

    def label(path: str, _) -> str:
        for name in (FROZEN, LOCAL, FEDERATED):
            if any(tree.path_matches(p, path) for p in getattr(policy, name)):
                return name
        return policy.default

    labels = tree.map_with_paths(label, params)
    masks = {n: jax.tree.map(lambda x, n=n: x == n, labels) for n in POLICIES}
    return ResolvedPolicy(labels=labels, **masks)


def require_trainable(resolved: ResolvedPolicy) -> ResolvedPolicy:
    """`resolved`, if it trains at least one leaf (federated or local).

    A policy that freezes every parameter would run its rounds without changing
    anything and report the initial model as the trained one.

    Raises:
      ValueError: when every leaf is frozen.
    """
    if not any(jax.tree.leaves(resolved.trainable)):
        raise ValueError(
            "The module policy freezes every parameter, so training would change nothing "
            "and report the initial model; leave some modules out of the frozen patterns."
        )
    return resolved


def from_flags(
    federated: Sequence[str] = (), local: Sequence[str] = (), frozen: Sequence[str] = ()
) -> ModulePolicy:
    """A policy from comma-split flag values (empty strings dropped)."""
    clean = lambda xs: tuple(x.strip() for x in xs if x.strip())
    return ModulePolicy(federated=clean(federated), local=clean(local), frozen=clean(frozen))
