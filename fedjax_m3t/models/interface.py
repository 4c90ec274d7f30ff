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
"""The interface between models and federated algorithms.

Algorithms never see a Flax module: they see a `Model`, a NamedTuple of pure
functions over a params pytree whose top-level keys are module roles
('encoders', 'backbone', 'adapters', 'heads', ...).
"""

from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax

from fedjax_m3t import typing as t
from fedjax_m3t.data import spec as spec_lib


class ApplyFn(Protocol):
    def __call__(
        self, params: t.Params, examples: dict, *, rng: t.PRNGKey | None = None, train: bool = False
    ) -> dict[str, jax.Array]:
        """Predicts every task.

        Args:
          params: the full params pytree.
          examples: a batch (layout in fedjax_m3t.data.spec), leaves [n, ...].
          rng: key for dropout etc.; None when train=False.
          train: training mode.

        Returns:
          {task: [n] (binary logit / regression value) or [n, K] (multiclass logits)}.
        """


class Model(NamedTuple):
    """A model as pure functions.

    Attributes:
      spec: the data it reads and the tasks it predicts.
      init: key -> params pytree.
      apply: see ApplyFn.
      module_usage: examples -> {module path: float32 scalar count of the real
        examples that exercise that module}, e.g. {'encoders/image': examples with an
        image, 'heads/score': examples with a 'score' label, 'backbone': all real
        examples}. Selective aggregation weights each parameter leaf by the count of
        the longest module path that is a prefix of the leaf's path; leaves under no
        listed module are weighted by the number of real examples.
    """

    spec: spec_lib.DataSpec
    init: Callable[[t.PRNGKey], t.Params]
    apply: ApplyFn
    module_usage: Callable[[dict], dict[str, jax.Array]]


def plain_model(
    spec: spec_lib.DataSpec,
    init: Callable[[t.PRNGKey], t.Params],
    predict: Callable[[t.Params, dict[str, jax.Array]], dict[str, jax.Array]],
) -> Model:
    """A Model from a plain network that needs none of the multi-modal layout.

    `predict(params, inputs)` sees only `examples['inputs']` (e.g. {'tabular':
    [n, F]}) and returns {task: predictions}; the model has no randomness, and
    every leaf is weighted by the client's real examples (no module is optional).

    >>> import jax.numpy as jnp
    >>> from fedjax_m3t.data import spec
    >>> s = spec.DataSpec(modalities=('tabular',), tabular_features=3,
    ...     tasks=(spec.TaskSpec(name='y', kind='regression'),))
    >>> model = plain_model(s, lambda key: {'w': jnp.zeros((3,))},
    ...     lambda p, inputs: {'y': inputs['tabular'] @ p['w']})

    Args:
      spec: the data spec (its tasks name the outputs).
      init: key -> params.
      predict: (params, inputs) -> {task: [n] or [n, K]}.
    """

    def apply(params, examples, *, rng=None, train=False):
        del rng, train  # A plain network: deterministic.
        return predict(params, examples["inputs"])

    def module_usage(examples):
        del examples  # Unused: every leaf takes the default weight (real examples).
        return {}

    return Model(spec=spec, init=init, apply=apply, module_usage=module_usage)
