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
"""Params pytrees in Flower's ArrayRecord, with a stable, checked structure.

A pytree travels as an ArrayRecord keyed by each leaf's '/'-joined path
(`fedjax_m3t.tree.leaf_paths`, in flatten order: sorted dict keys, so both
sides agree whatever order the record arrives in). Leaves that are None (the
parts a module policy does not send: `tree.select`) are absent from the record.
The receiver rebuilds the tree against its own template and stops with a
`TreeMismatchError` naming the first leaf that is missing, unexpected, or of
another shape or dtype, rather than training or aggregating a garbled model.
"""

import jax
import numpy as np
from flwr import app as flwr_app

from fedjax_m3t import tree
from fedjax_m3t import typing as t


class TreeMismatchError(ValueError):
    """A received record does not have the structure its receiver expects."""


def shapes(tree_: t.PyTree) -> t.PyTree:
    """ShapeDtypeStructs of a pytree's leaves (a template for `from_record`)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree_)


def to_arrays(tree_: t.PyTree) -> dict[str, np.ndarray]:
    """{leaf path: host array} of a pytree's non-None leaves, in flatten order."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree_))]
    return dict(zip(tree.leaf_paths(tree_), leaves, strict=True))


def from_arrays(arrays: dict[str, np.ndarray], template: t.PyTree, what: str) -> t.PyTree:
    """Rebuilds `template`'s structure from {leaf path: array}, checking every leaf.

    Args:
      arrays: the received leaves by path.
      template: the expected pytree (arrays or ShapeDtypeStructs; None leaves are
        expected absent).
      what: what the record is, for the error ("the server's params", ...).

    Returns:
      A pytree with template's structure and the received host arrays.

    Raises:
      TreeMismatchError: naming a missing or unexpected leaf, or one whose shape
        or dtype differs from the template's.
    """
    paths = tree.leaf_paths(template)
    missing = [p for p in paths if p not in arrays]
    extra = sorted(set(arrays) - set(paths))
    if missing or extra:
        raise TreeMismatchError(
            f"{what}: the tree structures differ: "
            + (f"missing leaf {missing[0]!r}" if missing else f"unexpected leaf {extra[0]!r}")
            + f" ({len(missing)} missing, {len(extra)} unexpected). Both sides must build "
            "the same model and module policy."
        )
    leaves = []
    for path, expected in zip(paths, jax.tree.leaves(template), strict=True):
        got = arrays[path]
        if got.shape != tuple(expected.shape) or got.dtype != expected.dtype:
            raise TreeMismatchError(
                f"{what}: leaf {path!r} is {got.dtype}{list(got.shape)}, expected "
                f"{np.dtype(expected.dtype)}{list(expected.shape)}."
            )
        leaves.append(got)
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def to_record(tree_: t.PyTree) -> flwr_app.ArrayRecord:
    """An ArrayRecord of the pytree's non-None leaves, keyed by path."""
    return flwr_app.ArrayRecord({k: flwr_app.Array(v) for k, v in to_arrays(tree_).items()})


def from_record(record: flwr_app.ArrayRecord, template: t.PyTree, what: str) -> t.PyTree:
    """`from_arrays` of an ArrayRecord (see there)."""
    return from_arrays({k: v.numpy() for k, v in record.items()}, template, what)
