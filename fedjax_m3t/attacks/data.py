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
"""Data attacks on the attackers' train split: label flipping and a backdoor trigger.

Both edit a `Federation`'s host arrays (a copy) before training, so the engine
runs unchanged; the attackers then train honestly on poisoned data.

  * label flipping (e.g. Tolpegin et al., 2020, "Data Poisoning Attacks Against
    Federated Learning Systems"): on every labelled train example of an attacker,
    multiclass y -> K - 1 - y, binary y -> 1 - y, regression y -> -y.
  * backdoor (Bagdasaryan et al., 2020, "How To Backdoor Federated Learning";
    the trigger of Gu et al., 2017, BadNets): a bright square patch in the
    bottom-right corner of one image modality (the scan of handwritten work) on a
    fraction of each attacker's examples that have the modality, relabelled to a
    target class of one task. The attack success rate is the share of triggered
    test inputs (real, modality present, true label not the target) that the
    model assigns to the target.
"""

import copy
import dataclasses

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib


def _task(spec: spec_lib.DataSpec, name: str) -> spec_lib.TaskSpec:
    for task in spec.tasks:
        if task.name == name:
            return task
    raise ValueError(f"No task {name!r}; the tasks are {[t.name for t in spec.tasks]}.")


def flip_labels(
    federation: federation_lib.Federation, attackers: np.ndarray, tasks=None
) -> federation_lib.Federation:
    """A copy of the federation with the attackers' train labels flipped.

    Args:
      federation: the honest federation.
      attackers: bool [num_clients].
      tasks: the task names to flip (None: every task).

    Returns:
      The poisoned federation (test split unchanged).
    """
    train = copy.deepcopy(federation.train)
    rows = np.asarray(attackers, bool)
    for task in federation.spec.tasks:
        if tasks is not None and task.name not in tasks:
            continue
        y = train["labels"][task.name]
        where = rows[:, None] & train["label_mask"][task.name] & train["mask"]
        if task.kind == "multiclass":
            flipped = task.num_classes - 1 - y
        elif task.kind == "binary":
            flipped = 1 - y
        else:
            flipped = -y
        train["labels"][task.name] = np.where(where, flipped, y).astype(y.dtype)
    return _replace_train(federation, train)


def _replace_train(federation, train):
    return dataclasses.replace(federation, train=train)


def add_trigger(images: np.ndarray, where: np.ndarray, size: int = 4, value: float = 1.0):
    """images [..., H, W] with a size x size patch of `value` bottom-right where `where` [...]."""
    out = np.array(images, copy=True)
    patch = out[..., -size:, -size:]
    patch[where] = value
    return out


def backdoor(
    federation: federation_lib.Federation,
    attackers: np.ndarray,
    *,
    task: str,
    target: int,
    modality: str = "image",
    fraction: float = 0.5,
    size: int = 4,
    seed: int = 0,
) -> federation_lib.Federation:
    """A copy of the federation whose attackers trained on triggered, relabelled examples.

    Args:
      federation: the honest federation.
      attackers: bool [num_clients].
      task: the task whose label the trigger forces (binary or multiclass).
      target: the forced label (a class id; 0 or 1 for binary).
      modality: an image modality of the spec ([n, H, W] inputs).
      fraction: share of each attacker's real examples with the modality that are poisoned.
      size: the patch's side in pixels.
      seed: which examples are poisoned.

    Returns:
      The poisoned federation (test split unchanged).
    """
    if modality not in federation.spec.modalities:
        raise ValueError(f"No modality {modality!r} in {federation.spec.modalities}.")
    spec = _task(federation.spec, task)
    if spec.kind == "regression":
        raise ValueError(f"A backdoor needs a class label; task {task!r} is a regression.")
    classes = 2 if spec.kind == "binary" else spec.num_classes
    if not 0 <= target < classes:
        raise ValueError(f"Backdoor target {target} is not a class of {task!r} (0..{classes - 1}).")
    train = copy.deepcopy(federation.train)
    rng = np.random.default_rng(seed)
    eligible = train["mask"] & train["present"][modality] & np.asarray(attackers, bool)[:, None]
    poisoned = eligible & (rng.random(eligible.shape) < fraction)
    train["inputs"][modality] = add_trigger(train["inputs"][modality], poisoned, size)
    y = train["labels"][task]
    train["labels"][task] = np.where(poisoned, target, y).astype(y.dtype)
    train["label_mask"][task] = train["label_mask"][task] | poisoned
    return _replace_train(federation, train)


def triggered_test(
    data: dict, *, task: str, target: int, modality: str = "image", size: int = 4
) -> tuple[dict, np.ndarray]:
    """Test examples with the trigger, and which of them count for the success rate.

    Args:
      data: examples, leaves [num_clients, n, ...] (a federation's test split).
      task, target, modality, size: as in `backdoor`.

    Returns:
      (the data with every example that has the modality triggered, bool
      [num_clients, n]: real, modality present, labelled for the task and not the target).
    """
    counted = (
        data["mask"]
        & data["present"][modality]
        & data["label_mask"][task]
        & (data["labels"][task] != target)
    )
    triggered = copy.deepcopy(data)
    where = data["mask"] & data["present"][modality]
    triggered["inputs"][modality] = add_trigger(data["inputs"][modality], where, size)
    return triggered, counted


def attack_success_rate(
    spec: spec_lib.DataSpec, predictions: dict, counted: np.ndarray, *, task: str, target: int
) -> float:
    """Share of the counted examples predicted as `target`.

    Args:
      spec: the data spec (the task's kind).
      predictions: {task: [num_clients, n] logits (binary) or [num_clients, n, K]}.
      counted: bool [num_clients, n] (from `triggered_test`).
      task, target: the backdoor's task and label.
    """
    logits = np.asarray(predictions[task])
    if _task(spec, task).kind == "binary":
        predicted = (logits > 0).astype(np.int32)
    else:
        predicted = np.argmax(logits, axis=-1)
    hits = (predicted == target) & counted
    return float(hits.sum() / max(counted.sum(), 1))
