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
"""A federation: every client's examples, padded and stacked, with a DataSpec.

The layout of one client's examples is documented in `fedjax_m3t.data.spec`.
A `Federation` stacks all clients on a leading axis, so a cohort is a gather:
`jax.tree.map(lambda x: x[cohort_ids], federation.train)`. Arrays are host
NumPy; the simulation moves them to devices once.

It is the one federation type: a federation gathered from a flat table of
examples (`from_rows`: a DataFrame, or a built TFDS dataset) also records where
each client's examples came from (`train_rows`, `test_rows`) and, optionally, the
group of each client (`groups`), to read results back per row or per group.
"""

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from fedjax_m3t.data import spec as spec_lib


def pad_examples(examples: dict, size: int) -> dict:
    """Pads (with zeros / False) or rejects: every leaf [n, ...] -> [size, ...].

    Raises:
      ValueError: if a client has more than `size` examples.
    """
    n = num_examples_of(examples)
    if n > size:
        raise ValueError(f"Cannot pad {n} examples to {size}.")
    return jax.tree.map(
        lambda x: np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)]), examples
    )


def num_examples_of(examples: dict) -> int:
    """Length of the example axis (including padding)."""
    return int(examples["mask"].shape[0])


def stack_clients(clients: Sequence[dict], size: int | None = None) -> dict:
    """Pads each client's examples to a common size and stacks them.

    Args:
      clients: per-client example dicts, leaves [n_c, ...] (layout in spec.py).
      size: pad to this many examples (default: the largest client, at least 1).

    Returns:
      A dict with leaves [len(clients), size, ...].
    """
    if size is None:
        size = max([1] + [num_examples_of(c) for c in clients])
    padded = [pad_examples(c, size) for c in clients]
    return jax.tree.map(lambda *xs: np.stack(xs), *padded)


