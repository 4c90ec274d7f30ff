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
"""The round contract of algorithms/base.py, each piece through the engine's round.

Per-client broadcast and ClientContext, stateful keyed aggregators, the stacked
mode (coordinate median), the server step's key and laziness, client transforms
that keep the training keys, eligibility as data, per-task loss metrics as sums
and counts, run(initial_state, hooks), and Ctrl-C between rounds.
"""

import dataclasses
import functools
import os
import shutil
import signal
import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from fedjax_m3t import evaluation, simulation, tree
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.aggregation import coordinate_median, selective
from fedjax_m3t.algorithms import base, fed_opt, local_training, registry, server_optimizers
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers

NUM_CLIENTS = 6


def _spec():
    return helpers.tabular_spec((("a", "regression"), ("b", "regression")))


def _train(seed=0):
    rng = np.random.default_rng(seed)
    clients = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 3, 4, 5, 3, 2)]
    return helpers.stack(clients, 6)


def _model():
    return linear.build_linear_model(_spec())


def _params(model):
    rng = np.random.default_rng(1)
    return jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), model.init(None)
    )


def _algorithm(model, **kwargs):
    defaults = dict(
        client_optimizer=optax.sgd(0.1),
        server_optimizer=optax.sgd(1.0),
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
    )
    return fed_opt.fed_opt(model, **{**defaults, **kwargs})


def _round(algorithm, cohort_size=NUM_CLIENTS, chunk_size=2, num_devices=1):
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    return round_lib.build_round(
        algorithm,
        num_clients=NUM_CLIENTS,
        cohort_size=cohort_size,
        chunk_size=chunk_size,
        mesh=mesh,
    )


def _start(algorithm, params):
    one = algorithm.init_client_state(params)
    states = jax.tree.map(lambda x: jnp.stack([x] * NUM_CLIENTS), one)
    return algorithm.init(params), states


def _close(a, b, atol=1e-5):
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=atol), a, b)


class BroadcastTest(absltest.TestCase):
    def test_each_client_receives_its_groups_params(self):
        # A broadcast that adds the client's group to every param, and a client update
        # that sends what it received as its delta (weight 1): the server (SGD, lr 1)
        # then steps by minus the mean received params, params + mean(group).
        model = _model()
        params = _params(model)
        algorithm = _algorithm(model)

        def broadcast(state, context):
            return jax.tree.map(lambda p: p + context.group.astype(p.dtype), state.params)

        def client_update(received, client_state, examples, context):
            weight = jax.tree.map(lambda _: jnp.ones((), jnp.float32), received)
            return base.ClientOutput(received, weight, client_state, {"num_examples": 1.0})

        algorithm = algorithm._replace(broadcast=broadcast, client_update=client_update)
        groups = jnp.asarray([0, 0, 1, 1, 2, 5], jnp.int32)
        population = cohort_lib.Population(jnp.ones(NUM_CLIENTS, bool), groups)
        state, states = _start(algorithm, params)
        out = _round(algorithm)(state, states, _train(), jax.random.key(0), population)
        want = jax.tree.map(lambda p: p - (p + 9.0 / 6.0), params)  # mean group 9/6.
        _close(out.server_state.params, want)

    def test_context_carries_id_round_and_group(self):
        model = _model()
        algorithm = _algorithm(model)
        seen = {}

        def client_update(received, client_state, examples, context):
            weight = jax.tree.map(lambda _: jnp.zeros((), jnp.float32), received)
            delta = jax.tree.map(jnp.zeros_like, received)
            metrics = {
                "num_examples": jnp.ones(()),
                "id": context.client_id.astype(jnp.float32),
                "group": context.group.astype(jnp.float32),
                "round": context.round.astype(jnp.float32),
            }
            seen["scale"] = context.task_scale
            return base.ClientOutput(delta, weight, client_state, metrics)

        algorithm = algorithm._replace(client_update=client_update)
        state, states = _start(algorithm, _params(model))
        state = state._replace(round=jnp.asarray(7, jnp.int32))
        population = cohort_lib.Population(
            jnp.ones(NUM_CLIENTS, bool), jnp.arange(NUM_CLIENTS, dtype=jnp.int32) * 10
        )
        out = _round(algorithm)(state, states, _train(), jax.random.key(0), population)
        # Means over the 6 clients (weight 1 each): ids 0..5, groups 10x, round 7.
        np.testing.assert_allclose(out.metrics["id"], 2.5)
        np.testing.assert_allclose(out.metrics["group"], 25.0)
        np.testing.assert_allclose(out.metrics["round"], 7.0)
        self.assertEqual(set(seen["scale"]), {"a", "b"})


