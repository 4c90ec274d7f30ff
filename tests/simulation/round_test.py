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
"""Tests for the jitted round: vmap == loop, chunking, sharding, padding, retracing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from jax.sharding import PartitionSpec as P

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t.algorithms import base, local_training, registry
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 5
ATOL = 1e-5


def _train_data(sizes=(1, 2, 3, 4, 5), seed=0):
    """Clients of different sizes with tasks 'a' and 'b'; client 0 has no 'b' labels."""
    rng = np.random.default_rng(seed)
    clients = [helpers.linear_client(rng, n, tasks=("a", "b")) for n in sizes]
    clients[0]["label_mask"]["b"][:] = False
    return helpers.stack(clients, max(sizes) + 1)  # At least one padding row each.


@functools.cache
def _setup(local="heads/b", steps=2, batch_size=2):
    """FedAvg on a two-head linear model; distinct params and client states.

    Cached, like `_round`, so that tests sharing a configuration share its compilations.
    """
    model = linear.build_linear_model(
        helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    )
    algorithm = registry.build_algorithm(
        "fedavg",
        model,
        client_learning_rate=0.1,
        local=local_training.LocalTrainingConfig(local_steps=steps, batch_size=batch_size),
        policy=policy_lib.ModulePolicy(local=(local,)) if local else None,
    )
    rng = np.random.default_rng(1)
    params = jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), model.init(None)
    )
    one = algorithm.init_client_state(params)
    # Every client's personal leaves differ (client c: initial + 0.1 c).
    states = jax.tree.map(lambda x: jnp.stack([x + 0.1 * c for c in range(NUM_CLIENTS)]), one)
    return algorithm, algorithm.init(params), states


@functools.cache
def _round(cohort_size, chunk_size=None, num_devices=1):
    """The jitted round of the default `_setup()` (head b local)."""
    algorithm, _, _ = _setup()
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    return round_lib.build_round(
        algorithm,
        num_clients=NUM_CLIENTS,
        cohort_size=cohort_size,
        chunk_size=chunk_size,
        mesh=mesh,
    )


def _run_round(cohort_size, chunk_size=None, num_devices=1, train=None, key=0):
    _, state, states = _setup()
    train = _train_data() if train is None else train
    return _round(cohort_size, chunk_size, num_devices)(state, states, train, jax.random.key(key))


@functools.cache
def _looped_round(cohort_size, key=0):
    """The round of the default `_setup()` as a Python loop over the cohort.

    Per round.py: with rng = fold_in(rounds_key, round), the cohort is
    sample_cohort(fold_in(rng, SAMPLER_TAG), ...), client c's key
    fold_in(fold_in(rng, CLIENTS_TAG), c), the task scale the cohort's, and the
    aggregator and server keys fold_in(rng, AGGREGATOR_TAG / SERVER_TAG).
    """
    algorithm, state, states = _setup()
    train = _train_data()
    rng = jax.random.fold_in(jax.random.key(key), state.round)
    clients_key = jax.random.fold_in(rng, round_lib.CLIENTS_TAG)
    ids, _ = cohort_lib.sample_cohort(
        jax.random.fold_in(rng, round_lib.SAMPLER_TAG), jnp.ones(NUM_CLIENTS, bool), cohort_size
    )
    ids = np.asarray(ids)
    scale = round_lib.cohort_task_scale(train, jnp.asarray(ids), jnp.ones(len(ids)))
    update = jax.jit(algorithm.client_update)
    outputs = [
        update(
            state.params,
            helpers.take(states, c),
            helpers.take(train, c),
            base.make_context(jax.random.fold_in(clients_key, c), c, 0, 0, scale),
        )
        for c in ids
    ]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)
    new_state, _ = jax.jit(lambda s, o, k: base.server_update(algorithm, s, o, k))(
        state, stacked, rng
    )
    new_states = jax.tree.map(lambda a, n: a.at[ids].set(n), states, stacked.client_state)
    return new_state, new_states, ids, stacked


def _assert_trees_close(a, b, atol=ATOL):
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=atol), a, b)


class RoundTest(parameterized.TestCase):
    def test_vmapped_round_equals_python_loop(self):
        got = _run_round(cohort_size=3, chunk_size=None)
        want_state, want_states, ids, outputs = _looped_round(3)
        _assert_trees_close(got.server_state, want_state)
        _assert_trees_close(got.client_states, want_states)
        self.assertEqual(int(got.server_state.round), 1)
        # Metrics: example-weighted mean loss over the cohort, its size and examples.
        n = np.asarray(outputs.metrics["num_examples"])
        np.testing.assert_array_equal(n, _train_data()["mask"].sum(1)[ids])
        np.testing.assert_allclose(got.metrics["num_examples"], n.sum(), rtol=0, atol=0)
        np.testing.assert_allclose(got.metrics["num_clients"], 3, rtol=0, atol=0)
        np.testing.assert_allclose(
            got.metrics["loss"], np.sum(outputs.metrics["loss"] * n) / n.sum(), rtol=1e-5, atol=0
        )
        # The federated head moved.
        self.assertGreater(float(got.metrics["update_norm"]), 1e-3)

    def test_only_the_cohort_states_change(self):
        _, _, states = _setup()
        got = _run_round(cohort_size=3)
        _, want_states, ids, _ = _looped_round(3)
        self.assertLen(set(ids.tolist()), 3)
        for c in range(NUM_CLIENTS):
            got_c = helpers.take(got.client_states, c)
            before = helpers.take(states, c)
            if c not in ids:  # Bit-identical.
                jax.tree.map(np.testing.assert_array_equal, got_c, before)
                continue
            _assert_trees_close(got_c, helpers.take(want_states, c))
            moved = float(tree.l2_norm(jax.tree.map(jnp.subtract, got_c, before)))
            if c == 0:  # Client 0 has no 'b' label: its local head b gets no gradient.
                self.assertEqual(moved, 0.0)
            else:
                self.assertGreater(moved, 1e-3)

    def test_chunk_sizes_agree(self):
        # Chunks of 1 (a compiled loop), of 2 (the cohort of 5 padded to 6), one vmap.
        want = _run_round(NUM_CLIENTS, chunk_size=None)
        for chunk_size in (1, 2):
            _assert_trees_close(_run_round(NUM_CLIENTS, chunk_size=chunk_size), want)

    @parameterized.parameters((4, None), (2, 2))
    def test_sharded_equals_single_device(self, num_devices, chunk_size):
        # 5 clients on 4 devices: padded to 8 (2 per device), 3 of them padding; on 2
        # devices with chunks of 2: padded to 8 (2 chunks per device).
        self.assertEqual(round_lib.make_client_mesh(num_devices).devices.size, num_devices)
        _assert_trees_close(
            _run_round(NUM_CLIENTS, chunk_size, num_devices), _run_round(NUM_CLIENTS)
        )

    def test_naive_shard_map_mixes_clients_build_round_does_not(self):
        # 4 clients, one per device, one full-batch SGD step: a client's delta is lr times
        # its own gradient.
        algorithm, state, _ = _setup(local=None, steps=1, batch_size=None)
        train = jax.tree.map(lambda x: x[:4], _train_data())
        states = jax.tree.map(
            lambda x: jnp.stack([x] * 4), algorithm.init_client_state(state.params)
        )
        keys = jax.random.split(jax.random.key(0), 4)
        scale = round_lib.cohort_task_scale(train, jnp.arange(4), jnp.ones(4))

        def one(params, state, data, key):
            return algorithm.client_update(
                params, state, data, base.make_context(key, task_scale=scale)
            )

        update = jax.vmap(one, in_axes=(None, 0, 0, 0))
        vmapped = jax.jit(update)(state.params, states, train, keys)

        mesh = round_lib.make_client_mesh(4)
        # The pitfall: replicated params (in_specs P()) are device-invariant, so the
        # gradient taken with respect to them inside shard_map is psum'd over devices.
        naive = jax.jit(
            jax.shard_map(
                lambda p, d, k: update(p, states, d, k).delta,
                mesh=mesh,
                in_specs=(P(), P(round_lib.AXIS), P(round_lib.AXIS)),
                out_specs=P(round_lib.AXIS),
            )
        )(state.params, train, keys)
        # JAX does not raise: it silently gives every client the sum of all 4 clients'
        # updates instead of its own.
        for leaf_naive, leaf_vmap in zip(
            jax.tree.leaves(naive), jax.tree.leaves(vmapped.delta), strict=True
        ):
            self.assertFalse(np.allclose(leaf_naive, leaf_vmap, rtol=0, atol=1e-3))
            summed = np.broadcast_to(leaf_vmap.sum(0), leaf_vmap.shape)
            np.testing.assert_allclose(leaf_naive, summed, rtol=0, atol=ATOL)

        # build_round's sharded path (with pcast) applies the vmapped clients' own deltas:
        # params - sum_c w_c delta_c / sum_c w_c per leaf (server SGD, lr 1).
        sharded = round_lib.build_round(algorithm, num_clients=4, cohort_size=4, mesh=mesh)
        got = sharded(state, states, train, jax.random.key(0)).server_state.params
        want = jax.tree.map(
            lambda p, d, w: p - np.tensordot(w, d, axes=1) / w.sum(),
            state.params,
            vmapped.delta,
            vmapped.weight,
        )
        _assert_trees_close(got, want)

    def test_garbage_in_padding_examples_changes_nothing(self):
        clean = _train_data()
        dirty = jax.tree.map(np.copy, clean)
        pad = ~clean["mask"]  # [clients, n]: every client has padding rows.
        self.assertTrue(pad.any(1).all())
        dirty["inputs"]["tabular"][pad] = 1e30
        dirty["present"]["tabular"][pad] = True
        for task in ("a", "b"):
            dirty["labels"][task][pad] = -1e30
            dirty["label_mask"][task][pad] = True
        got = _run_round(NUM_CLIENTS, chunk_size=2, train=dirty)
        _assert_trees_close(got, _run_round(NUM_CLIENTS, chunk_size=2, train=clean), atol=1e-6)
        self.assertTrue(np.isfinite(float(got.metrics["loss"])))

    def test_no_retracing_across_rounds(self):
        algorithm, state, states = _setup()
        traces, original = [], algorithm.client_update

        def client_update(*args):
            traces.append(1)  # A Python side effect: runs only while tracing.
            return original(*args)

        algorithm = algorithm._replace(
            client_update=client_update,
            # server_apply runs once per trace of the round; a second trace raises.
            server_apply=chex.assert_max_traces(algorithm.server_apply, n=1),
        )
        round_fn = round_lib.build_round(
            algorithm, num_clients=NUM_CLIENTS, cohort_size=3, chunk_size=2
        )
        train = jax.device_put(_train_data())
        key = jax.random.key(0)
        state, states, _ = round_fn(state, states, train, key)
        after_first = len(traces)
        for _ in range(2):
            state, states, _ = round_fn(state, states, train, key)
        self.assertGreater(after_first, 0)
        self.assertLen(traces, after_first)
        self.assertEqual(int(state.round), 3)

    def test_build_round_validates_cohort_size(self):
        algorithm, _, _ = _setup()
        for bad in (0, NUM_CLIENTS + 1):
            with self.assertRaisesRegex(ValueError, "cohort_size must be in"):
                round_lib.build_round(algorithm, num_clients=NUM_CLIENTS, cohort_size=bad)

    def test_explicit_mesh_is_refused_auto_mesh_is_used(self):
        # Pitfall (b): jax.make_mesh defaults to Explicit axis types in this JAX; the
        # round needs Auto. make_client_mesh builds Auto; an Explicit mesh gets a clear error.
        algorithm, _, _ = _setup()
        explicit = jax.make_mesh((4,), (round_lib.AXIS,))
        self.assertEqual(explicit.axis_types, (jax.sharding.AxisType.Explicit,))
        with self.assertRaisesRegex(ValueError, "needs Auto"):
            round_lib.build_round(algorithm, num_clients=NUM_CLIENTS, cohort_size=4, mesh=explicit)
        auto = round_lib.make_client_mesh(4)
        self.assertEqual(auto.axis_types, (jax.sharding.AxisType.Auto,))

    def test_mesh_with_too_many_devices_raises(self):
        with self.assertRaisesRegex(ValueError, "Asked for 64 devices"):
            round_lib.make_client_mesh(64)


class CohortTest(parameterized.TestCase):
    def test_sample_cohort_distinct_and_in_range(self):
        seen = set()
        everyone = jnp.ones(10, bool)
        for seed in range(20):
            ids, valid = cohort_lib.sample_cohort(jax.random.key(seed), everyone, 4)
            ids = np.asarray(ids)
            self.assertTrue(np.asarray(valid).all())
            self.assertEqual(ids.dtype, np.int32)
            self.assertEqual(ids.shape, (4,))
            self.assertLen(set(ids.tolist()), 4)
            self.assertTrue(((ids >= 0) & (ids < 10)).all())
            seen.update(ids.tolist())
        self.assertEqual(seen, set(range(10)))  # 80 draws reach every client.

    def test_full_participation_is_arange(self):
        for seed in range(3):
            ids, _ = cohort_lib.sample_cohort(jax.random.key(seed), jnp.ones(7, bool), 7)
            np.testing.assert_array_equal(ids, np.arange(7))

    def test_only_eligible_clients_are_sampled(self):
        eligible = jnp.asarray([True, False, True, True, False, True])
        seen = set()
        for seed in range(30):
            ids, valid = cohort_lib.sample_cohort(jax.random.key(seed), eligible, 3)
            self.assertTrue(np.asarray(valid).all())
            seen.update(np.asarray(ids).tolist())
        self.assertEqual(seen, {0, 2, 3, 5})
        # Fewer eligible clients than slots: the extra slots are invalid.
        ids, valid = cohort_lib.sample_cohort(jax.random.key(0), eligible, 5)
        self.assertEqual(int(np.asarray(valid).sum()), 4)
        self.assertEqual(set(np.asarray(ids)[np.asarray(valid)].tolist()), {0, 2, 3, 5})

    @parameterized.parameters(
        # (cohort, devices, chunk) -> (chunk, padded): per device ceil(cohort / devices),
        # rounded up to a multiple of the chunk (the chunk at most the per-device share).
        (5, 1, 8, 5, 5),
        (5, 4, 8, 2, 8),  # 2 per device.
        (5, 4, 1, 1, 8),
        (5, 1, 2, 2, 6),  # 3 chunks of 2.
        (10, 2, 3, 3, 12),  # 5 per device -> 2 chunks of 3.
        (3, 4, 8, 1, 4),  # Fewer clients than devices: one (padding) each.
        (8, 2, 16, 4, 8),  # Chunk capped at the per-device share.
    )
    def test_layout(self, cohort, devices, chunk, want_chunk, want_padded):
        plan = cohort_lib.layout(cohort, devices, chunk)
        self.assertEqual(plan, cohort_lib.CohortLayout(cohort, devices, want_chunk, want_padded))

    def test_layout_rejects_bad_sizes(self):
        for args in ((0, 1, 1), (1, 0, 1), (4, 1, 0), (4, 1, None)):
            with self.assertRaises(ValueError):
                cohort_lib.layout(*args)


if __name__ == "__main__":
    absltest.main()
