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
"""Small tabular federations built by hand, for the engine's unit tests.

Every helper returns host NumPy arrays in the layout of `fedjax_m3t.data.spec`.
Tests import it as `from tests import helpers` (the repository root is on sys.path
under pytest: the root conftest.py puts it there, and `python -m pytest` runs there).
"""

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib


def tabular_spec(
    tasks: Sequence[tuple[str, str]] = (("y", "regression"),),
    num_features: int = 2,
    num_classes: int = 3,
) -> spec_lib.DataSpec:
    """A spec with only the 'tabular' modality and the given (name, kind) tasks."""
    return spec_lib.DataSpec(
        modalities=("tabular",),
        tasks=tuple(
            spec_lib.TaskSpec(
                name=name, kind=kind, num_classes=num_classes if kind == "multiclass" else 1
            )
            for name, kind in tasks
        ),
        tabular_features=num_features,
    )


def client(
    x: Sequence,
    labels: Mapping[str, Sequence],
    *,
    label_mask: Mapping[str, Sequence] | None = None,
    mask: Sequence | None = None,
    present: Sequence | None = None,
) -> dict:
    """One client's examples [n, ...] from features `x` [n, F] and labels {task: [n]}.

    Labels are float32, except integer label lists (multiclass ids), which are int32.
    Masks default to all True.
    """
    x = np.asarray(x, np.float32)
    n = x.shape[0]
    ones = lambda: np.ones(n, bool)  # A fresh array per mask: tests edit them in place.

    def as_label(y):
        y = np.asarray(y)
        return y.astype(np.int32) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)

    label_mask = label_mask or {}
    return {
        "inputs": {"tabular": x},
        "present": {"tabular": ones() if present is None else np.array(present, bool)},
        "labels": {k: as_label(v) for k, v in labels.items()},
        "label_mask": {
            k: np.array(label_mask[k], bool) if k in label_mask else ones() for k in labels
        },
        "mask": ones() if mask is None else np.array(mask, bool),
    }


def linear_client(
    rng: np.random.Generator,
    n: int,
    tasks: Sequence[str] = ("y",),
    num_features: int = 2,
    noise: float = 0.1,
) -> dict:
    """n examples x ~ N(0, 1), y_task = x @ w_task + b_task + noise (fixed w, b per task)."""
    x = rng.normal(size=(n, num_features))
    labels = {}
    for i, task in enumerate(tasks):
        w = np.linspace(1.0, -1.0, num_features) * (i + 1)
        labels[task] = x @ w + 0.5 * (i + 1) + noise * rng.normal(size=n)
    return client(x, labels)


def stack(clients: Sequence[dict], size: int | None = None) -> dict:
    """Pads the clients to a common number of examples and stacks them: [C, n, ...]."""
    return federation_lib.stack_clients(clients, size)


def federation(
    spec: spec_lib.DataSpec, train: Sequence[dict], test: Sequence[dict] | None = None
) -> federation_lib.Federation:
    """A Federation of the given per-client examples (test defaults to train)."""
    return federation_lib.Federation(
        spec=spec,
        client_names=tuple(f"client{c}" for c in range(len(train))),
        train=stack(train),
        test=stack(test if test is not None else train),
    )


def take(stacked, c: int):
    """Client `c`'s slice of a pytree stacked on a leading client axis."""
    return jax.tree.map(lambda x: x[c], stacked)


def stack_trees(trees: Sequence) -> object:
    """Stacks pytrees of the same structure on a new leading axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def train_small_m3t(federation: federation_lib.Federation, *, rounds: int, client_lr: float = 3e-3):
    """FedAvg of a small M3T model on every client each round, as the dataset tests use.

    The model has width 32, one layer, 4 heads and no LoRA; each round every client
    takes 5 Adam steps on batches of 32.

    Returns:
      (model, SimulationResult).
    """
    from fedjax_m3t import simulation  # noqa: PLC0415 - keeps this module light.
    from fedjax_m3t.algorithms import local_training, registry  # noqa: PLC0415
    from fedjax_m3t.models import m3t  # noqa: PLC0415

    model = m3t.build_m3t_model(
        federation.spec, m3t.M3TConfig(width=32, depth=1, num_heads=4, lora_rank=0)
    )
    algorithm = registry.build_algorithm(
        "fedavg",
        model,
        local=local_training.LocalTrainingConfig(local_steps=5, batch_size=32),
        client_learning_rate=client_lr,
        client_optimizer_name="adam",
    )
    config = simulation.SimulationConfig(
        rounds=rounds, cohort_size=federation.num_clients, verbose=False
    )
    return model, simulation.run(algorithm, model, federation, config)


def per_skill_baseline_auc(federation: federation_lib.Federation) -> float:
    """Test AUC of predicting each query skill's train rate of 'correct' (KT baseline).

    Skills unseen in train get the overall train rate.
    """
    from fedjax_m3t import metrics  # noqa: PLC0415 - keeps this module light.

    def flat(data):  # Query skills and labels of the real examples.
        mask = data["mask"]
        return data["inputs"]["interaction"][mask][:, -1, 0], data["labels"]["correct"][mask]

    train_skill, train_y = flat(federation.train)
    test_skill, test_y = flat(federation.test)
    rate = {s: train_y[train_skill == s].mean() for s in np.unique(train_skill)}
    baseline = np.array([rate.get(s, train_y.mean()) for s in test_skill])
    return metrics.roc_auc(test_y, baseline)