def _counting_aggregator(noise: float):
    """The selective mean plus noise * N(0, 1) from the round's key; counts its rounds."""

    def finalize(acc, agg_state, rng):
        aggregate, _ = selective.finalize(acc, (), rng)
        leaves, treedef = jax.tree.flatten(aggregate.delta)
        keys = jax.random.split(rng, len(leaves))
        pairs = zip(leaves, keys, strict=True)
        noisy = [x + noise * jax.random.normal(k, x.shape) for x, k in pairs]
        return aggregate._replace(delta=jax.tree.unflatten(treedef, noisy)), {
            "rounds": agg_state["rounds"] + 1,
            "last_key_bits": jax.random.key_data(rng).astype(jnp.uint32),
        }

    def init_state(template):
        del template
        return {"rounds": jnp.zeros((), jnp.int32), "last_key_bits": jnp.zeros((2,), jnp.uint32)}

    return selective.AGGREGATOR._replace(init_state=init_state, finalize=finalize)


class AggregatorContractTest(parameterized.TestCase):
    def test_state_and_key_are_threaded_through_rounds(self):
        model = _model()
        algorithm = _algorithm(model, aggregator=_counting_aggregator(0.0))
        round_fn = _round(algorithm)
        state, states = _start(algorithm, _params(model))
        bits = []
        for _ in range(3):
            state, states, _ = round_fn(state, states, _train(), jax.random.key(0))
            bits.append(tuple(np.asarray(state.agg_state["last_key_bits"])))
        self.assertEqual(int(state.agg_state["rounds"]), 3)
        self.assertLen(set(bits), 3)  # A fresh key every round.
        # With zero noise it is the plain selective mean (to float rounding: the
        # compiled graphs differ).
        plain = _algorithm(model)
        p_state, p_states = _start(plain, _params(model))
        for _ in range(3):
            p_state, p_states, _ = _round(plain)(p_state, p_states, _train(), jax.random.key(0))
        _close(state.params, p_state.params, atol=1e-6)

    def test_noise_uses_the_aggregator_key(self):
        model = _model()
        algorithm = _algorithm(model, aggregator=_counting_aggregator(1.0))
        state, states = _start(algorithm, _params(model))
        a = _round(algorithm)(state, states, _train(), jax.random.key(0)).server_state.params
        b = _round(algorithm)(state, states, _train(), jax.random.key(0)).server_state.params
        c = _round(algorithm)(state, states, _train(), jax.random.key(1)).server_state.params
        jax.tree.map(np.testing.assert_array_equal, a, b)  # Pure.
        self.assertFalse(np.allclose(a["heads"]["a"]["kernel"], c["heads"]["a"]["kernel"]))

    @parameterized.parameters((1, 2), (1, 6), (2, 1), (4, 2))
    def test_stacked_median_equals_hand_median(self, num_devices, chunk_size):
        # The coordinate median through the round's stacked mode equals a numpy median
        # of the clients' own deltas (clients without 'b' labels left out of head b).
        model = _model()
        train = _train()
        train["label_mask"]["b"][1] = False  # Client 1 does not train head b.
        mean_alg = _algorithm(model)
        median_alg = _algorithm(model, aggregator=coordinate_median.AGGREGATOR)
        params = _params(model)
        state, states = _start(median_alg, params)
        got = _round(median_alg, chunk_size=chunk_size, num_devices=num_devices)(
            state, states, train, jax.random.key(0)
        )
        # The clients' deltas by hand, with the round's keys and task scale.
        rng = jax.random.fold_in(jax.random.key(0), 0)
        clients_key = jax.random.fold_in(rng, round_lib.CLIENTS_TAG)
        ids = jnp.arange(NUM_CLIENTS)
        scale = round_lib.cohort_task_scale(train, ids, jnp.ones(NUM_CLIENTS))
        outs = [
            mean_alg.client_update(
                params,
                helpers.take(states, c),
                helpers.take(train, c),
                base.make_context(jax.random.fold_in(clients_key, c), c, 0, 0, scale),
            )
            for c in range(NUM_CLIENTS)
        ]
        for task in ("a", "b"):
            for leaf in ("kernel", "bias"):
                deltas = np.stack([np.asarray(o.delta["heads"][task][leaf]) for o in outs])
                keep = np.asarray([float(o.weight["heads"][task][leaf]) > 0 for o in outs])
                self.assertEqual(keep.sum(), 5 if task == "b" else 6)
                want = params["heads"][task][leaf] - np.median(deltas[keep], axis=0)
                np.testing.assert_allclose(
                    got.server_state.params["heads"][task][leaf], want, rtol=0, atol=1e-5
                )

    def test_registry_builds_the_median(self):
        algorithm = registry.build_algorithm(
            "fedavg",
            _model(),
            client_learning_rate=0.1,
            local=local_training.LocalTrainingConfig(),
            aggregator="median",
        )
        self.assertTrue(algorithm.aggregator.stacked)
        with self.assertRaisesRegex(ValueError, "Unknown aggregator 'nope'"):
            registry.build_algorithm(
                "fedavg",
                _model(),
                client_learning_rate=0.1,
                local=local_training.LocalTrainingConfig(),
                aggregator="nope",
            )


