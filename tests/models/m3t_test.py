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
"""Tests for the M3T model: the params API, masking, adapters, usage counts, jit/vmap."""

import dataclasses
import functools
import operator

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t import tasks as tasks_lib
from fedjax_m3t import tree
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.models import interface, m3t

_TASKS = (
    spec_lib.TaskSpec(name="passed", kind="binary"),
    spec_lib.TaskSpec(name="score", kind="regression"),
    spec_lib.TaskSpec(name="grade", kind="multiclass", num_classes=3),
)
# Tiny sizes keep every test to a few seconds on CPU.
_SPEC = spec_lib.DataSpec(
    modalities=spec_lib.MODALITIES,
    tasks=_TASKS,
    text_vocab_size=11,
    text_length=5,
    image_size=8,
    num_skills=6,
    interaction_length=4,
    tabular_features=3,
)
_CONFIG = m3t.M3TConfig(width=8, depth=2, num_heads=2, mlp_dim=16, patch_size=4, lora_rank=2)


@functools.cache
def _model(spec=_SPEC, **overrides) -> tuple[interface.Model, dict]:
    model = m3t.build_m3t_model(spec, dataclasses.replace(_CONFIG, **overrides))
    return model, model.init(jax.random.key(0))


@functools.cache
def _jit_apply(spec=_SPEC, **overrides):
    return jax.jit(_model(spec, **overrides)[0].apply)


def _batch(n: int = 4, seed: int = 0, spec: spec_lib.DataSpec = _SPEC) -> dict:
    """Random inputs; every modality, label and example present unless changed."""
    rng = np.random.default_rng(seed)
    text = rng.integers(1, spec.text_vocab_size, (n, spec.text_length))
    text[:, -2:] = 0  # Two padding tokens at the end.
    skills = rng.integers(1, spec.num_skills + 1, (n, spec.interaction_length))
    responses = rng.integers(0, 3, (n, spec.interaction_length))
    inputs = {
        "text": text.astype(np.int32),
        "image": rng.random((n, spec.image_size, spec.image_size)).astype(np.float32),
        "interaction": np.stack([skills, responses], -1).astype(np.int32),
        "tabular": rng.normal(size=(n, spec.tabular_features)).astype(np.float32),
    }
    labels = {
        "passed": rng.integers(0, 2, n).astype(np.float32),
        "score": rng.normal(size=n).astype(np.float32),
        "grade": rng.integers(0, 3, n).astype(np.int32),
    }
    return {
        "inputs": {m: inputs[m] for m in spec.modalities},
        "present": {m: np.ones(n, bool) for m in spec.modalities},
        "labels": {t.name: labels[t.name] for t in spec.tasks},
        "label_mask": {t.name: np.ones(n, bool) for t in spec.tasks},
        "mask": np.ones(n, bool),
    }


def _set(batch: dict, path: tuple[str, ...], index, value) -> dict:
    """A copy of `batch` with leaf[index] = value for the leaf at `path`."""
    batch = jax.tree.map(np.copy, batch)
    functools.reduce(operator.getitem, path, batch)[index] = value
    return batch


def _update_params(params: dict, updates: dict) -> dict:
    """A copy of `params` with fn(leaf) at each '/'-joined path in `updates`."""
    return tree.map_with_paths(lambda p, x: updates[p](x) if p in updates else x, params)