def from_rows(
    spec: spec_lib.DataSpec,
    client_names: Sequence[str],
    train_rows: Sequence[np.ndarray],
    test_rows: Sequence[np.ndarray],
    examples: dict,
    *,
    groups: Sequence[str] = (),
    positions: np.ndarray | None = None,
) -> "Federation":
    """A federation gathered from one flat table of examples.

    Args:
      spec: the data spec.
      client_names: one name per client.
      train_rows: per client, int indices into the example axis of `examples`
        (e.g. from `fedjax_m3t.data.split.client_rows`).
      test_rows: the same for test.
      examples: the layout of spec.py without 'mask', leaves [N, ...] over all
        examples of all clients ('mask' is added: True for every gathered row).
      groups: optional, one group label per client.
      positions: optional int [N], the position of each example in the source
        table, recorded as the federation's row positions (default: the indices
        into `examples` themselves).

    Returns:
      The Federation, leaves [num_clients, max rows per client, ...], zero-padded,
      with `train_rows` / `test_rows` recording each client's source rows.
    """

    def gather(rows: np.ndarray) -> dict:
        rows = np.asarray(rows, np.int64)
        picked = jax.tree.map(lambda x: np.asarray(x)[rows], examples)
        return {**picked, "mask": np.ones(len(rows), bool)}

    def source(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        return rows if positions is None else np.asarray(positions, np.int64)[rows]

    return Federation(
        spec=spec,
        client_names=tuple(client_names),
        train=stack_clients([gather(r) for r in train_rows]),
        test=stack_clients([gather(r) for r in test_rows]),
        groups=tuple(groups),
        train_rows=tuple(source(r) for r in train_rows),
        test_rows=tuple(source(r) for r in test_rows),
    )


@dataclasses.dataclass(frozen=True)
class Federation:
    """All clients' train and test examples.

    Attributes:
      spec: modalities, shapes and tasks.
      client_names: one display name per client (e.g. an institution id).
      train: stacked train examples, leaves [num_clients, max_train, ...].
      test: stacked test examples, leaves [num_clients, max_test, ...].
      groups: per client, a group label (e.g. the local education authority of a
        school), for per-group metrics; () if the clients have none.
      train_rows: per client, int64 [n_train_c] positions in the source table of
        its train examples, in their order (a DataFrame's iloc, the index of a
        built TFDS split); () if not recorded (synthetic or combined data).
      test_rows: the same for the test examples.
      global_test: optional held-out examples that belong to no client (e.g. a
        benchmark's official test set), leaves [n, ...] in the layout of spec.py;
        the simulation scores the global model on it. None if there is none.
    """

    spec: spec_lib.DataSpec
    client_names: tuple[str, ...]
    train: dict
    test: dict
    groups: tuple[str, ...] = ()
    train_rows: tuple[np.ndarray, ...] = ()
    test_rows: tuple[np.ndarray, ...] = ()
    global_test: dict | None = None

    def __post_init__(self):
        validate_examples(self.spec, self.train, "train", len(self.client_names))
        validate_examples(self.spec, self.test, "test", len(self.client_names))
        if self.global_test is not None:
            one = jax.tree.map(lambda x: np.asarray(x)[None], self.global_test)
            validate_examples(self.spec, one, "global_test (one set, no client axis)", 1)
        if self.groups and len(self.groups) != self.num_clients:
            raise ValueError(f"{len(self.groups)} groups for {self.num_clients} clients.")
        for split, rows in (("train", self.train_rows), ("test", self.test_rows)):
            counts = np.asarray(getattr(self, split)["mask"]).sum(axis=1)
            if rows and [len(r) for r in rows] != counts.tolist():
                raise ValueError(
                    f"{split}_rows must hold one position per real {split} example of each "
                    f"of the {self.num_clients} clients."
                )

    @property
    def num_clients(self) -> int:
        return len(self.client_names)

    def group_ids(self) -> np.ndarray:
        """int32 [num_clients]: 1 + the index of each client's group among the sorted
        group names (ClientContext.group); all 0 when the clients have no groups."""
        if not self.groups:
            return np.zeros(self.num_clients, np.int32)
        names = sorted(set(self.groups))
        return np.asarray([1 + names.index(g) for g in self.groups], np.int32)

    def num_examples(self, split: str = "train") -> np.ndarray:
        """Real examples per client, int64 [num_clients]."""
        return getattr(self, split)["mask"].sum(axis=1)

    def modality_coverage(self, split: str = "train") -> dict[str, np.ndarray]:
        """Per modality: examples per client that have it, [num_clients]."""
        data = getattr(self, split)
        return {m: (data["present"][m] & data["mask"]).sum(axis=1) for m in self.spec.modalities}

    def label_coverage(self, split: str = "train") -> dict[str, np.ndarray]:
        """Per task: labelled examples per client, [num_clients]."""
        data = getattr(self, split)
        return {t: (data["label_mask"][t] & data["mask"]).sum(axis=1) for t in self.spec.task_names}

    def with_modalities(self, modalities: Sequence[str]) -> "Federation":
        """The same federation seeing only `modalities` (others marked absent).

        Inputs keep their shapes, so a model built for the full spec still applies;
        used for single-modality baselines.
        """
        unknown = set(modalities) - set(self.spec.modalities)
        if unknown:
            raise ValueError(f"Modalities {sorted(unknown)} are not in {self.spec.modalities}.")

        def hide(data):
            present = {
                m: v if m in modalities else np.zeros_like(v) for m, v in data["present"].items()
            }
            return {**data, "present": present}

        return dataclasses.replace(self, train=hide(self.train), test=hide(self.test))

    def summary(self) -> str:
        """Human-readable statistics: clients, sizes, modality and label coverage."""
        n = self.num_examples("train")
        q = np.quantile(n, [0, 0.1, 0.5, 0.9, 1.0]).round(1)
        lines = [
            f"Federation: {self.num_clients} clients, {int(n.sum())} train / "
            f"{int(self.num_examples('test').sum())} test examples",
            f"  train examples per client: min {q[0]}, p10 {q[1]}, median {q[2]}, "
            f"p90 {q[3]}, max {q[4]}",
        ]
        for m, c in self.modality_coverage().items():
            lines.append(
                f"  modality {m:<12} held by {int((c > 0).sum()):>4} clients, "
                f"{int(c.sum())} examples"
            )
        for t, c in self.label_coverage().items():
            lines.append(
                f"  task     {t:<12} held by {int((c > 0).sum()):>4} clients, {int(c.sum())} labels"
            )
        return "\n".join(lines)


def validate_examples(spec: spec_lib.DataSpec, data: dict, split: str, num_clients: int) -> None:
    """Checks the stacked layout against the spec; ValueError says what is wrong."""
    where = f"Federation {split} data"
    for key in ("inputs", "present", "labels", "label_mask", "mask"):
        if key not in data:
            raise ValueError(f"{where} lacks {key!r}; see fedjax_m3t/data/spec.py for the layout.")
    mask = np.asarray(data["mask"])
    if mask.ndim != 2 or mask.shape[0] != num_clients:
        raise ValueError(
            f"{where}: 'mask' must be [num_clients={num_clients}, n], got {mask.shape}."
        )
    n = mask.shape[1]
    expected = {
        "text": (n, spec.text_embedding_dim) if spec.text_embedding_dim else (n, spec.text_length),
        "image": (n, spec.image_size, spec.image_size),
        "interaction": (n, spec.interaction_length, 2),
        "tabular": (n, spec.tabular_features),
    }
    for m in spec.modalities:
        if m not in data["inputs"] or m not in data["present"]:
            raise ValueError(f"{where}: modality {m!r} is in the spec but missing from the data.")
        shape = tuple(np.shape(data["inputs"][m])[1:])
        if shape != expected[m]:
            raise ValueError(
                f"{where}: inputs[{m!r}] has per-client shape {shape}, spec says {expected[m]}."
            )
    for task in spec.task_names:
        if task not in data["labels"] or task not in data["label_mask"]:
            raise ValueError(f"{where}: task {task!r} has no 'labels' / 'label_mask' entry.")