class ServerStepTest(absltest.TestCase):
    def test_server_apply_gets_its_own_key(self):
        model = _model()
        algorithm = _algorithm(model)
        keys = []

        def server_apply(state, aggregate, rng):
            keys.append(rng)
            return state._replace(round=state.round + 1), {
                "key_bits": (jax.random.key_data(rng)[0] % 65536).astype(jnp.float32)
            }

        algorithm = algorithm._replace(server_apply=server_apply)
        state, states = _start(algorithm, _params(model))
        out = _round(algorithm)(state, states, _train(), jax.random.key(3))
        want = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 0), round_lib.SERVER_TAG)
        self.assertEqual(
            float(out.metrics["key_bits"]), float(jax.random.key_data(want)[0] % 65536)
        )

    def test_untrained_module_keeps_params_and_optimizer_state(self):
        # FedAdam: head b is trained in round 1 only (then nobody has 'b' labels). Its
        # params and its whole optimizer state stay bit-identical in rounds 2-4.
        model = _model()
        algorithm = _algorithm(
            model, server_optimizer=server_optimizers.server_optimizer("fedadam", 0.05)
        )
        round_fn = _round(algorithm)
        train = _train()
        state, states = _start(algorithm, _params(model))
        state, states, _ = round_fn(state, states, train, jax.random.key(0))
        no_b = {**train, "label_mask": {**train["label_mask"], "b": np.zeros_like(train["mask"])}}
        head_b = lambda s: [
            np.asarray(x)
            for p, x in zip(tree.leaf_paths(s), jax.tree.leaves(s), strict=True)
            if "heads/b" in p
        ]
        before_params, before_opt = head_b(state.params), jax.device_get(state.opt_state)
        for _ in range(3):
            state, states, metrics = round_fn(state, states, no_b, jax.random.key(0))
        for x, y in zip(head_b(state.params), before_params, strict=True):
            np.testing.assert_array_equal(x, y)
        # Every array of the optimizer state that belongs to head b is unchanged;
        # head a's moments moved.
        after, before = jax.tree.leaves(state.opt_state), jax.tree.leaves(before_opt)
        changed = [not np.array_equal(a, b) for a, b in zip(after, before, strict=True)]
        self.assertTrue(any(changed))
        self.assertFalse(all(changed))
        np.testing.assert_allclose(metrics["trained_fraction"], 0.5)