def _assert_identical(a: dict, b: dict):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _max_diff(a: dict, b: dict) -> float:
    return max(
        float(jnp.abs(x - y).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


class ParamsTreeTest(absltest.TestCase):
    def test_top_level_keys_and_module_names(self):
        _, params = _model()
        self.assertEqual(list(params), ["encoders", "backbone", "adapters", "heads"])
        self.assertEqual(
            tree.module_names(params),
            {
                "encoders/text",
                "encoders/image",
                "encoders/interaction",
                "encoders/tabular",
                "backbone/cls",
                "backbone/layer_0",
                "backbone/layer_1",
                "backbone/final_ln",
                "adapters/lora",
                "heads/passed",
                "heads/score",
                "heads/grade",
            },
        )
        # LoRA factors on query and value of every layer, and nowhere in 'backbone'.
        lora_paths = tree.leaf_paths(params["adapters"])
        self.assertEqual(
            lora_paths,
            [
                f"lora/layer_{i}/attn/{p}/lora_{ab}"
                for i in range(2)
                for p in ("query", "value")
                for ab in "ab"
            ],
        )
        self.assertFalse(any("lora" in p for p in tree.leaf_paths(params["backbone"])))
        self.assertEqual(
            params["adapters"]["lora"]["layer_1"]["attn"]["value"]["lora_a"].shape, (8, 2)
        )
        self.assertEqual(params["heads"]["grade"]["kernel"].shape, (8, 3))

    def test_adapters_omitted_or_with_prompts(self):
        self.assertNotIn("adapters", _model(lora_rank=0)[1])
        params = _model(lora_rank=0, num_prompts=3)[1]
        self.assertEqual(list(params["adapters"]), ["prompts"])
        self.assertEqual(params["adapters"]["prompts"].shape, (3, 8))

    def test_only_spec_modalities_and_tasks(self):
        spec = dataclasses.replace(_SPEC, modalities=("tabular", "text"), tasks=_TASKS[1:2])
        _, params = _model(spec)
        self.assertEqual(sorted(params["encoders"]), ["tabular", "text"])
        self.assertEqual(list(params["heads"]), ["score"])

    def test_init_is_deterministic_and_per_module(self):
        _, params = _model()
        chex.assert_trees_all_equal(params, _model()[0].init(jax.random.key(0)))
        # Dropping a task or LoRA leaves every other module's initial params unchanged.
        spec = dataclasses.replace(_SPEC, tasks=_TASKS[:1])
        _, fewer = _model(spec, lora_rank=0)
        chex.assert_trees_all_equal(fewer["encoders"], params["encoders"])
        chex.assert_trees_all_equal(fewer["backbone"], params["backbone"])
        chex.assert_trees_all_equal(fewer["heads"]["passed"], params["heads"]["passed"])

    def test_adapter_mask_selects_only_lora(self):
        _, params = _model()
        mask = tree.make_mask(params, "adapters/**")
        selected = [
            p for p, m in zip(tree.leaf_paths(params), jax.tree.leaves(mask), strict=True) if m
        ]
        self.assertLen(selected, 8)  # 2 layers x (query, value) x (A, B).
        self.assertTrue(all(p.startswith("adapters/lora/") for p in selected))


class ConfigErrorsTest(absltest.TestCase):
    def test_bad_patch_size(self):
        with self.assertRaisesRegex(ValueError, "patch_size=3 does not divide image_size=8"):
            m3t.build_m3t_model(_SPEC, dataclasses.replace(_CONFIG, patch_size=3))
        # Without images the patch size does not matter.
        spec = dataclasses.replace(_SPEC, modalities=("text",))
        m3t.build_m3t_model(spec, dataclasses.replace(_CONFIG, patch_size=3))

    def test_bad_heads_and_experts(self):
        with self.assertRaisesRegex(ValueError, "divisible by num_heads"):
            m3t.M3TConfig(width=10, num_heads=4)
        with self.assertRaises(TypeError):  # No MoE stub field.
            m3t.M3TConfig(num_experts=2)


class ApplyTest(chex.TestCase):
    def test_output_shapes(self):
        _, params = _model()
        out = _jit_apply()(params, _batch(n=5))
        self.assertEqual(
            jax.tree.map(jnp.shape, out), {"passed": (5,), "score": (5,), "grade": (5, 3)}
        )
        self.assertEqual({x.dtype for x in out.values()}, {jnp.dtype(jnp.float32)})

    def test_fresh_lora_equals_no_adapters(self):
        _, params = _model()
        no_adapter_params = {k: v for k, v in params.items() if k != "adapters"}
        batch = _batch()
        _assert_identical(
            _jit_apply()(params, batch), _jit_apply(lora_rank=0)(no_adapter_params, batch)
        )

    def test_absent_modality_is_masked_not_imputed(self):
        _, params = _model()
        apply = _jit_apply()
        # Example 1 has no image.
        batch = _set(_batch(), ("present", "image"), 1, False)
        base = apply(params, batch)
        # New pixels (even nan) in the absent image: bit-identical predictions.
        absent = _set(batch, ("inputs", "image"), 1, np.nan)
        _assert_identical(apply(params, absent), base)
        # Zero-imputation would differ from masking: a present all-zero image changes them.
        zero_present = _set(_set(batch, ("inputs", "image"), 1, 0.0), ("present", "image"), 1, True)
        self.assertGreater(_max_diff(apply(params, zero_present), base), 1e-4)
        # New pixels in a present image (example 2) change its predictions, and only its.
        present = _set(batch, ("inputs", "image"), 2, 1.0)
        changed = apply(params, present)
        self.assertGreater(
            _max_diff({k: v[2] for k, v in changed.items()}, {k: v[2] for k, v in base.items()}),
            1e-4,
        )
        _assert_identical(
            {k: v[:2] for k, v in changed.items()}, {k: v[:2] for k, v in base.items()}
        )

    def test_padding_tokens_do_not_matter(self):
        _, params = _model()
        apply = _jit_apply()
        batch = _batch()
        batch["inputs"]["interaction"][:, -1, 0] = 0  # Last interaction step is padding.
        base = apply(params, batch)
        # Padding embeddings: text id 0, the text positions 3, 4 (always padding in _batch),
        # skill id 0; and the response of a padding interaction step.
        new = _update_params(
            params,
            {
                "encoders/text/token_embed": lambda x: x.at[0].set(5.0),
                "encoders/text/pos_embed": lambda x: x.at[3:].set(-5.0),
                "encoders/interaction/skill_embed": lambda x: x.at[0].set(3.0),
            },
        )
        _assert_identical(apply(new, batch), base)
        flipped = _set(batch, ("inputs", "interaction"), (slice(None), -1, 1), 2)
        _assert_identical(apply(params, flipped), base)
        # The same change to a real token's embedding does change them.
        real = _update_params(params, {"encoders/text/pos_embed": lambda x: x.at[0].set(-5.0)})
        self.assertGreater(_max_diff(apply(real, batch), base), 1e-4)

    def test_gradients(self):
        model, params = _model()

        def loss(p, batch):
            return tasks_lib.task_losses(_TASKS, model.apply(p, batch), batch)[0]

        grad_fn = jax.jit(jax.grad(loss))
        batch = _batch()
        no_image = _set(batch, ("present", "image"), slice(None), False)
        grads = grad_fn(params, no_image)
        # No example has an image: the image encoder gets an exactly zero gradient.
        for leaf in jax.tree.leaves(grads["encoders"]["image"]):
            np.testing.assert_array_equal(leaf, np.zeros(leaf.shape))
        self.assertGreater(float(tree.l2_norm(grads["encoders"]["text"])), 0.0)
        # Fresh LoRA (B = 0): dL/dA = 0 exactly, dL/dB != 0, so A, B can learn.
        lora = grads["adapters"]["lora"]["layer_0"]["attn"]["query"]
        np.testing.assert_array_equal(lora["lora_a"], np.zeros((8, 2)))
        self.assertGreater(float(jnp.abs(lora["lora_b"]).max()), 0.0)
        # With one example with an image, the image encoder learns.
        one_image = _set(no_image, ("present", "image"), 0, True)
        self.assertGreater(
            float(tree.l2_norm(grad_fn(params, one_image)["encoders"]["image"])), 0.0
        )

    def test_prompts_are_used(self):
        _, params = _model(lora_rank=0, num_prompts=2)
        apply = _jit_apply(lora_rank=0, num_prompts=2)
        batch = _batch()
        base = apply(params, batch)
        # Not a constant shift of a token: LayerNorm would remove that.
        moved = _update_params(params, {"adapters/prompts": lambda p: p + jnp.arange(8) / 8})
        self.assertGreater(_max_diff(apply(moved, batch), base), 1e-4)

    def test_modality_order_in_spec_is_irrelevant(self):
        spec_a = dataclasses.replace(_SPEC, modalities=("text", "tabular"))
        spec_b = dataclasses.replace(_SPEC, modalities=("tabular", "text"))
        _, params = _model(spec_a)
        batch = _batch(spec=spec_a)
        _assert_identical(_jit_apply(spec_a)(params, batch), _jit_apply(spec_b)(params, batch))

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        model, params = _model()
        batch = _batch()
        # Also: no dropout, so rng and train do not change the predictions.
        train_apply = functools.partial(model.apply, rng=jax.random.key(3), train=True)
        got = self.variant(train_apply)(params, batch)
        chex.assert_trees_all_close(got, _jit_apply()(params, batch), rtol=1e-5, atol=1e-5)

    def test_vmap_over_clients_equals_loop(self):
        model, params = _model()
        clients = [_batch(seed=s) for s in range(3)]
        clients[1]["present"]["text"][:] = False
        clients[2]["mask"][2:] = False
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *clients)
        # Per-client params too, as in a cohort of personalised models.
        client_params = jax.tree.map(lambda x: jnp.stack([x, x + 0.01, x - 0.01]), params)
        got = jax.jit(jax.vmap(model.apply))(client_params, stacked)
        apply = _jit_apply()
        for c in range(3):
            client = functools.partial(lambda c, x: x[c], c)
            want = apply(jax.tree.map(client, client_params), clients[c])
            chex.assert_trees_all_close(jax.tree.map(client, got), want, rtol=1e-5, atol=1e-5)


class ModuleUsageTest(absltest.TestCase):
    def test_counts(self):
        model, _ = _model()
        batch = _batch(n=5)
        batch["mask"] = np.array([1, 1, 1, 1, 0], bool)  # Example 4 is padding.
        batch["present"]["image"] = np.array([1, 0, 1, 0, 1], bool)
        batch["present"]["text"] = np.array([0, 0, 0, 0, 1], bool)
        batch["label_mask"]["grade"] = np.array([1, 0, 0, 1, 1], bool)
        usage = jax.jit(model.module_usage)(batch)
        want = {
            "encoders/text": 0.0,  # Only the padding example has text.
            "encoders/image": 2.0,  # Examples 0 and 2.
            "encoders/interaction": 4.0,
            "encoders/tabular": 4.0,
            "backbone": 4.0,
            "adapters": 4.0,
            "heads/passed": 4.0,
            "heads/score": 4.0,
            "heads/grade": 2.0,  # Examples 0 and 3.
        }
        self.assertEqual({k: float(v) for k, v in usage.items()}, want)
        self.assertEqual({v.dtype for v in usage.values()}, {jnp.dtype(jnp.float32)})
        no_adapters = _model(lora_rank=0)[0].module_usage(batch)
        self.assertNotIn("adapters", no_adapters)


if __name__ == "__main__":
    absltest.main()
