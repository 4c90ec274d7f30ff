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
"""FedRep with 0 body steps is local head training on a frozen body."""

import dataclasses

import jax
import numpy as np
import optax
from absl.testing import absltest

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t.algorithms import fed_opt
from fedjax_m3t.personalization import fedrep
from tests.personalization import fixtures


def _fedrep(head_steps, local=fixtures.LOCAL):
    return fedrep.fedrep(
        fixtures.model(),
        client_optimizer=optax.sgd(fixtures.LR),
        server_optimizer=optax.sgd(1.0),
        local=local,
        head_steps=head_steps,
    )


class FedRepTest(absltest.TestCase):
    def test_zero_body_steps_is_head_training_on_a_frozen_body(self):
        rep = fixtures.run(_fedrep(head_steps=fixtures.LOCAL.local_steps))
        frozen_body = fed_opt.fed_opt(
            fixtures.model(),
            client_optimizer=optax.sgd(fixtures.LR),
            server_optimizer=optax.sgd(1.0),
            local=fixtures.LOCAL,
            policy=policy_lib.ModulePolicy(
                local=("heads/**",), frozen=("encoders/**", "backbone/**", "adapters/**")
            ),
        )
        heads = fixtures.run(frozen_body)
        init = fixtures.init_params()
        # The body never moves: the server params are the init bit for bit.
        jax.tree.map(np.testing.assert_array_equal, fixtures.host(rep.server_state.params), init)
        rep_heads, own_heads = fixtures.host(rep.client_states), fixtures.host(heads.client_states)
        self.assertEqual(tree.leaf_paths(rep_heads), tree.leaf_paths(own_heads))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), rep_heads, own_heads)
        moved = jax.tree.map(
            lambda a, b: np.abs(a - b).max(),
            rep_heads["heads"],
            jax.tree.map(lambda x: x[None], init["heads"]),
        )
        self.assertGreater(min(jax.tree.leaves(moved)), 1e-3)
        np.testing.assert_allclose(
            rep.personal_report.client_values("b", "rmse"),
            heads.personal_report.client_values("b", "rmse"),
            rtol=1e-5,
        )

    def test_head_steps_out_of_range_raise(self):
        with self.assertRaisesRegex(ValueError, "head_steps must be in"):
            _fedrep(head_steps=fixtures.LOCAL.local_steps + 1)
        with self.assertRaisesRegex(ValueError, "head_steps must be in"):
            _fedrep(head_steps=-1)
        one = dataclasses.replace(fixtures.LOCAL, local_steps=1)
        self.assertIsNotNone(_fedrep(head_steps=0, local=one))


if __name__ == "__main__":
    absltest.main()