class Bfloat16Test(absltest.TestCase):
    def test_bf16_params_and_deltas_go_through_the_round(self):
        # bf16 params train, send bf16 deltas, are summed in float32 and stay bf16; the
        # result is the float32 round's to bf16 precision.
        model = _model()
        params = _params(model)
        algorithm = _algorithm(model)
        out = {}
        for dtype in (jnp.float32, jnp.bfloat16):
            p = jax.tree.map(lambda x, dtype=dtype: x.astype(dtype), params)
            state, states = _start(algorithm, p)
            out[dtype] = _round(algorithm)(state, states, _train(), jax.random.key(0))
        bf16 = out[jnp.bfloat16].server_state.params
        self.assertEqual(bf16["heads"]["a"]["kernel"].dtype, jnp.bfloat16)
        _close(
            jax.tree.map(lambda x: x.astype(jnp.float32), bf16),
            out[jnp.float32].server_state.params,
            atol=3e-2,
        )


class ClientTransformTest(absltest.TestCase):
    def _run(self, transform):
        model = _model()
        algorithm = _algorithm(model, client_transform=transform)
        round_fn = _round(algorithm)
        state, states = _start(algorithm, _params(model))
        for _ in range(2):
            state, states, metrics = round_fn(state, states, _train(), jax.random.key(0))
        return state, metrics

    def test_identity_and_no_op_dp_reproduce_the_run_bit_for_bit(self):
        plain, plain_metrics = self._run(None)

        def clip_inf_zero_noise(output, key):
            # Clipping at an infinite norm and zero Gaussian noise: a no-op that draws.
            noise = jax.tree.map(lambda x: 0.0 * jax.random.normal(key, x.shape), output.delta)
            scale = jnp.minimum(1.0, jnp.inf / jnp.maximum(tree.l2_norm(output.delta), 1e-12))
            delta = jax.tree.map(lambda d, z: d * scale + z, output.delta, noise)
            return output._replace(delta=delta)

        for transform in (lambda output, key: output, clip_inf_zero_noise):
            state, metrics = self._run(transform)
            jax.tree.map(np.testing.assert_array_equal, state.params, plain.params)
            np.testing.assert_array_equal(metrics["loss"], plain_metrics["loss"])


class EligibilityTest(absltest.TestCase):
    def test_ineligible_clients_are_never_sampled_and_nothing_recompiles(self):
        model = _model()
        algorithm = _algorithm(model, policy=policy_lib.ModulePolicy(local=("heads/b",)))
        traces = []
        original = algorithm.server_apply

        def server_apply(*args):
            traces.append(1)
            return original(*args)

        algorithm = algorithm._replace(server_apply=server_apply)
        round_fn = _round(algorithm, cohort_size=3)
        state, states = _start(algorithm, _params(model))
        before = jax.device_get(states)
        eligible = jnp.asarray([True, False, True, False, True, False])
        population = cohort_lib.Population(eligible, jnp.zeros(NUM_CLIENTS, jnp.int32))
        train = jax.device_put(_train())
        for seed in range(4):
            state, states, metrics = round_fn(
                state, states, train, jax.random.key(seed), population
            )
            self.assertEqual(float(metrics["num_clients"]), 3.0)
        everyone = cohort_lib.everyone(NUM_CLIENTS)
        round_fn(state, states, train, jax.random.key(9), everyone)
        self.assertLen(traces, 1)  # Eligibility is data: one compilation.
        for c in (1, 3, 5):  # Never sampled in the 4 eligible-only rounds.
            jax.tree.map(
                np.testing.assert_array_equal,
                helpers.take(jax.device_get(states), c),
                helpers.take(before, c),
            )


