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
"""Personalisation by module policy: which modules stay on each institution.

Three personalised algorithms are FedAvg (fed_opt) with a module policy whose
`local` leaves never leave the client (they are absent from every ClientOutput
delta, hence from every aggregate, and the server's copies keep their initial
values):

  * FedPer (Arivazhagan et al., 2019, arXiv:1912.00818): a shared body, one
    local head per task and client: `heads/**` local;
  * FedBN (Li et al., 2021, arXiv:2102.07623, "FedBN: Federated Learning on
    Non-IID Features via Local Batch Normalization"): the normalisation layers
    local. The M3T model has no BatchNorm; its normalisation layers are the
    LayerNorms (`backbone/layer_<i>/ln_attn`, `ln_mlp`, `backbone/final_ln`, and
    any LayerNorm of an encoder), found by name by `norm_patterns`;
  * per-institution adapters: the LoRA factors (`adapters/lora/**`, and the text
    encoder's `adapters/text_lora/**` when present) local, the rest federated.

Each builder keeps the user's own patterns (e.g. a frozen backbone) and adds its
local ones; frozen still takes precedence (policy.py), so a module the user froze
stays frozen.
"""

import dataclasses

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t import typing as t

HEAD_PATTERNS = ("heads/**",)
LORA_PATTERNS = ("adapters/lora/**", "adapters/text_lora/**")
# Module names the model's LayerNorms carry (m3t.py, backbone.py, minilm.py).
_NORM_NAMES = ("ln", "layernorm", "layer_norm", "norm")


def with_local(
    base: policy_lib.ModulePolicy | None, patterns: tuple[str, ...]
) -> policy_lib.ModulePolicy:
    """`base` (default: all federated) with `patterns` added to its local ones."""
    base = base or policy_lib.ModulePolicy()
    return dataclasses.replace(base, local=tuple(base.local) + tuple(patterns))


def is_norm_segment(segment: str) -> bool:
    """Whether a path segment names a LayerNorm ('ln_attn', 'final_ln', 'LayerNorm', ...)."""
    parts = segment.lower().replace("-", "_").split("_")
    return segment.lower() in _NORM_NAMES or any(p in ("ln", "layernorm") for p in parts)


def norm_patterns(params: t.Params) -> tuple[str, ...]:
    """The path prefixes of every normalisation module of `params`, sorted.

    Args:
      params: the full params pytree (arrays or ShapeDtypeStructs).

    Returns:
      One pattern per LayerNorm module, e.g. ('backbone/final_ln',
      'backbone/layer_0/ln_attn', 'backbone/layer_0/ln_mlp') for a 1-layer M3T model.

    Raises:
      ValueError: if the model has no normalisation layer (FedBN would be FedAvg).
    """
    found = set()
    for path in tree.leaf_paths(params):
        segments = path.split("/")
        for i, segment in enumerate(segments[:-1]):  # The last segment is the leaf.
            if is_norm_segment(segment):
                found.add("/".join(segments[: i + 1]))
                break
    if not found:
        raise ValueError("FedBN: the model has no normalisation layer to keep local.")
    return tuple(sorted(found))


def fedper(base: policy_lib.ModulePolicy | None = None) -> policy_lib.ModulePolicy:
    """FedPer's policy: every task head local, the rest as in `base`."""
    return with_local(base, HEAD_PATTERNS)


def fedbn(params: t.Params, base: policy_lib.ModulePolicy | None = None) -> policy_lib.ModulePolicy:
    """FedBN's policy: every normalisation layer of `params` local (see norm_patterns)."""
    return with_local(base, norm_patterns(params))


def local_adapters(
    params: t.Params, base: policy_lib.ModulePolicy | None = None
) -> policy_lib.ModulePolicy:
    """Per-institution adapters: the LoRA factors local, the rest as in `base`.

    Raises:
      ValueError: if the model has no LoRA factors (e.g. M3TConfig(lora_rank=0)).
    """
    paths = tree.leaf_paths(params)
    present = tuple(p for p in LORA_PATTERNS if any(tree.path_matches(p, q) for q in paths))
    if not present:
        raise ValueError(
            "Local adapters: the model has no LoRA factors (adapters/lora); build it "
            "with lora_rank > 0."
        )
    return with_local(base, present)
