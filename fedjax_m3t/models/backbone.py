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
"""The shared backbone: a pre-LayerNorm transformer encoder with a CLS token.

Input: the concatenated tokens of all modalities (and prompts) [n, T, D] and a
key mask [n, T]. A learned CLS token is prepended and is always valid, so no
attention row is ever fully masked. Masked tokens (padding, absent modalities)
are excluded from attention as keys: their logits are replaced by the float32
minimum, so their softmax weight is exactly 0. Their contents are also zeroed on
entry, so that neither their values nor garbage (inf/nan) in them reach the
valid tokens. Changing a masked token therefore leaves the output bit-identical
and gives it an exactly zero gradient. Nothing is zero-imputed into attention.

The output is the final-LayerNorm'ed CLS vector [n, D]. Only the CLS row is
computed in the last layer.

Architecture: Vaswani et al., "Attention Is All You Need", NeurIPS 2017, with
pre-LayerNorm blocks (Xiong et al., "On Layer Normalization in the Transformer
Architecture", ICML 2020) and a CLS token (Devlin et al., BERT, NAACL 2019).
LoRA (see adapters.py) is applied to the attention projections that the
AdapterConfig names, in every layer.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedjax_m3t.models import adapters

_LN_EPSILON = 1e-6


class SelfAttention(nn.Module):
    """Multi-head attention with explicit q, k, v and output projections.

    Attributes:
      num_heads: H; width must be divisible by it.
      adapter: which projections carry LoRA, and its rank and scale.
    """

    num_heads: int
    adapter: adapters.AdapterConfig

    def _proj(self, name: str, width: int) -> adapters.LoRADense:
        return adapters.LoRADense(
            width,
            rank=self.adapter.lora_rank_for(name),
            alpha=self.adapter.lora_alpha,
            name=name,
        )

    @nn.compact
    def __call__(self, queries: jax.Array, keys: jax.Array, key_mask: jax.Array) -> jax.Array:
        """Attends from `queries` to the valid `keys`.

        Args:
          queries: float32 [n, Q, D] (normalised).
          keys: float32 [n, T, D] (normalised); also the values.
          key_mask: bool [n, T]; False keys get exactly zero attention weight.

        Returns:
          float32 [n, Q, D].
        """
        n, num_q, width = queries.shape
        head_dim = width // self.num_heads

        def heads(x: jax.Array) -> jax.Array:  # [n, L, D] -> [n, L, H, D/H]
            return x.reshape(x.shape[0], x.shape[1], self.num_heads, head_dim)

        q = heads(self._proj("query", width)(queries))
        k = heads(self._proj("key", width)(keys))
        v = heads(self._proj("value", width)(keys))
        logits = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(jnp.float32(head_dim))
        logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, num_q, width)
        return self._proj("out", width)(out)


class EncoderBlock(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MLP(LN(x)).

    Attributes:
      num_heads: attention heads.
      mlp_dim: hidden width of the MLP.
      adapter: LoRA settings for the attention projections.
      cls_only: compute only the first (CLS) row's output (for the last layer).
    """

    num_heads: int
    mlp_dim: int
    adapter: adapters.AdapterConfig
    cls_only: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: jax.Array) -> jax.Array:
        """Applies the block.

        Args:
          x: float32 [n, T, D].
          key_mask: bool [n, T].

        Returns:
          float32 [n, T, D], or [n, 1, D] when cls_only.
        """
        width = x.shape[-1]
        h = nn.LayerNorm(epsilon=_LN_EPSILON, name="ln_attn")(x)
        if self.cls_only:
            x, q = x[:, :1], h[:, :1]
        else:
            q = h
        x = x + SelfAttention(self.num_heads, self.adapter, name="attn")(q, h, key_mask)
        h = nn.LayerNorm(epsilon=_LN_EPSILON, name="ln_mlp")(x)
        h = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_in")(h))
        return x + nn.Dense(width, name="mlp_out")(h)


class Backbone(nn.Module):
    """Transformer encoder over all tokens; returns the normalised CLS vector.

    Parameters ('params' collection): 'cls' [D], 'layer_<i>' (each layer's own
    LayerNorms, attention projections and MLP), 'final_ln'. LoRA factors, if any,
    are in the `adapters.LORA_COLLECTION` collection under the same module paths.

    Attributes:
      depth: number of transformer layers (>= 1).
      num_heads: attention heads per layer.
      mlp_dim: hidden width of each MLP.
      adapter: LoRA settings (prompts are handled by the caller).
    """

    depth: int
    num_heads: int
    mlp_dim: int
    adapter: adapters.AdapterConfig = adapters.AdapterConfig()

    @nn.compact
    def __call__(self, tokens: jax.Array, token_mask: jax.Array) -> jax.Array:
        """Encodes a token sequence.

        Args:
          tokens: float [n, T, D], D divisible by num_heads.
          token_mask: bool [n, T]; False tokens are masked out of attention.

        Returns:
          float32 [n, D]: the final-LayerNorm'ed CLS vector.

        Raises:
          ValueError: if D is not divisible by num_heads or depth < 1.
        """
        n, _, width = tokens.shape
        if width % self.num_heads or self.depth < 1:
            raise ValueError(
                f"Backbone: width {width} must be divisible by num_heads {self.num_heads}, "
                f"and depth ({self.depth}) must be >= 1."
            )
        # Zeroed so that garbage in masked tokens cannot leak through 0 * inf = nan.
        tokens = jnp.where(token_mask[..., None], tokens.astype(jnp.float32), 0.0)
        cls = self.param("cls", nn.initializers.normal(stddev=0.02), (width,))
        x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, width)), tokens], axis=1)
        mask = jnp.concatenate([jnp.ones((n, 1), jnp.bool_), token_mask], axis=1)
        for i in range(self.depth):
            x = EncoderBlock(
                self.num_heads,
                self.mlp_dim,
                self.adapter,
                cls_only=i == self.depth - 1,
                name=f"layer_{i}",
            )(x, mask)
        return nn.LayerNorm(epsilon=_LN_EPSILON, name="final_ln")(x[:, 0])
