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
"""Hierarchical aggregation: against flat FedAvg, hand-computed means, and schedules."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import absltest, parameterized

from fedjax_m3t import tree
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.hierarchy import hierarchical, levels
from fedjax_m3t.models import linear, m3t
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 6
SIZES = (2, 3, 4, 5, 3, 2)
LOCAL = local_training.LocalTrainingConfig(local_steps=2, batch_size=2)


def _model():
    return linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )


def _train(seed=0):
    rng = np.random.default_rng(seed)
    return helpers.stack([helpers.linear_client(rng, n, ("a", "b")) for n in SIZES], 6)


def _params(model):
    rng = np.random.default_rng(1)
    return jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), model.init(None)
    )


def _hier(model, tree_, schedule, **kwargs):
    return hierarchical.hierarchical(
        model,
        tree_=tree_,
        schedule=schedule,
        client_optimizer=optax.sgd(0.1),
        local=LOCAL,
        **kwargs,
    )


def _rounds(algorithm, params, groups, rounds, num_devices=1, cohort_size=NUM_CLIENTS):
    """The states after each of `rounds` rounds."""
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    round_fn = round_lib.build_round(
        algorithm, num_clients=NUM_CLIENTS, cohort_size=cohort_size, chunk_size=2, mesh=mesh
    )
    population = cohort_lib.Population(jnp.ones(NUM_CLIENTS, bool), jnp.asarray(groups, jnp.int32))
    state = algorithm.init(params)
    one = algorithm.init_client_state(params)
    clients = jax.tree.map(lambda x: jnp.stack([x] * NUM_CLIENTS), one)
    data, key, states = _train(), jax.random.key(0), []
    for _ in range(rounds):
        state, clients, _ = round_fn(state, clients, data, key, population)
        states.append(state)
    return states


def _close(a, b, atol=1e-5):
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=atol), a, b)


class LevelsTest(absltest.TestCase):
    def test_level_mean_by_hand(self):
        # Children 0, 1 -> parent 0 with weights 1, 3: (1*2 + 3*6) / 4 = 5; child 2 -> parent 1
        # with weight 0: mean 0, total 0; parent 2 has no child.
        values = jnp.asarray([[2.0], [6.0], [9.0]])
        mean, total = levels.level_mean(
            values, jnp.asarray([1.0, 3.0, 0.0]), jnp.asarray([0, 0, 1]), 3
        )
        np.testing.assert_allclose(mean, [[5.0], [0.0], [0.0]])
        np.testing.assert_allclose(total, [4.0, 0.0, 0.0])

    def test_ancestors_of_a_three_level_tree(self):
        tree_ = levels.Tree(num_groups=4, parents=(np.asarray([0, 0, 1, 1]),))
        self.assertEqual(tree_.num_levels, 3)
        np.testing.assert_array_equal(tree_.ancestors(1), [0, 1, 2, 3])
        np.testing.assert_array_equal(tree_.ancestors(2), [0, 0, 1, 1])
        np.testing.assert_array_equal(tree_.ancestors(3), [0, 0, 0, 0])
        self.assertEqual(tree_.num_nodes(2), 2)

    def test_bad_schedules_are_refused(self):
        with self.assertRaisesRegex(ValueError, "one period >= 0 per level"):
            hierarchical.Schedule(every=(1, 2), rules=(("heads/a", (1,)),))
        with self.assertRaisesRegex(ValueError, "tree has 3 levels"):
            _hier(_model(), levels.Tree(num_groups=2, parents=([0, 0],)), hierarchical.Schedule())
        with self.assertRaisesRegex(ValueError, "matched no parameter"):
            _hier(_model(), levels.Tree(num_groups=2), hierarchical.hffm_schedule(2, ("nope",)))


class FlatEquivalenceTest(parameterized.TestCase):
    def test_one_group_equals_flat_fedavg(self):
        # One group, group and cloud every round, lr 1: FedAvg (SGD server step of 1).
        model = _model()
        params = _params(model)
        flat = fed_opt.fed_opt(
            model, client_optimizer=optax.sgd(0.1), server_optimizer=optax.sgd(1.0), local=LOCAL
        )
        hier = _hier(model, levels.Tree(num_groups=1), hierarchical.hffm_schedule(cloud_every=1))
        zeros = [0] * NUM_CLIENTS
        want = _rounds(flat, params, zeros, 3)
        got = _rounds(hier, params, zeros, 3)
        for w, g in zip(want, got, strict=True):
            _close(g.params, w.params)
            _close(jax.tree.map(lambda x: x[0], g.agg_state.group_params), w.params)
        moved = tree.l2_norm(jax.tree.map(jnp.subtract, got[-1].params, params))
        self.assertGreater(float(moved), 0.01)

    @pytest.mark.slow  # Two M3T round compilations: about 45 s of CPU.
    def test_every_round_schedules_equal_flat_fedavg_on_m3t(self):
        # The real M3T model: two groups with every level every round (lr 1) are FedAvg
        # (the weighted mean of the groups' weighted means).
        federation = synthetic.make_education_federation(
            synthetic.SyntheticConfig(num_clients=4, mean_examples=16, seed=0)
        )
        model = m3t.build_m3t_model(
            federation.spec, m3t.M3TConfig(width=16, depth=1, num_heads=2, mlp_dim=32, lora_rank=2)
        )
        params = model.init(jax.random.key(0))
        local = local_training.LocalTrainingConfig(local_steps=2, batch_size=8)
        sgd = optax.sgd(0.05)
        flat = fed_opt.fed_opt(
            model, client_optimizer=sgd, server_optimizer=optax.sgd(1.0), local=local
        )

        def run(algorithm, groups):
            round_fn = round_lib.build_round(algorithm, num_clients=4, cohort_size=4, chunk_size=2)
            population = cohort_lib.Population(jnp.ones(4, bool), jnp.asarray(groups, jnp.int32))
            state = algorithm.init(params)
            states = jax.tree.map(lambda x: jnp.stack([x] * 4), algorithm.init_client_state(params))
            for _ in range(2):
                state, states, _ = round_fn(
                    state, states, federation.train, jax.random.key(1), population
                )
            return state

        want = run(flat, [0, 0, 0, 0]).params
        self.assertGreater(float(tree.l2_norm(jax.tree.map(jnp.subtract, want, params))), 1e-3)
        every = hierarchical.hffm_schedule(cloud_every=1)
        for num_groups, groups in ((2, [0, 1, 1, 0]),):
            hier = hierarchical.hierarchical(
                model,
                tree_=levels.Tree(num_groups=num_groups),
                schedule=every,
                client_optimizer=sgd,
                local=local,
            )
            got = run(hier, groups)
            _close(got.params, want, atol=2e-5)
            for g in range(num_groups):
                _close(jax.tree.map(lambda x, g=g: x[g], got.agg_state.group_params), want, 2e-5)

    def test_sharded_equals_one_device(self):
        model = _model()
        hier = _hier(model, levels.Tree(num_groups=3), hierarchical.hffm_schedule(cloud_every=2))
        groups = [0, 1, 1, 2, 2, 2]
        one = _rounds(hier, _params(model), groups, 3, 1)
        two = _rounds(hier, _params(model), groups, 3, 2)
        for a, b in zip(one, two, strict=True):
            _close(a.params, b.params)
            _close(a.agg_state.group_params, b.agg_state.group_params)


class HandMeanTest(absltest.TestCase):
    def _fake(self, algorithm, weights):
        """Client c sends delta = c + 1 on every leaf with weight weights[c]."""
        original = algorithm.client_update

        def client_update(received, client_state, examples, context):
            out = original(received, client_state, examples, context)
            value = (context.client_id + 1).astype(jnp.float32)
            w = jnp.asarray(weights, jnp.float32)[context.client_id]
            delta = jax.tree.map(lambda d: jnp.full_like(d, value), out.delta)
            weight = jax.tree.map(lambda ow: jnp.where(ow > 0, w, 0.0), out.weight)
            return out._replace(delta=delta, weight=weight)

        return algorithm._replace(client_update=client_update)

    def test_every_round_at_all_levels_is_the_weighted_mean(self):
        # Groups 0..3 under regions (0, 0, 1, 1), then the cloud; every level every round.
        # The cloud's new params are p - sum_c w_c (c + 1) / sum_c w_c, at every group.
        model = _model()
        params = _params(model)
        tree_ = levels.Tree(num_groups=4, parents=(np.asarray([0, 0, 1, 1]),))
        weights = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        algorithm = self._fake(_hier(model, tree_, hierarchical.Schedule(every=(1, 1, 1))), weights)
        (state,) = _rounds(algorithm, params, [0, 0, 1, 2, 3, 3], 1)
        step = sum(w * (c + 1) for c, w in enumerate(weights)) / sum(weights)  # 91 / 21.
        want = jax.tree.map(lambda p: p - step, params)
        _close(state.params, want)
        for g in range(4):
            _close(jax.tree.map(lambda x, g=g: x[g], state.agg_state.group_params), want)

    def test_middle_level_means_and_edge_only_groups(self):
        # Groups every round, regions every round, the cloud never: region 0 (groups 0, 1:
        # clients 0, 1, 2) steps by (1*1 + 2*2 + 3*3) / 6; region 1 (clients 3, 4, 5) by
        # (4*4 + 5*5 + 6*6) / 15. The cloud keeps the initial params.
        model = _model()
        params = _params(model)
        tree_ = levels.Tree(num_groups=4, parents=(np.asarray([0, 0, 1, 1]),))
        weights = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        algorithm = self._fake(_hier(model, tree_, hierarchical.Schedule(every=(1, 1, 0))), weights)
        (state,) = _rounds(algorithm, params, [0, 0, 1, 2, 3, 3], 1)
        steps = [14 / 6, 14 / 6, 77 / 15, 77 / 15]
        for g, step in enumerate(steps):
            got = jax.tree.map(lambda x, g=g: x[g], state.agg_state.group_params)
            _close(got, jax.tree.map(lambda p, s=step: p - s, params))
        _close(state.params, params, atol=0)


class ScheduleTest(absltest.TestCase):
    def test_cloud_every_three_rounds(self):
        # heads/a: groups every round, the cloud every 3; heads/b: groups only (edge module).
        model = _model()
        params = _params(model)
        schedule = hierarchical.hffm_schedule(cloud_every=3, edge_modules=("heads/b",))
        algorithm = _hier(model, levels.Tree(num_groups=2), schedule)
        states = _rounds(algorithm, params, [0, 0, 0, 1, 1, 1], 7)
        previous = params
        for r, state in enumerate(states, 1):
            a, b = state.params["heads"]["a"], state.params["heads"]["b"]
            moved = float(tree.l2_norm(jax.tree.map(jnp.subtract, a, previous["heads"]["a"])))
            self.assertEqual(moved > 0, r % 3 == 0, f"round {r}: cloud moved {moved}")
            _close(b, params["heads"]["b"], atol=0)  # The cloud never holds heads/b.
            copies = state.agg_state.group_params["heads"]
            gap_a = float(tree.l2_norm(jax.tree.map(lambda x: x[0] - x[1], copies["a"])))
            gap_b = float(tree.l2_norm(jax.tree.map(lambda x: x[0] - x[1], copies["b"])))
            self.assertEqual(gap_a == 0, r % 3 == 0, f"round {r}: group gap {gap_a}")
            self.assertGreater(gap_b, 0)
            if r % 3 == 0:  # Right after a cloud round every group holds the cloud's model.
                _close(jax.tree.map(lambda x: x[1], copies["a"]), a, atol=0)
            previous = state.params

    def test_a_module_only_at_the_cloud_is_sent_only_on_cloud_rounds(self):
        # heads/a: never at the groups, the cloud every 2: rounds 1 and 3 leave it alone
        # everywhere; heads/b: groups every round.
        model = _model()
        params = _params(model)
        schedule = hierarchical.Schedule(every=(1, 0), rules=(("heads/a", (0, 2)),))
        algorithm = _hier(model, levels.Tree(num_groups=2), schedule)
        states = _rounds(algorithm, params, [0, 0, 0, 1, 1, 1], 4)
        for r, state in enumerate(states, 1):
            copies = state.agg_state.group_params["heads"]["a"]
            expect = params["heads"]["a"] if r < 2 else states[1].params["heads"]["a"]
            if r >= 4:
                expect = states[3].params["heads"]["a"]
            _close(jax.tree.map(lambda x: x[0], copies), expect, atol=0)
        self.assertGreater(
            float(tree.l2_norm(jax.tree.map(jnp.subtract, states[1].params, params))), 0.0
        )

    def test_the_client_sends_nothing_off_schedule(self):
        model = _model()
        params = _params(model)
        schedule = hierarchical.Schedule(every=(0, 2))
        algorithm = _hier(model, levels.Tree(num_groups=1), schedule)
        state = algorithm.init(params)
        examples = helpers.take(_train(), 0)
        for r, expect_sent in ((0, False), (1, True)):
            context = base.make_context(jax.random.key(0), 0, r, 0)
            received = algorithm.broadcast(state, context)
            local_state = algorithm.init_client_state(params)
            out = algorithm.client_update(received, local_state, examples, context)
            for w in jax.tree.leaves(out.weight):
                self.assertEqual(float(w) > 0, expect_sent)


if __name__ == "__main__":
    absltest.main()
