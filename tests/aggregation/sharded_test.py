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
"""The robust rules through the engine's round, on 1, 2 and 4 devices, equal the
rules applied by hand to the clients' own updates (a client without task b's
labels left out of head b; 6 clients on 4 devices leave 2 padding slots)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t.aggregation import specs
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 6
# Every rule on a leaf of its own (vector rules see the leaf as module heads/<task>).
SPEC = (
    "heads/a/kernel: krum(f=1); heads/a/bias: geometric_median;"
    " heads/b/kernel: trimmed_mean(trim=1); heads/b/bias: multi_krum(f=1, m=2)"
)
SPEC_STREAMING = "heads/a: norm_bound(bound=0.05); median"


@functools.cache
def _setup():
    rng = np.random.default_rng(0)
    clients = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 3, 4, 5, 3, 2)]
    train = helpers.stack(clients, 6)
    train["label_mask"]["b"][1] = False  # Client 1 does not train head b.
    model = linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )
    return model, train


def _algorithm(spec):
    model, _ = _setup()
    return fed_opt.fed_opt(
        model,
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        aggregator=specs.build(spec),
    )


@functools.cache
def _by_hand(spec):
    """The server params from the clients' updates stacked by hand and base.server_update."""
    model, train = _setup()
    algorithm = _algorithm(spec)
    params = model.init(jax.random.key(1))
    state = algorithm.init(params)
    rng = jax.random.fold_in(jax.random.key(0), 0)
    clients_key = jax.random.fold_in(rng, round_lib.CLIENTS_TAG)
    scale = round_lib.cohort_task_scale(train, jnp.arange(NUM_CLIENTS), jnp.ones(NUM_CLIENTS))
    update = jax.jit(algorithm.client_update)
    outs = [
        update(
            params,
            algorithm.init_client_state(params),
            helpers.take(train, c),
            base.make_context(jax.random.fold_in(clients_key, c), c, 0, 0, scale),
        )
        for c in range(NUM_CLIENTS)
    ]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return base.server_update(algorithm, state, stacked, jax.random.key(2))[0].params


def _through_round(spec, num_devices):
    model, train = _setup()
    algorithm = _algorithm(spec)
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    round_fn = round_lib.build_round(
        algorithm, num_clients=NUM_CLIENTS, cohort_size=NUM_CLIENTS, chunk_size=1, mesh=mesh
    )
    params = model.init(jax.random.key(1))
    states = jax.tree.map(
        lambda x: jnp.stack([x] * NUM_CLIENTS), algorithm.init_client_state(params)
    )
    return round_fn(algorithm.init(params), states, train, jax.random.key(0)).server_state.params


class ShardedRulesTest(parameterized.TestCase):
    @parameterized.parameters((SPEC, 1), (SPEC, 2), (SPEC, 4), (SPEC_STREAMING, 2))
    def test_round_equals_the_rules_by_hand(self, spec, num_devices):
        want = _by_hand(spec)
        got = _through_round(spec, num_devices)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-5), got, want)
        # The rules moved every head (a sanity check that the test can fail).
        start = _setup()[0].init(jax.random.key(1))
        for task in ("a", "b"):
            self.assertGreater(
                np.abs(got["heads"][task]["kernel"] - start["heads"][task]["kernel"]).max(), 1e-4
            )


if __name__ == "__main__":
    absltest.main()
