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
"""Tests for module policies: precedence, masks and error messages."""

import jax
import jax.numpy as jnp
from absl.testing import absltest

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree


def _params():
    return {
        "encoders": {"text": {"embed": jnp.ones((4, 2))}, "image": {"conv": jnp.ones((3,))}},
        "backbone": {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros((2,))}},
        "heads": {"a": {"kernel": jnp.ones((2, 1))}, "b": {"kernel": jnp.ones((2, 1))}},
    }


def _labels(resolved) -> dict[str, str]:
    return dict(
        zip(tree.leaf_paths(resolved.labels), jax.tree.leaves(resolved.labels), strict=True)
    )


class PolicyTest(absltest.TestCase):
    def test_precedence_frozen_local_federated_default(self):
        # Every leaf below matches several policies; the first of (frozen, local,
        # federated) wins, and unmatched leaves take the default ('local' here).
        policy = policy_lib.ModulePolicy(
            federated=("heads/**", "encoders", "backbone/dense/kernel"),
            local=("heads", "encoders/text"),
            frozen=("encoders/text/embed", "heads/a"),
            default="local",
        )
        labels = _labels(policy_lib.resolve(policy, _params()))
        self.assertEqual(
            labels,
            {
                "backbone/dense/bias": "local",  # No pattern: the default.
                "backbone/dense/kernel": "federated",  # federated only.
                "encoders/image/conv": "federated",  # federated only.
                "encoders/text/embed": "frozen",  # frozen > local > federated.
                "heads/a/kernel": "frozen",  # frozen > local > federated.
                "heads/b/kernel": "local",  # local > federated.
            },
        )

    def test_default_is_federated(self):
        labels = _labels(policy_lib.resolve(policy_lib.ModulePolicy(), _params()))
        self.assertEqual(set(labels.values()), {"federated"})

    def test_masks_partition_the_leaves(self):
        policy = policy_lib.ModulePolicy(local=("heads/b",), frozen=("encoders",))
        resolved = policy_lib.resolve(policy, _params())
        as_list = lambda m: jax.tree.leaves(m)
        # Leaf order: backbone bias, kernel; encoders image, text; heads a, b.
        self.assertEqual(as_list(resolved.federated), [True, True, False, False, True, False])
        self.assertEqual(as_list(resolved.local), [False, False, False, False, False, True])
        self.assertEqual(as_list(resolved.frozen), [False, False, True, True, False, False])
        self.assertEqual(as_list(resolved.trainable), [True, True, False, False, True, True])
        for leaf in jax.tree.leaves(resolved.federated) + jax.tree.leaves(resolved.frozen):
            self.assertIs(type(leaf), bool)  # Static Python bools, usable outside jit.
        self.assertIn("heads/b", resolved.describe())

    def test_lone_string_pattern(self):
        # A str is one pattern, not a tuple of one-character patterns.
        policy = policy_lib.ModulePolicy(local="heads/a", frozen="encoders")
        self.assertEqual(policy.local, ("heads/a",))
        self.assertEqual(policy.frozen, ("encoders",))
        labels = _labels(policy_lib.resolve(policy, _params()))
        self.assertEqual(labels["heads/a/kernel"], "local")
        self.assertEqual(labels["encoders/image/conv"], "frozen")
        self.assertEqual(labels["heads/b/kernel"], "federated")

    def test_bad_pattern_names_the_policy_field(self):
        for field in ("federated", "local", "frozen"):
            policy = policy_lib.ModulePolicy(**{field: ("heads/a", "heads/c")})
            with self.assertRaisesRegex(
                ValueError, f"In the '{field}' module patterns: .*'heads/c'.*matched no parameter"
            ):
                policy_lib.resolve(policy, _params())

    def test_resolves_shape_structs(self):
        shapes = jax.eval_shape(_params)
        resolved = policy_lib.resolve(policy_lib.ModulePolicy(frozen=("backbone",)), shapes)
        self.assertEqual(jax.tree.leaves(resolved.frozen)[:2], [True, True])

    def test_bad_default_raises(self):
        with self.assertRaisesRegex(ValueError, "default policy 'shared'"):
            policy_lib.ModulePolicy(default="shared")

    def test_from_flags_drops_empty_strings(self):
        policy = policy_lib.from_flags(local=[" heads/a ", ""], frozen=[""])
        self.assertEqual(policy.local, ("heads/a",))
        self.assertEqual(policy.frozen, ())
        self.assertEqual(policy.federated, ())


if __name__ == "__main__":
    absltest.main()
