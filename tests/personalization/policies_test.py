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
"""FedPer, FedRep, FedBN and local adapters: the local modules never leave a client."""

import jax
import numpy as np
import pytest
from absl.testing import absltest, parameterized

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t.algorithms import base
from fedjax_m3t.personalization import policies
from tests.personalization import fixtures

HEADS = ("heads/a/bias", "heads/a/kernel", "heads/b/bias", "heads/b/kernel")
NORMS = (
    "backbone/final_ln/bias",
    "backbone/final_ln/scale",
    "backbone/layer_0/ln_attn/bias",
    "backbone/layer_0/ln_attn/scale",
    "backbone/layer_0/ln_mlp/bias",
    "backbone/layer_0/ln_mlp/scale",
)
LORA = tuple(
    f"adapters/lora/layer_0/attn/{p}/lora_{f}" for p in ("query", "value") for f in ("a", "b")
)


def _paths(tree_):
    return set(tree.leaf_paths(tree_))


class PatternsTest(absltest.TestCase):
    def test_norm_patterns_of_the_m3t_model(self):
        shapes = jax.eval_shape(fixtures.model().init, jax.random.key(0))
        self.assertEqual(
            policies.norm_patterns(shapes),
            ("backbone/final_ln", "backbone/layer_0/ln_attn", "backbone/layer_0/ln_mlp"),
        )

    def test_norm_segments(self):
        for name in ("ln", "ln_attn", "final_ln", "attn_ln", "LayerNorm", "layer_norm"):
            self.assertTrue(policies.is_norm_segment(name), name)
        for name in ("kernel", "mlp_in", "lora_b", "linear", "kernel_ln0"):
            self.assertFalse(policies.is_norm_segment(name), name)

    def test_frozen_keeps_precedence_and_no_lora_raises(self):
        shapes = jax.eval_shape(fixtures.model().init, jax.random.key(0))
        policy = policies.local_adapters(shapes, policy_lib.ModulePolicy(frozen=("backbone",)))
        labels = dict(
            zip(
                tree.leaf_paths(shapes),
                jax.tree.leaves(policy_lib.resolve(policy, shapes).labels),
                strict=True,
            )
        )
        self.assertEqual(labels[LORA[0]], "local")
        self.assertEqual(labels["backbone/cls"], "frozen")
        without = {k: v for k, v in shapes.items() if k != "adapters"}
        with self.assertRaisesRegex(ValueError, "no LoRA factors"):
            policies.local_adapters(without)
        with self.assertRaisesRegex(ValueError, "no normalisation layer"):
            policies.norm_patterns({"heads": without["heads"]})


class NeverLeaveTest(parameterized.TestCase):
    """Local leaves: absent from every message and aggregate; server copies unchanged."""

    @parameterized.named_parameters(("fedper", "fedper", HEADS), ("fedbn", "fedbn", NORMS))
    def test_local_modules_stay_on_clients(self, name, local_paths):
        check_never_leave(self, name, local_paths)


# A run each (about 10 s of one core): slow, to keep the default test set short; CI runs it.
@pytest.mark.slow
class NeverLeaveMoreTest(parameterized.TestCase):
    @parameterized.named_parameters(
        ("fedrep", "fedrep", HEADS), ("local_adapters", "local_adapters", LORA)
    )
    def test_local_modules_stay_on_clients(self, name, local_paths):
        check_never_leave(self, name, local_paths)


def check_never_leave(self, name, local_paths):
    """The assertions of NeverLeaveTest for one algorithm (self: the test case)."""
    algorithm = fixtures.build(name)
    init = fixtures.init_params()
    all_paths = set(tree.leaf_paths(init))
    local_paths = set(local_paths)
    self.assertEqual(_paths(tree.select(algorithm.policy.local, init)), local_paths)
    # A message's structure is static: tracing one client update shows every message.
    fed = fixtures.federation()
    examples = jax.tree.map(lambda x: x[0], fed.train)
    output = jax.eval_shape(
        algorithm.client_update,
        init,
        algorithm.init_client_state(init),
        examples,
        base.make_context(jax.random.key(0)),
    )
    self.assertEqual(_paths(output.delta), all_paths - local_paths)
    self.assertEqual(_paths(output.weight), all_paths - local_paths)
    self.assertEqual(_paths(output.client_state), local_paths)
    stacked = jax.tree.map(lambda x: jax.ShapeDtypeStruct((2,) + x.shape, x.dtype), output)
    state = algorithm.init(init)
    aggregate_paths = []

    def spy(state, aggregate, rng):
        aggregate_paths.append(_paths(aggregate.delta) | _paths(aggregate.weight))
        return algorithm.server_apply(state, aggregate, rng)

    jax.eval_shape(
        lambda o: base.server_update(
            algorithm._replace(server_apply=spy), state, o, jax.random.key(0)
        ),
        stacked,
    )
    self.assertEqual(aggregate_paths, [all_paths - local_paths])
    # After two rounds: the server's local copies are the init bit for bit, every
    # client's differs from them, and the federated leaves moved.
    result = fixtures.run(algorithm)
    final = fixtures.host(result.server_state.params)
    states = fixtures.host(result.client_states)
    by_path = dict(zip(tree.leaf_paths(init), jax.tree.leaves(init), strict=True))
    final_by_path = dict(zip(tree.leaf_paths(final), jax.tree.leaves(final), strict=True))
    client_by_path = dict(zip(tree.leaf_paths(states), jax.tree.leaves(states), strict=True))
    for path in local_paths:
        np.testing.assert_array_equal(final_by_path[path], by_path[path], err_msg=path)
        for c in range(fixtures.NUM_CLIENTS):
            self.assertGreater(
                np.abs(client_by_path[path][c] - by_path[path]).max(), 0, f"{path} {c}"
            )
    moved = [p for p in all_paths - local_paths if np.abs(final_by_path[p] - by_path[p]).max() > 0]
    self.assertGreater(len(moved), 0.9 * len(all_paths - local_paths))


if __name__ == "__main__":
    absltest.main()
