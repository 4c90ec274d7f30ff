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
"""A linear model on tabular features: one dense head per task, no hidden units.

The classical-statistics anchor: with full-batch local steps and full
participation, FedAvg on it is gradient descent on the pooled least-squares (or
logistic) objective. Params: {'heads': {task: {'kernel': [F, out], 'bias': [out]}}}.
"""

import jax.numpy as jnp

from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.models import interface


def build_linear_model(spec: spec_lib.DataSpec) -> interface.Model:
    """A linear model reading `inputs['tabular']` [n, F].

    Raises:
      ValueError: if the spec has no 'tabular' modality.
    """
    if "tabular" not in spec.modalities:
        raise ValueError(f"The linear model reads 'tabular'; the data has {spec.modalities}.")
    num_features = spec.tabular_features

    def init(rng):
        del rng  # Zero init: the solution is then the same for every seed.
        return {
            "heads": {
                task.name: {
                    "kernel": jnp.zeros((num_features, task.output_dim), jnp.float32),
                    "bias": jnp.zeros((task.output_dim,), jnp.float32),
                }
                for task in spec.tasks
            }
        }

    def apply(params, examples, *, rng=None, train=False):
        del rng, train  # Deterministic.
        x = examples["inputs"]["tabular"]
        present = examples["present"]["tabular"][:, None]
        x = jnp.where(present, x, 0.0)
        out = {}
        for task in spec.tasks:
            head = params["heads"][task.name]
            y = x @ head["kernel"] + head["bias"]
            out[task.name] = y[:, 0] if task.output_dim == 1 else y
        return out

    def module_usage(examples):
        mask = examples["mask"]
        return {
            f"heads/{task.name}": jnp.sum(mask & examples["label_mask"][task.name]).astype(
                jnp.float32
            )
            for task in spec.tasks
        }

    return interface.Model(spec=spec, init=init, apply=apply, module_usage=module_usage)