class PerTaskLossTest(absltest.TestCase):
    def test_loss_per_task_is_a_mean_over_labelled_examples(self):
        # Only client 3 has 'b' labels. The round's loss/b is the mean over its
        # labelled examples across local steps: its loss_sum / loss_count, not
        # (as before) its mean diluted by the other clients' zeros.
        model = _model()
        train = _train()
        for c in range(NUM_CLIENTS):
            if c != 3:
                train["label_mask"]["b"][c] = False
        algorithm = _algorithm(model)
        state, states = _start(algorithm, _params(model))
        out = _round(algorithm)(state, states, train, jax.random.key(0))
        rng = jax.random.fold_in(jax.random.key(0), 0)
        key3 = jax.random.fold_in(jax.random.fold_in(rng, round_lib.CLIENTS_TAG), 3)
        scale = round_lib.cohort_task_scale(train, jnp.arange(NUM_CLIENTS), jnp.ones(NUM_CLIENTS))
        own = algorithm.client_update(
            state.params,
            helpers.take(states, 3),
            helpers.take(train, 3),
            base.make_context(key3, 3, 0, 0, scale),
        )
        want = float(own.metrics["loss_sum/b"] / own.metrics["loss_count/b"])
        # 2 local steps of batches of 2, all labelled: 4 labelled example-visits.
        self.assertEqual(float(own.metrics["loss_count/b"]), 4.0)
        np.testing.assert_allclose(out.metrics["loss/b"], want, rtol=1e-6)
        self.assertGreater(want, 0.0)


def _tempdir(test) -> str:
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def _run_problem():
    model = _model()
    federation = helpers.federation(_spec(), [helpers.take(_train(), c) for c in range(6)])
    algorithm = _algorithm(
        model,
        server_optimizer=server_optimizers.server_optimizer("fedadam", 0.05),
        policy=policy_lib.ModulePolicy(local=("heads/b",)),
    )
    return model, algorithm, federation


def _config(**kwargs):
    defaults = dict(rounds=4, cohort_size=3, num_devices=1, chunk_size=2, verbose=False)
    return simulation.SimulationConfig(**{**defaults, **kwargs})


