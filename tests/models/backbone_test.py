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
"""Tests for the transformer backbone: attention numbers, key masking, LoRA."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.models import adapters, backbone

_WIDTH, _HEADS = 8, 2


def _tokens(n=3, length=5, key=0):
    return jax.random.normal(jax.random.key(key), (n, length, _WIDTH), jnp.float32)


def _mask():
    # Example 0 all valid, example 1 with two masked tokens, example 2 none valid.
    return jnp.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], bool)


def _model(depth=2, **adapter_kwargs):
    return backbone.Backbone(
        depth=depth,
        num_heads=_HEADS,
        mlp_dim=16,
        adapter=adapters.AdapterConfig(**adapter_kwargs),
    )


def _apply(module):
    # Jitted: eager op-by-op dispatch of a transformer is slow on CPU.
    return jax.jit(module.apply)


def _init(module, tokens, mask):
    # lazy_init: from shapes alone, without an (eager, slow to compile) forward pass.
    shapes = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (tokens, mask)]
    rngs = {"params": jax.random.key(1), adapters.LORA_COLLECTION: jax.random.key(2)}
    return module.lazy_init(rngs, *shapes)


def _reference_attention(params, queries, keys, key_mask):
    """Multi-head attention written per head in NumPy float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    queries, keys = np.asarray(queries, np.float64), np.asarray(keys, np.float64)
    q = queries @ p["query"]["kernel"] + p["query"]["bias"]
    k = keys @ p["key"]["kernel"] + p["key"]["bias"]
    v = keys @ p["value"]["kernel"] + p["value"]["bias"]
    hd = _WIDTH // _HEADS
    out = np.zeros(q.shape)
    for i in range(q.shape[0]):
        valid = np.asarray(key_mask[i])
        for h in range(_HEADS):
            cols = slice(h * hd, (h + 1) * hd)
            logits = q[i, :, cols] @ k[i, valid, cols].T / np.sqrt(hd)
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            out[i, :, cols] = w @ v[i, valid, cols]
    return out @ p["out"]["kernel"] + p["out"]["bias"]


class SelfAttentionTest(absltest.TestCase):
    def test_matches_reference(self):
        attn = backbone.SelfAttention(_HEADS, adapters.AdapterConfig())
        x = _tokens()
        key_mask = _mask().at[2, 0].set(True)  # Every row needs a valid key here.
        params = attn.init(jax.random.key(0), x, x, key_mask)["params"]
        self.assertEqual(sorted(params), ["key", "out", "query", "value"])
        got = _apply(attn)({"params": params}, x, x, key_mask)
        want = _reference_attention(params, x, x, key_mask)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


class BackboneTest(chex.TestCase):
    def test_shape_and_param_names(self):
        variables = _init(_model(), _tokens(), _mask())
        self.assertEqual(list(variables), ["params"])  # No LoRA at rank 0.
        self.assertEqual(sorted(variables["params"]), ["cls", "final_ln", "layer_0", "layer_1"])
        out = _apply(_model())(variables, _tokens(), _mask())
        self.assertEqual(out.shape, (3, _WIDTH))
        self.assertTrue(np.isfinite(np.asarray(out)).all())  # Also the all-masked example.
        # The output is final-LayerNorm'ed: with fresh scale 1, bias 0, zero mean, unit variance.
        np.testing.assert_allclose(out.mean(-1), np.zeros(3), atol=1e-5)
        np.testing.assert_allclose(out.var(-1), np.ones(3), rtol=1e-3)

    def test_masked_tokens_never_reach_the_output(self):
        model, x, mask = _model(), _tokens(), _mask()
        variables = _init(model, x, mask)
        apply = _apply(model)
        base = apply(variables, x, mask)
        # Garbage (even nan/inf) in masked tokens: bit-identical outputs.
        garbage = jnp.where(mask[..., None], x, jnp.nan).at[2, 0, 0].set(jnp.inf)
        np.testing.assert_array_equal(apply(variables, garbage, mask), base)
        # A fully-masked example gives the CLS-only output.
        cls_only = apply(variables, x[2:, :0], mask[2:, :0])
        np.testing.assert_allclose(base[2:], cls_only, rtol=1e-6, atol=1e-6)
        # Changing a valid token of example 1 changes only example 1 (not by a constant:
        # LayerNorm would remove that).
        changed = apply(variables, x.at[1, 2].add(jnp.arange(_WIDTH) / _WIDTH), mask)
        np.testing.assert_array_equal(changed[::2], base[::2])
        self.assertGreater(float(jnp.abs(changed[1] - base[1]).max()), 1e-3)

    def test_gradient_of_masked_tokens_is_exactly_zero(self):
        model, x, mask = _model(), _tokens(), _mask()
        variables = _init(model, x, mask)
        grad = jax.jit(jax.grad(lambda t: jnp.sum(model.apply(variables, t, mask) ** 3)))(x)
        np.testing.assert_array_equal(jnp.where(mask[..., None], 0.0, grad), np.zeros(x.shape))
        self.assertTrue(bool(jnp.all(jnp.abs(grad[0]).sum(-1) > 0)))

    def test_fresh_lora_equals_no_lora(self):
        x, mask = _tokens(), _mask()
        with_lora = _model(lora_rank=2, lora_targets=("query", "value", "out"))
        variables = _init(with_lora, x, mask)
        lora = variables[adapters.LORA_COLLECTION]
        self.assertEqual(sorted(lora), ["layer_0", "layer_1"])
        self.assertEqual(sorted(lora["layer_0"]["attn"]), ["out", "query", "value"])
        plain = _apply(_model())({"params": variables["params"]}, x, mask)
        # Same backbone params: a zero B makes the LoRA model bit-identical.
        lora_apply = _apply(with_lora)
        np.testing.assert_array_equal(lora_apply(variables, x, mask), plain)
        # The backbone's own params do not depend on whether LoRA exists.
        chex.assert_trees_all_equal(variables["params"], _init(_model(), x, mask)["params"])
        # A non-zero B changes the output.
        lora = jax.tree.map(lambda a: a + 0.1, lora)
        out = lora_apply({"params": variables["params"], "lora": lora}, x, mask)
        self.assertGreater(float(jnp.abs(out - plain).max()), 1e-3)

    def test_bad_width_raises(self):
        model = backbone.Backbone(depth=1, num_heads=3, mlp_dim=4)
        with self.assertRaisesRegex(ValueError, "width 8 must be divisible by num_heads 3"):
            _init(model, _tokens(), _mask())


if __name__ == "__main__":
    absltest.main()
