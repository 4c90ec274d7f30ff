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
"""The aggregation tree above the clients: groups, optional middle levels, the cloud.

Levels are numbered from the clients up: level 1 holds the groups (schools'
local authorities, HF-FM's edge servers), level `num_levels` is the cloud (one
node), and `parents` maps each level's nodes to the next level's for deeper
trees (school -> authority -> region -> cloud). A level's aggregation is one
pure function over all its children at once, `level_mean`: a weighted
`jax.ops.segment_sum` over the children's parent ids, never a Python loop over
nodes (Liu et al. 2020, "Client-Edge-Cloud Hierarchical Federated Learning",
arXiv:1905.06641; HF-FM, Abdisarabshali et al. 2025, arXiv:2509.03695).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t.data import federation as federation_lib


# eq=False: hashed by identity (it holds arrays), so it can be closed over by jitted code.
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Tree:
    """The static shape of the hierarchy.

    Attributes:
      num_groups: nodes of level 1; clients' groups (ClientContext.group) are in
        [0, num_groups).
      parents: parents[i] is an int array [nodes of level i + 1] of each node's
        parent at level i + 2 (the cloud above the last one is implicit); () for
        clients -> group -> cloud.
    """

    num_groups: int
    parents: tuple[np.ndarray, ...] = ()

    def __post_init__(self):
        if self.num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {self.num_groups}.")
        parents = tuple(np.asarray(p, np.int32) for p in self.parents)
        size = self.num_groups
        for i, p in enumerate(parents):
            if p.shape != (size,) or p.min(initial=0) < 0:
                raise ValueError(
                    f"parents[{i}] must map the {size} nodes of level {i + 1} to ids >= 0, "
                    f"got shape {p.shape}."
                )
            size = int(p.max()) + 1
        object.__setattr__(self, "parents", parents)

    @property
    def num_levels(self) -> int:
        """Aggregation levels above the clients, the cloud included."""
        return 2 + len(self.parents)

    def num_nodes(self, level: int) -> int:
        """Nodes at `level` (1 = groups, num_levels = the cloud)."""
        if level == self.num_levels:
            return 1
        return self.num_groups if level == 1 else int(self.parents[level - 2].max()) + 1

    def ancestors(self, level: int) -> np.ndarray:
        """int32 [num_groups]: each group's ancestor at `level` (identity at level 1)."""
        node = np.arange(self.num_groups, dtype=np.int32)
        if level == self.num_levels:
            return np.zeros_like(node)
        for p in self.parents[: level - 1]:
            node = p[node]
        return node


def from_federation(federation: federation_lib.Federation) -> Tree:
    """clients -> group -> cloud over the federation's groups (Federation.group_ids)."""
    return Tree(num_groups=int(federation.group_ids().max(initial=0)) + 1)


def level_mean(
    values: jax.Array, weights: jax.Array, parent: jax.Array, num_parents: int
) -> tuple[jax.Array, jax.Array]:
    """Weighted means of children per parent, for a whole level at once.

    Args:
      values: [num_children, ...] the children's values (e.g. one param leaf).
      weights: float [num_children] (0: the child takes no part).
      parent: int32 [num_children], each child's parent in [0, num_parents).
      num_parents: parents at this level (static).

    Returns:
      (means [num_parents, ...], 0 where a parent's weight is 0; totals [num_parents]).
    """
    kind = jnp.promote_types(values.dtype, jnp.float32)
    w = weights.astype(kind)
    total = jax.ops.segment_sum(w, parent, num_segments=num_parents)
    weighted = values.astype(kind) * w.reshape(w.shape + (1,) * (values.ndim - 1))
    sums = jax.ops.segment_sum(weighted, parent, num_segments=num_parents)
    scale = jnp.where(total > 0, 1.0 / jnp.maximum(total, 1e-30), 0.0)
    return sums * scale.reshape(scale.shape + (1,) * (values.ndim - 1)), total
