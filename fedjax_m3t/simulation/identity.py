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
"""What a run is, as JSON: the identity a checkpoint must share with a run resuming it.

A checkpoint's state shapes do not say which run wrote it: FedAdam and FedYogi
keep the same moments, and a federation of 4 clients with no local leaves has
the same state as one of 5. So `run` saves with every checkpoint an identity
built here from the objects themselves, and resumes only when it is unchanged:

  * algorithm: its `description` (name and hyperparameters, filled by
    `registry.build_algorithm`; a hand-built `fed_opt` one may pass its own), the
    module policy (which leaves are federated, local or frozen) and the structure
    of its server state;
  * model: the data spec it was built for and every parameter's path, shape and dtype;
  * federation: client count and names, per-client train and test example counts,
    the data spec;
  * the seed and the cohort size (both change which clients train in every round).

What may change between a run and its resumption (rounds, devices, chunking,
outputs) is not part of it. Long values are kept as short digests; `differences`
says which entries changed.
"""

import dataclasses
import hashlib
import json

import jax
import numpy as np

from fedjax_m3t import tree


def digest(value) -> str:
    """A 12-hex-digit digest of a JSON-able (or repr-able) value."""
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _shapes(pytree) -> list[str]:
    """'path shape dtype' per leaf of a pytree of arrays or ShapeDtypeStructs."""
    leaves = jax.tree.leaves(pytree)
    return [
        f"{p} {tuple(x.shape)} {x.dtype}"
        for p, x in zip(tree.leaf_paths(pytree), leaves, strict=True)
    ]


def _spec(spec) -> str:
    return digest(dataclasses.asdict(spec))


def describe_algorithm(algorithm, params_shapes) -> dict:
    """The algorithm's identity: description, policy and server-state structure."""
    state = jax.eval_shape(algorithm.init, params_shapes)
    labels = jax.tree.leaves(algorithm.policy.labels)
    return {
        **(getattr(algorithm, "description", None) or {}),
        "policy": digest(list(zip(tree.leaf_paths(algorithm.policy.labels), labels, strict=True))),
        "server_state": digest(_shapes(state)),
    }


def describe_model(model, params_shapes) -> dict:
    """The model's identity: its spec and every parameter's path, shape and dtype."""
    sizes = [int(np.prod(x.shape)) for x in jax.tree.leaves(params_shapes)]
    return {
        "spec": _spec(model.spec),
        "params": digest(_shapes(params_shapes)),
        "num_params": int(sum(sizes)),
    }


def describe_federation(federation) -> dict:
    """The federation's identity: clients, their example counts and the data spec."""
    return {
        "num_clients": int(federation.num_clients),
        "client_names": digest(list(federation.client_names)),
        "train_examples": digest(np.asarray(federation.train["mask"]).sum(1).tolist()),
        "test_examples": digest(np.asarray(federation.test["mask"]).sum(1).tolist()),
        "spec": _spec(federation.spec),
    }


def run_identity(algorithm, model, federation, *, seed: int, cohort_size: int) -> dict:
    """{'algorithm', 'model', 'federation', 'seed', 'cohort_size'} of a run (JSON values).

    Args:
      algorithm: a FederatedAlgorithm.
      model: the Model it was built for.
      federation: the clients' data.
      seed: the run's seed.
      cohort_size: clients per round.
    """
    params_shapes = jax.eval_shape(model.init, jax.random.key(0))
    return {
        "algorithm": describe_algorithm(algorithm, params_shapes),
        "model": describe_model(model, params_shapes),
        "federation": describe_federation(federation),
        "seed": int(seed),
        "cohort_size": int(cohort_size),
    }


def differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """'key: saved -> current' for each entry that differs (nested keys joined by '.').

    >>> differences({'a': {'name': 'fedadam'}, 'n': 4}, {'a': {'name': 'fedyogi'}, 'n': 4})
    ['a.name: fedadam -> fedyogi']
    """
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(value) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
