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
"""Parameter-efficient adapters: LoRA projections and learned prompt tokens.

Adapters are the parameters a federation can train and communicate while the
backbone stays frozen. They live under 'adapters/...' in the params pytree:

  'adapters/lora/<layer>/attn/<projection>/{lora_a, lora_b}'   LoRA factors
  'adapters/prompts'                                            [P, D] prompt tokens

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR
2022) adds a low-rank update to a Dense projection:

  y = x W + b + (alpha / r) x A B,   A [in, r] ~ N(0, 1/in),   B [r, out] = 0,

so a fresh adapter changes nothing. `LoRADense` keeps W and b in the usual
'params' collection (they belong to the backbone) and A and B in the separate
`LORA_COLLECTION` variable collection, which the model stores under
'adapters/lora' rather than 'backbone'.

Prompt tuning (Lester et al., "The Power of Scale for Parameter-Efficient Prompt
Tuning", EMNLP 2021) prepends P learned tokens of width D to the token sequence.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

# The Linen variable collection that holds LoRA factors (see module docstring).
LORA_COLLECTION = "lora"
# Attention projections LoRA can target (names of the backbone's Dense layers).
ATTENTION_PROJECTIONS = ("query", "key", "value", "out")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Which adapters a model has.

    Attributes:
      lora_rank: rank r of every LoRA update; 0 disables LoRA.
      lora_alpha: LoRA scale numerator; the update is scaled by alpha / r.
      lora_targets: attention projections that get LoRA, from ATTENTION_PROJECTIONS.
      num_prompts: P learned prompt tokens prepended to the sequence; 0 disables.
    """

    lora_rank: int = 0
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("query", "value")
    num_prompts: int = 0

    def __post_init__(self):
        if self.lora_rank < 0 or self.num_prompts < 0:
            raise ValueError(
                f"lora_rank ({self.lora_rank}) and num_prompts ({self.num_prompts}) must be >= 0."
            )
        bad = [p for p in self.lora_targets if p not in ATTENTION_PROJECTIONS]
        if bad:
            raise ValueError(f"Unknown LoRA targets {bad}; choose from {ATTENTION_PROJECTIONS}.")

    @property
    def has_lora(self) -> bool:
        return self.lora_rank > 0 and bool(self.lora_targets)

    @property
    def has_adapters(self) -> bool:
        """Whether the params pytree has an 'adapters' subtree."""
        return self.has_lora or self.num_prompts > 0

    def lora_rank_for(self, projection: str) -> int:
        """The LoRA rank of an attention projection (0 when it is not a target)."""
        return self.lora_rank if projection in self.lora_targets else 0


def _lora_a_init(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """A ~ N(0, 1/in): the update x A has the scale of x."""
    return jax.random.normal(key, shape, jnp.float32) / jnp.sqrt(shape[0])


class LoRADense(nn.Module):
    """A Dense layer with an optional LoRA update: y = x W + b + (alpha/r) x A B.

    W [in, out] and b [out] are 'params'; A [in, r] and B [r, out] are in the
    `LORA_COLLECTION` collection, initialised from the `LORA_COLLECTION` rng
    stream (so adding LoRA does not change how W and b are initialised).

    Attributes:
      features: out, the output width.
      rank: r; 0 makes this a plain Dense layer with no LoRA variables.
      alpha: scale numerator.
      kernel_init: initialiser of W.
    """

    features: int
    rank: int = 0
    alpha: float = 8.0
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Applies the projection.

        Args:
          x: float [..., in].

        Returns:
          float32 [..., out].
        """
        d_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (d_in, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = jnp.dot(x, kernel) + bias
        if self.rank > 0:
            a = self.variable(
                LORA_COLLECTION,
                "lora_a",
                lambda: _lora_a_init(self.make_rng(LORA_COLLECTION), (d_in, self.rank)),
            ).value
            b = self.variable(
                LORA_COLLECTION, "lora_b", lambda: jnp.zeros((self.rank, self.features))
            ).value
            y = y + (self.alpha / self.rank) * jnp.dot(jnp.dot(x, a), b)
        return y


def init_prompts(key: jax.Array, num_prompts: int, width: int) -> jax.Array:
    """Fresh prompt tokens, float32 [num_prompts, width] ~ N(0, 0.02^2)."""
    return 0.02 * jax.random.normal(key, (num_prompts, width), jnp.float32)


def prepend_prompts(
    prompts: jax.Array, tokens: jax.Array, token_mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Prepends the same prompt tokens to every example's sequence.

    Args:
      prompts: float [P, D].
      tokens: float [n, T, D].
      token_mask: bool [n, T].

    Returns:
      (tokens [n, P + T, D], token_mask [n, P + T]); prompt tokens are always valid.
    """
    n = tokens.shape[0]
    p = jnp.broadcast_to(prompts.astype(tokens.dtype), (n,) + prompts.shape)
    valid = jnp.ones((n, prompts.shape[0]), jnp.bool_)
    return jnp.concatenate([p, tokens], axis=1), jnp.concatenate([valid, token_mask], axis=1)
