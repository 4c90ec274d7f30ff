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
"""Task heads: one Dense layer per task from the backbone's CLS vector.

A head is LayerNorm-free (the backbone's output is already normalised) and maps
[n, D] to the task's output: [n] for 'binary' (a logit) and 'regression' (a
value), [n, K] logits for 'multiclass'. Heads live under 'heads/<task name>'.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedjax_m3t.data import spec as spec_lib


class Head(nn.Module):
    """y = x W + b, squeezed to [n] when output_dim == 1.

    Attributes:
      output_dim: K (TaskSpec.output_dim).
    """

    output_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Predicts one task.

        Args:
          x: float [n, D].

        Returns:
          float32 [n] when output_dim == 1, else [n, output_dim].
        """
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.output_dim)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.output_dim,))
        y = jnp.dot(x.astype(jnp.float32), kernel) + bias
        return y[:, 0] if self.output_dim == 1 else y


def make_head(task: spec_lib.TaskSpec) -> Head:
    """The head for `task`."""
    return Head(output_dim=task.output_dim)
