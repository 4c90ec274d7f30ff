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
"""Tree utilities: path selection (masks), partition/merge, and weighted sums.

A parameter path is the '/'-joined sequence of dict keys from the root, e.g.
'encoders/text/embed/embedding'. Patterns are globs over paths:

  * '*' matches within one path segment, '**' matches any number of segments;
  * a pattern also selects everything below what it matches, so 'heads/score'
    selects 'heads/score/kernel' and 'heads/score/bias' (the same as 'heads/score/**').

Masks are pytrees of Python bools with the structure of the params. They are
built once, outside jit, and closed over as static values.
"""

import functools
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import typing as t


def path_str(path: tuple) -> str:
    """Joins a key path from `jax.tree_util.tree_flatten_with_path` with '/'."""
    parts = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            parts.append(str(entry.key))
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            parts.append(entry.name)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append(str(entry.idx))
        else:
            parts.append(str(entry))
    return "/".join(parts)


def leaf_paths(tree: t.PyTree) -> list[str]:
    """Returns the '/'-joined path of every leaf, in flatten order."""
    with_path, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [path_str(p) for p, _ in with_path]


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    pattern = pattern.strip("/")
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # Zero or more whole segments, gitignore-style.
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    # A match may be followed by deeper segments: a pattern names a module.
    return re.compile("^" + "".join(out) + "(/.*)?$")


def path_matches(pattern: str, path: str) -> bool:
    """Whether a glob `pattern` selects the leaf at `path` (see module docstring)."""
    return _glob_regex(pattern).match(path) is not None


def make_mask(tree: t.PyTree, patterns: str | Sequence[str]) -> t.PyTree:
    """Returns a pytree of Python bools: True where any pattern selects the leaf.

    Args:
      tree: a pytree of arrays (e.g. params), leaves at any depth.
      patterns: one glob or several (see module docstring).

    Returns:
      A pytree with the structure of `tree` and bool leaves.

    Raises:
      ValueError: naming each pattern that matched no parameter.
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    paths = leaf_paths(tree)
    unmatched = [p for p in patterns if not any(path_matches(p, q) for q in paths)]
    if unmatched:
        raise ValueError(
            f"Pattern(s) {unmatched} matched no parameter. Parameter modules are: "
            f"{sorted(module_names(tree))}. Use '/'-separated paths such as 'heads/<task>' "
            "or globs such as 'adapters/**'."
        )
    flags = [any(path_matches(p, q) for p in patterns) for q in paths]
    return jax.tree.unflatten(jax.tree.structure(tree), flags)


def module_names(tree: t.PyTree, depth: int = 2) -> set[str]:
    """The distinct path prefixes of length `depth` (e.g. 'encoders/text')."""
    return {"/".join(p.split("/")[:depth]) for p in leaf_paths(tree)}


def partition(mask: t.PyTree, tree: t.PyTree) -> tuple[t.PyTree, t.PyTree]:
    """Splits `tree` into (selected, rest), with None at the leaves not in each part.

    None is an empty pytree node, so the parts carry (and communicate) only their
    own leaves.
    """
    selected = jax.tree.map(lambda m, x: x if m else None, mask, tree)
    rest = jax.tree.map(lambda m, x: None if m else x, mask, tree)
    return selected, rest


def merge(mask: t.PyTree, selected: t.PyTree, rest: t.PyTree) -> t.PyTree:
    """Inverse of `partition`: takes leaves from `selected` where mask is True."""
    return jax.tree.map(
        lambda m, s, r: s if m else r, mask, selected, rest, is_leaf=lambda x: x is None
    )


def select(mask: t.PyTree, tree: t.PyTree) -> t.PyTree:
    """The selected part of `tree` (None elsewhere)."""
    return partition(mask, tree)[0]


def weighted_sum(weights: jax.Array, stacked: t.PyTree, min_dtype=None) -> t.PyTree:
    """Sums stacked trees along axis 0 with per-entry weights.

    Args:
      weights: [n] or a pytree of [n] arrays matching `stacked`'s structure.
      stacked: a pytree whose leaves have shape [n, ...].
      min_dtype: sum in jnp.promote_types(leaf dtype, min_dtype) (None: each leaf's
        own); aggregators pass float32 so that bf16 deltas are summed without bf16
        rounding (float64 stays float64).

    Returns:
      A pytree of leaves [...]: sum_i weights[i] * leaf[i].
    """
    if isinstance(weights, jax.Array | np.ndarray) or not jax.tree.leaves(weights):
        weights = jax.tree.map(lambda _: weights, stacked)

    def one(w, x):
        kind = x.dtype if min_dtype is None else jnp.promote_types(x.dtype, min_dtype)
        return jnp.tensordot(w.astype(kind), x.astype(kind), axes=1)

    return jax.tree.map(one, weights, stacked)


def squared_l2_norm(tree: t.PyTree) -> jax.Array:
    """Sum of squares over all leaves (float32 scalar); differentiable at 0, unlike the norm."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)


def l2_norm(tree: t.PyTree) -> jax.Array:
    """Global L2 norm over all leaves (float32 scalar). Its gradient at 0 is NaN."""
    return jnp.sqrt(squared_l2_norm(tree))


def map_with_paths(fn: Callable[[str, t.PyTree], t.PyTree], tree: t.PyTree) -> t.PyTree:
    """tree_map with the '/'-joined path as the first argument."""
    return jax.tree_util.tree_map_with_path(lambda p, x: fn(path_str(p), x), tree)


def num_bytes(tree: t.PyTree) -> int:
    """Bytes in all array leaves (what communicating `tree` would cost, uncompressed)."""
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))
