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
"""Tests for the per-modality encoders: shapes, masks and hand-computed tokens."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.models import encoders


def _init_apply(module, x):
    params = module.init(jax.random.key(0), x)["params"]
    tokens, mask = module.apply({"params": params}, x)
    return params, np.asarray(tokens), np.asarray(mask)


class TextEncoderTest(absltest.TestCase):
    def test_tokens_are_embedding_plus_position_plus_type(self):
        x = jnp.array([[3, 1, 0, 0], [2, 2, 2, 0]], jnp.int32)
        params, tokens, mask = _init_apply(encoders.TextEncoder(5, 8, max_length=6), x)
        self.assertEqual(tokens.shape, (2, 4, 8))
        self.assertEqual(tokens.dtype, np.float32)
        # Token id 0 is padding.
        np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 1, 0]])
        table, pos, typ = (
            np.asarray(params[k]) for k in ("token_embed", "pos_embed", "type_embed")
        )
        self.assertEqual(pos.shape, (6, 8))
        # Example 1, position 2 holds token 2.
        np.testing.assert_allclose(tokens[1, 2], table[2] + pos[2] + typ, rtol=0, atol=1e-7)

    def test_out_of_range_ids_are_clipped_not_nan(self):
        x = jnp.array([[7, -3]], jnp.int32)
        params, tokens, _ = _init_apply(encoders.TextEncoder(5, 4, max_length=2), x)
        self.assertTrue(np.isfinite(tokens).all())
        want = np.asarray(params["token_embed"])[4] + params["pos_embed"][0] + params["type_embed"]
        np.testing.assert_allclose(tokens[0, 0], want, rtol=0, atol=1e-7)

    def test_too_long_raises(self):
        with self.assertRaisesRegex(ValueError, "input length 5 exceeds max_length 4"):
            _init_apply(encoders.TextEncoder(5, 4, max_length=4), jnp.ones((1, 5), jnp.int32))


class ImageEncoderTest(absltest.TestCase):
    def test_patches_are_row_major_and_dense(self):
        # A 4x4 image with pixel value 4*row + col, patches of 2x2.
        image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
        params, tokens, mask = _init_apply(encoders.ImageEncoder(4, 2, 3), jnp.asarray(image))
        self.assertEqual(tokens.shape, (1, 4, 3))
        np.testing.assert_array_equal(mask, np.ones((1, 4), bool))
        kernel = np.asarray(params["patch_embed"]["kernel"])
        bias = np.asarray(params["patch_embed"]["bias"])
        self.assertEqual(kernel.shape, (4, 3))
        for i, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
            patch = image[0, r : r + 2, c : c + 2].ravel()  # e.g. patch 1 = [2, 3, 6, 7]
            want = patch @ kernel + bias + params["pos_embed"][i] + params["type_embed"]
            np.testing.assert_allclose(tokens[0, i], want, rtol=1e-6, atol=1e-6)

    def test_bad_patch_size_raises_helpful_error(self):
        with self.assertRaisesRegex(
            ValueError, r"patch_size=5 does not divide image_size=28; choose one of \[1, 2, 4, 7"
        ):
            encoders.ImageEncoder(28, 5, 8)

    def test_wrong_image_shape_raises(self):
        with self.assertRaisesRegex(ValueError, r"expected images \[n, 4, 4\]"):
            _init_apply(encoders.ImageEncoder(4, 2, 3), jnp.zeros((1, 6, 6)))


class InteractionEncoderTest(absltest.TestCase):
    def test_skill_plus_response_plus_position(self):
        x = jnp.array([[[3, 1], [1, 0], [2, 2], [0, 0]]], jnp.int32)
        params, tokens, mask = _init_apply(encoders.InteractionEncoder(3, 4, 8), x)
        self.assertEqual(tokens.shape, (1, 4, 8))
        np.testing.assert_array_equal(mask, [[1, 1, 1, 0]])  # Skill id 0 is padding.
        self.assertEqual(params["skill_embed"].shape, (4, 8))  # ids 0..3
        self.assertEqual(params["response_embed"].shape, (3, 8))
        # Step 2: skill 2, response 2 (the query item).
        want = (
            params["skill_embed"][2]
            + params["response_embed"][2]
            + params["pos_embed"][2]
            + params["type_embed"]
        )
        np.testing.assert_allclose(tokens[0, 2], want, rtol=0, atol=1e-7)


class TabularEncoderTest(absltest.TestCase):
    def test_feature_tokenizer(self):
        x = jnp.array([[2.0, -1.0, 0.0]], jnp.float32)
        params, tokens, mask = _init_apply(encoders.TabularEncoder(3, 4), x)
        self.assertEqual(tokens.shape, (1, 3, 4))
        np.testing.assert_array_equal(mask, np.ones((1, 3), bool))
        w, b, typ = (np.asarray(params[k]) for k in ("weight", "bias", "type_embed"))
        self.assertEqual(w.shape, (3, 4))
        # token_f = x_f W_f + b_f + type; feature 2 is 0 so its token is b_2 + type.
        np.testing.assert_allclose(tokens[0], x[0, :, None] * w + b + typ, rtol=0, atol=1e-7)
        np.testing.assert_allclose(tokens[0, 2], b[2] + typ, rtol=0, atol=1e-7)


if __name__ == "__main__":
    absltest.main()
