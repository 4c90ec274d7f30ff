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
"""Multi-modal institutions from several single-dataset federations.

No public education dataset shares its institutions with another, yet the setting
the library is for has institutions holding several modalities (a school with
tutoring logs AND essays). `combine` builds such institutions: combined client j
holds the examples of one client of each part federation (or of none). Each
example keeps only its own modalities and tasks: the others are marked absent
(`present` False) and unlabelled (`label_mask` False), so the M3T model masks them
out and selective aggregation weighs each module by the examples that used it.

`pair_by_size` is the documented default pairing: the k-th largest client of each
part joins the k-th combined institution (large schools with large schools), the
parts' clients beyond the smallest part's count staying single-dataset clients.
"""

from collections.abc import Sequence

import jax
import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib

# The DataSpec fields that size each modality's inputs.
_SIZE_FIELDS = {
    "text": ("text_vocab_size", "text_length", "text_embedding_dim"),
    "image": ("image_size",),
    "interaction": ("num_skills", "interaction_length"),
    "tabular": ("tabular_features",),
}


def combined_spec(specs: Sequence[spec_lib.DataSpec]) -> spec_lib.DataSpec:
    """The union of the parts' modalities and tasks, with each modality's sizes.

    Raises:
      ValueError: if two parts share a modality with different sizes, or a task
        name with different TaskSpecs.
    """
    fields, tasks = {}, {}
    for i, spec in enumerate(specs):
        for m in spec.modalities:
            sizes = {f: getattr(spec, f) for f in _SIZE_FIELDS[m]}
            if m == "text" and spec.text_embedding_dim:
                # Sentence embeddings: only their width shapes the inputs.
                sizes = {"text_embedding_dim": spec.text_embedding_dim}
            if fields.setdefault(m, (i, sizes))[1] != sizes:
                j = fields[m][0]
                raise ValueError(
                    f"Parts {j} and {i} both have modality {m!r} but with different sizes "
                    f"({fields[m][1]} vs {sizes}); encode them alike to combine them."
                )
        for task in spec.tasks:
            if tasks.setdefault(task.name, task) != task:
                raise ValueError(
                    f"Task {task.name!r} differs between parts ({tasks[task.name]} vs {task}); "
                    "rename one of them."
                )
    modalities = tuple(m for m in spec_lib.MODALITIES if m in fields)
    sizes = {k: v for m in modalities for k, v in fields[m][1].items()}
    return spec_lib.DataSpec(modalities=modalities, tasks=tuple(tasks.values()), **sizes)


def _client_examples(fed: federation_lib.Federation, split: str, c: int) -> dict:
    data = getattr(fed, split)
    real = np.asarray(data["mask"][c])
    return {
        key: {k: np.asarray(v[c])[real] for k, v in data[key].items()}
        for key in ("inputs", "present", "labels", "label_mask")
    } | {"n": int(real.sum())}


def _widen(part: dict, spec: spec_lib.DataSpec, template: dict) -> dict:
    """One part's examples in the combined layout: absent modalities, unlabelled tasks."""
    n = part["n"]
    out = {"inputs": {}, "present": {}, "labels": {}, "label_mask": {}}
    for m in spec.modalities:
        if m in part["inputs"]:
            out["inputs"][m] = part["inputs"][m]
            out["present"][m] = part["present"][m]
        else:
            proto = template["inputs"][m]
            out["inputs"][m] = np.zeros((n,) + proto.shape[2:], proto.dtype)
            out["present"][m] = np.zeros(n, bool)
    for task in spec.tasks:
        if task.name in part["labels"]:
            out["labels"][task.name] = part["labels"][task.name]
            out["label_mask"][task.name] = part["label_mask"][task.name]
        else:
            dtype = template["labels"][task.name].dtype
            out["labels"][task.name] = np.zeros(n, dtype)
            out["label_mask"][task.name] = np.zeros(n, bool)
    out["mask"] = np.ones(n, bool)
    return out


def combine(
    parts: Sequence[federation_lib.Federation],
    members: Sequence[Sequence[int | None]],
    names: Sequence[str] | None = None,
) -> federation_lib.Federation:
    """Institutions made of clients of several federations.

    Args:
      parts: P federations (their specs must agree on shared modalities and tasks).
      members: per combined client, P entries: the index of the part's client it
        holds, or None. Every part client may appear at most once overall.
      names: combined client names; default: the members' names joined by '+'.

    Returns:
      A Federation with the union spec (`combined_spec`); client j's train (test)
      examples are its members' train (test) examples, part 0's first; leaves
      [len(members), max examples, ...].

    Raises:
      ValueError: for a wrong member count, an out-of-range or repeated client, or
        a combined client with no member.
    """
    spec = combined_spec([p.spec for p in parts])
    seen = set()
    for j, row in enumerate(members):
        if len(row) != len(parts):
            raise ValueError(
                f"Combined client {j} lists {len(row)} members for {len(parts)} parts."
            )
        if all(c is None for c in row):
            raise ValueError(f"Combined client {j} has no member.")
        for i, c in enumerate(row):
            if c is None:
                continue
            if not 0 <= c < parts[i].num_clients or (i, c) in seen:
                raise ValueError(
                    f"Combined client {j}: part {i} client {c} is out of range or reused."
                )
            seen.add((i, c))
    if names is None:
        names = [
            "+".join(parts[i].client_names[c] for i, c in enumerate(row) if c is not None)
            for row in members
        ]
    templates = {}
    for p in parts:
        templates.setdefault("inputs", {}).update(p.train["inputs"])
        templates.setdefault("labels", {}).update(p.train["labels"])
    splits = {}
    for split in ("train", "test"):
        clients = []
        for row in members:
            pieces = [
                _widen(_client_examples(parts[i], split, c), spec, templates)
                for i, c in enumerate(row)
                if c is not None
            ]
            clients.append(jax.tree.map(lambda *xs: np.concatenate(xs), *pieces))
        splits[split] = federation_lib.stack_clients(clients)
    return federation_lib.Federation(
        spec=spec, client_names=tuple(names), train=splits["train"], test=splits["test"]
    )


def pair_by_size(parts: Sequence[federation_lib.Federation]) -> list[list[int | None]]:
    """Members for `combine`: the k-th largest client (train examples) of every part.

    Ties keep the lower client index first. Combined client k holds, from each
    part with more than k clients, its k-th largest; so there are max(clients)
    combined clients, the last ones from the larger parts only.

    Returns:
      [max_p clients_p][P] client indices or None.
    """
    orders = [np.argsort(-p.num_examples("train"), kind="stable") for p in parts]
    count = max(len(o) for o in orders)
    return [[int(o[k]) if k < len(o) else None for o in orders] for k in range(count)]


def combine_by_size(parts: Sequence[federation_lib.Federation]) -> federation_lib.Federation:
    """`combine(parts, pair_by_size(parts))`."""
    return combine(parts, pair_by_size(parts))
