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
"""Tests for LoRA projections, prompt tokens and the adapter config."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.models import adapters


def _init(module, x, key=0):
    return module.init(
        {"params": jax.random.key(key), adapters.LORA_COLLECTION: jax.random.key(key + 1)}, x
    )


class LoRADenseTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.x = jax.random.normal(jax.random.key(7), (3, 5), jnp.float32)

    def test_rank_zero_is_plain_dense(self):
        variables = _init(adapters.LoRADense(4), self.x)
        self.assertEqual(list(variables), ["params"])
        p = variables["params"]
        y = adapters.LoRADense(4).apply(variables, self.x)
        np.testing.assert_allclose(y, self.x @ p["kernel"] + p["bias"], rtol=1e-6, atol=1e-6)

    def test_fresh_adapter_is_identity_change(self):
        lora = adapters.LoRADense(4, rank=2, alpha=8.0)
        variables = _init(lora, self.x)
        factors = variables[adapters.LORA_COLLECTION]
        self.assertEqual(factors["lora_a"].shape, (5, 2))
        np.testing.assert_array_equal(factors["lora_b"], np.zeros((2, 4)))  # B = 0.
        self.assertGreater(float(jnp.abs(factors["lora_a"]).sum()), 0.0)
        plain = adapters.LoRADense(4).apply({"params": variables["params"]}, self.x)
        np.testing.assert_array_equal(lora.apply(variables, self.x), plain)

    def test_update_is_scaled_low_rank_product(self):
        lora = adapters.LoRADense(4, rank=2, alpha=8.0)
        variables = _init(lora, self.x)
        b = jnp.arange(8, dtype=jnp.float32).reshape(2, 4) / 8
        variables = {
            "params": variables["params"],
            adapters.LORA_COLLECTION: {"lora_a": variables["lora"]["lora_a"], "lora_b": b},
        }
        p, a = variables["params"], variables["lora"]["lora_a"]
        # alpha / r = 8 / 2 = 4.
        want = self.x @ p["kernel"] + p["bias"] + 4.0 * (self.x @ a) @ b
        np.testing.assert_allclose(lora.apply(variables, self.x), want, rtol=1e-5, atol=1e-5)

    def test_lora_does_not_change_base_init(self):
        with_lora = _init(adapters.LoRADense(4, rank=3), self.x)["params"]
        without = _init(adapters.LoRADense(4), self.x)["params"]
        jax.tree.map(np.testing.assert_array_equal, with_lora, without)

    def test_a_init_scale(self):
        # A ~ N(0, 1/in) = N(0, 0.05^2); the sample std of 20000 entries is off by ~0.5%.
        x = jnp.zeros((1, 400))
        a = _init(adapters.LoRADense(2, rank=50), x)["lora"]["lora_a"]
        self.assertAlmostEqual(float(jnp.std(a)), 0.05, delta=0.002)
        self.assertAlmostEqual(float(jnp.mean(a)), 0.0, delta=0.002)


class PromptTest(absltest.TestCase):
    def test_prepend(self):
        prompts = adapters.init_prompts(jax.random.key(0), 2, 3)
        self.assertEqual(prompts.shape, (2, 3))
        tokens = jnp.ones((4, 5, 3))
        mask = jnp.zeros((4, 5), bool)
        out, out_mask = adapters.prepend_prompts(prompts, tokens, mask)
        self.assertEqual(out.shape, (4, 7, 3))
        for i in range(4):
            np.testing.assert_array_equal(out[i, :2], prompts)
        np.testing.assert_array_equal(out[:, 2:], tokens)
        np.testing.assert_array_equal(out_mask, np.array([[1, 1, 0, 0, 0, 0, 0]] * 4, bool))


class AdapterConfigTest(absltest.TestCase):
    def test_flags(self):
        self.assertFalse(adapters.AdapterConfig().has_adapters)
        self.assertTrue(adapters.AdapterConfig(lora_rank=2).has_lora)
        self.assertFalse(adapters.AdapterConfig(lora_rank=2, lora_targets=()).has_adapters)
        self.assertTrue(adapters.AdapterConfig(num_prompts=1).has_adapters)
        config = adapters.AdapterConfig(lora_rank=2, lora_targets=("key",))
        self.assertEqual([config.lora_rank_for(p) for p in ("query", "key")], [0, 2])

    def test_no_mixture_of_experts_stub(self):
        # The reserved-but-unimplemented MoE switch was removed (no stubs).
        with self.assertRaises(TypeError):
            adapters.AdapterConfig(num_experts=4)

    def test_bad_target_raises(self):
        with self.assertRaisesRegex(ValueError, r"Unknown LoRA targets \['mlp'\]"):
            adapters.AdapterConfig(lora_rank=2, lora_targets=("mlp",))


if __name__ == "__main__":
    absltest.main()
