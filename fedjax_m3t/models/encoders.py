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
"""Per-modality encoders: each maps its input to tokens of the shared width.

Every encoder is a Flax Linen module whose `__call__(x)` returns

  tokens      float32 [n, T, D]   one token per text position / image patch /
                                  interaction step / tabular feature;
  token_mask  bool    [n, T]      False for padding tokens, which the backbone
                                  masks out of attention.

Each encoder also adds a learned modality-type embedding [D] to its tokens, so
the backbone can tell modalities apart and every parameter of a modality stays
in that encoder's subtree ('encoders/<modality>/...').

Embedding look-ups clip out-of-range ids (rather than `jnp.take`'s default NaN
fill), so garbage in padding can never produce NaNs.

The tabular tokenizer follows FT-Transformer: Gorishniy et al., "Revisiting
Deep Learning Models for Tabular Data", NeurIPS 2021. The image encoder is the
ViT patch embedding (Dosovitskiy et al., ICLR 2021) written as a reshape and one
Dense layer: vmapped convolutions are very slow on CPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

# Small-normal initialisation for embedding tables (BERT / ViT convention).
_EMBED_INIT = nn.initializers.normal(stddev=0.02)


def _lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Rows of `table` [V, D] at `ids` [...], out-of-range ids clipped -> [..., D]."""
    return jnp.take(table, ids.astype(jnp.int32), axis=0, mode="clip")


def _positional(module: nn.Module, max_length: int, length: int, width: int) -> jax.Array:
    """The module's learned positional embedding for the first `length` positions.

    Raises:
      ValueError: if `length` exceeds `max_length`.
    """
    if length > max_length:
        raise ValueError(
            f"{type(module).__name__}: input length {length} exceeds max_length {max_length}."
        )
    pos = module.param("pos_embed", _EMBED_INIT, (max_length, width))
    return pos[:length]


def _modality_type(module: nn.Module, width: int) -> jax.Array:
    """The module's learned modality-type embedding [D]."""
    return module.param("type_embed", _EMBED_INIT, (width,))


class TextEncoder(nn.Module):
    """Token embedding plus learned positional embedding; token id 0 is padding.

    Attributes:
      vocab_size: number of token ids (0 = padding).
      width: token width D.
      max_length: longest sequence (size of the positional table).
    """

    vocab_size: int
    width: int
    max_length: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encodes token ids.

        Args:
          x: int [n, T] token ids, T <= max_length, 0 = padding.

        Returns:
          (tokens float32 [n, T, D], token_mask bool [n, T] = x != 0).
        """
        table = self.param("token_embed", _EMBED_INIT, (self.vocab_size, self.width))
        pos = _positional(self, self.max_length, x.shape[1], self.width)
        tokens = _lookup(table, x) + pos + _modality_type(self, self.width)
        return tokens, x != 0


class EmbeddingTextEncoder(nn.Module):
    """One token from a sentence embedding: a Dense projection to the width.

    Reads the cached embeddings of a frozen text foundation model (DataSpec
    text_embedding_dim > 0), or the pooled output of a live one (M3T's 'minilm'
    text encoder), so both give the same parameters under this module.

    Attributes:
      width: token width D.
    """

    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encodes sentence embeddings.

        Args:
          x: float [n, E].

        Returns:
          (tokens float32 [n, 1, D], token_mask bool [n, 1], all True).
        """
        token = nn.Dense(self.width, name="project")(x.astype(jnp.float32))
        token = token + _modality_type(self, self.width)
        return token[:, None, :], jnp.ones((x.shape[0], 1), jnp.bool_)


class ImageEncoder(nn.Module):
    """Non-overlapping patches, one Dense patch embedding, learned positions.

    Attributes:
      image_size: height and width of the (square, grey-scale) image.
      patch_size: side of a square patch; must divide image_size.
      width: token width D.
    """

    image_size: int
    patch_size: int
    width: int

    def __post_init__(self):
        if self.patch_size <= 0 or self.image_size % self.patch_size != 0:
            divisors = [p for p in range(1, self.image_size + 1) if self.image_size % p == 0]
            raise ValueError(
                f"ImageEncoder: patch_size={self.patch_size} does not divide "
                f"image_size={self.image_size}; choose one of {divisors}."
            )
        super().__post_init__()

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encodes images.

        Args:
          x: float [n, H, W] with H = W = image_size.

        Returns:
          (tokens float32 [n, N, D] with N = (H / patch_size)^2 in row-major patch
          order, token_mask bool [n, N], all True).

        Raises:
          ValueError: if the image shape is not [n, image_size, image_size].
        """
        n = x.shape[0]
        if x.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(
                f"ImageEncoder: expected images [n, {self.image_size}, {self.image_size}], "
                f"got {x.shape}."
            )
        p, g = self.patch_size, self.image_size // self.patch_size
        # [n, g, p, g, p] -> [n, g, g, p, p] -> [n, g*g, p*p]
        patches = x.astype(jnp.float32).reshape(n, g, p, g, p).transpose(0, 1, 3, 2, 4)
        patches = patches.reshape(n, g * g, p * p)
        tokens = nn.Dense(self.width, name="patch_embed")(patches)
        tokens = tokens + _positional(self, g * g, g * g, self.width)
        tokens = tokens + _modality_type(self, self.width)
        return tokens, jnp.ones((n, g * g), jnp.bool_)


class InteractionEncoder(nn.Module):
    """Skill embedding + response embedding + positional embedding per step.

    Attributes:
      num_skills: skill ids are 1..num_skills; 0 is padding.
      length: longest interaction sequence (size of the positional table).
      width: token width D.
    """

    num_skills: int
    length: int
    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encodes (skill id, response) sequences.

        Args:
          x: int [n, L, 2]; x[..., 0] skill id in 0..num_skills (0 = padding),
            x[..., 1] response: 0 wrong, 1 right, 2 unknown (the query item).

        Returns:
          (tokens float32 [n, L, D], token_mask bool [n, L] = skill id != 0).
        """
        skill, response = x[..., 0], x[..., 1]
        skill_table = self.param("skill_embed", _EMBED_INIT, (self.num_skills + 1, self.width))
        response_table = self.param("response_embed", _EMBED_INIT, (3, self.width))
        tokens = _lookup(skill_table, skill) + _lookup(response_table, response)
        tokens = tokens + _positional(self, self.length, x.shape[1], self.width)
        tokens = tokens + _modality_type(self, self.width)
        return tokens, skill != 0


class TabularEncoder(nn.Module):
    """FT-Transformer feature tokenizer: token_f = x_f * W_f + b_f.

    Attributes:
      num_features: F, the number of (standardised, numeric) features.
      width: token width D.
    """

    num_features: int
    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encodes feature vectors.

        Args:
          x: float [n, F].

        Returns:
          (tokens float32 [n, F, D], token_mask bool [n, F], all True).
        """
        shape = (self.num_features, self.width)
        weight = self.param("weight", _EMBED_INIT, shape)
        bias = self.param("bias", _EMBED_INIT, shape)
        x = x.astype(jnp.float32)
        tokens = x[..., None] * weight + bias + _modality_type(self, self.width)
        return tokens, jnp.ones(x.shape, jnp.bool_)