class RunContractTest(absltest.TestCase):
    def test_initial_state_continues_another_run_and_hooks_see_every_round(self):
        model, algorithm, federation = _run_problem()
        straight = simulation.run(algorithm, model, federation, _config())
        first = simulation.run(algorithm, model, federation, _config(rounds=2))
        seen = []
        hook = lambda info: seen.append((info.round, int(info.server_state.round)))
        second = simulation.run(
            algorithm,
            model,
            federation,
            _config(),
            initial_state=(first.server_state, first.client_states),
            hooks=(hook,),
        )
        self.assertEqual(seen, [(3, 3), (4, 4)])
        _close(second.server_state, straight.server_state, atol=0)
        _close(second.client_states, straight.client_states, atol=0)
        self.assertEqual([r["round"] for r in second.history], [3, 4])

    def test_eval_every_logs_the_personalised_view(self):
        model, algorithm, federation = _run_problem()
        result = simulation.run(algorithm, model, federation, _config(rounds=2, eval_every=1))
        record = result.history[-1]
        self.assertIn("test/b/r2", record)
        self.assertIn("personal/b/r2", record)
        self.assertNotEqual(record["test/b/r2"], record["personal/b/r2"])
        self.assertAlmostEqual(record["personal/b/r2"], result.personal_report.pooled["b"]["r2"])

    def test_no_local_modules_evaluate_once(self):
        model = _model()
        federation = _run_problem()[2]
        algorithm = _algorithm(model)
        result = simulation.run(algorithm, model, federation, _config(rounds=1))
        self.assertIs(result.personal_report, result.global_report)

    def test_ctrl_c_saves_the_round_it_finished_and_resumes_exactly(self):
        model, algorithm, federation = _run_problem()
        straight = simulation.run(algorithm, model, federation, _config())
        workdir = _tempdir(self)

        def interrupt_at_2(info):
            if info.round == 2:
                os.kill(os.getpid(), signal.SIGINT)

        with self.assertRaises(KeyboardInterrupt):
            simulation.run(
                algorithm,
                model,
                federation,
                _config(workdir=workdir, checkpoint_every=0),
                hooks=(interrupt_at_2,),
            )
        resumed = simulation.run(algorithm, model, federation, _config(workdir=workdir))
        self.assertEqual(resumed.history[0]["round"], 1)
        self.assertEqual([r["round"] for r in resumed.history], [1, 2, 3, 4])
        _close(resumed.server_state, straight.server_state, atol=0)

    def test_the_federation_is_sharded_not_replicated(self):
        # 6 clients on 4 devices: padded to 8, 2 per device, so device 0 holds 2/6 of
        # the data it would hold alone (replicating it would hold 6/6).
        federation = _run_problem()[2]
        one = simulation.loop.device_megabytes(
            simulation.loop.place_clients(federation.train, NUM_CLIENTS, None)
        )
        mesh = round_lib.make_client_mesh(4)
        placed = simulation.loop.place_clients(federation.train, NUM_CLIENTS, mesh)
        self.assertEqual(placed["mask"].shape[0], 8)
        np.testing.assert_allclose(simulation.loop.device_megabytes(placed), one * 2 / 6)
        two = round_lib.make_client_mesh(2)
        placed = simulation.loop.place_clients(federation.train, NUM_CLIENTS, two)
        np.testing.assert_allclose(simulation.loop.device_megabytes(placed), one * 3 / 6)

    def test_sharded_run_equals_one_device_with_full_participation(self):
        model, algorithm, federation = _run_problem()
        one = simulation.run(algorithm, model, federation, _config(cohort_size=6))
        four = simulation.run(
            algorithm, model, federation, _config(cohort_size=6, num_devices=4, chunk_size=1)
        )
        _close(four.server_state, one.server_state, atol=1e-5)
        _close(four.client_states, one.client_states, atol=1e-5)
        self.assertEqual(jax.tree.leaves(four.client_states)[0].shape[0], NUM_CLIENTS)  # Unpadded.
        self.assertAlmostEqual(
            four.personal_report.pooled["b"]["r2"], one.personal_report.pooled["b"]["r2"], 4
        )

    def test_a_global_test_set_is_scored_with_the_global_model(self):
        model, algorithm, federation = _run_problem()
        rng = np.random.default_rng(7)
        held_out = helpers.linear_client(rng, 9, ("a", "b"))
        federation = dataclasses.replace(federation, global_test=held_out)
        result = simulation.run(algorithm, model, federation, _config(rounds=2, eval_every=1))
        want = evaluation.evaluate(
            model, result.server_state.params, jax.tree.map(lambda x: x[None], held_out)
        )
        self.assertEqual(result.global_test_report.pooled["a"]["count"], 9)
        self.assertAlmostEqual(
            result.global_test_report.pooled["a"]["r2"], want.pooled["a"]["r2"], places=6
        )
        self.assertAlmostEqual(result.history[-1]["global_test/a/r2"], want.pooled["a"]["r2"], 6)
        with self.assertRaisesRegex(ValueError, "global_test"):
            dataclasses.replace(federation, global_test={**held_out, "mask": held_out["mask"][:3]})

    def test_groups_become_context_groups(self):
        federation = _run_problem()[2]
        grouped = dataclasses.replace(federation, groups=("b", "a", "b", "c", "a", "b"))
        np.testing.assert_array_equal(grouped.group_ids(), [2, 1, 2, 3, 1, 2])
        np.testing.assert_array_equal(federation.group_ids(), np.zeros(6))

    def test_bad_chunk_and_device_counts_are_refused(self):
        with self.assertRaisesRegex(ValueError, "chunk_size must be >= 1"):
            _config(chunk_size=0)
        with self.assertRaisesRegex(ValueError, "num_devices must be >= 1"):
            _config(num_devices=0)
        with self.assertRaisesRegex(ValueError, "chunk_size must be an int >= 1"):
            round_lib.build_round(
                _algorithm(_model()), num_clients=NUM_CLIENTS, cohort_size=2, chunk_size=0
            )


if __name__ == "__main__":
    absltest.main()
