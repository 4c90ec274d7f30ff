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
"""The Flower bridge in one process: the same rounds as the simulation, what leaves a client.

The ClientApp and the Strategy are the deployed ones; `InProcessGrid` stands in
for the SuperLink (tests/deploy/flower_loopback_test.py runs the real one).
"""

import functools

import jax
import numpy as np
import pytest
from absl.testing import absltest, parameterized

pytest.importorskip("flwr")

from flwr import app as flwr_app  # noqa: E402

from fedjax_m3t import policy as policy_lib  # noqa: E402
from fedjax_m3t import seeding, simulation  # noqa: E402
from fedjax_m3t.algorithms import local_training, registry  # noqa: E402
from fedjax_m3t.datasets import synthetic  # noqa: E402
from fedjax_m3t.deploy.flower import client as client_lib  # noqa: E402
from fedjax_m3t.deploy.flower import in_process, protocol, records  # noqa: E402
from fedjax_m3t.deploy.flower import server as server_lib  # noqa: E402
from fedjax_m3t.models import linear, m3t  # noqa: E402
from tests import helpers  # noqa: E402

SEED, ROUNDS, COHORT, NUM_CLIENTS = 3, 3, 2, 4
LOCAL_HEAD = ("heads/b",)


@functools.cache
def _problem():
    """4 clients of 2-5 examples, regression tasks 'a' (federated head) and 'b'."""
    spec = helpers.tabular_spec((("a", "regression"), ("b", "regression")))
    rng = np.random.default_rng(0)
    train = [helpers.linear_client(rng, n, ("a", "b")) for n in (2, 3, 4, 5)]
    return helpers.federation(spec, train), linear.build_linear_model(spec)


def _algorithm(name="fedavg", aggregator="mean", local=LOCAL_HEAD):
    federation, model = _problem()
    return registry.build_algorithm(
        name,
        model,
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        client_learning_rate=0.1,
        server_learning_rate=1.0 if name == "fedavg" else 0.05,
        policy=policy_lib.ModulePolicy(local=local),
        aggregator=aggregator,
    )


@functools.cache
def _simulated(name, aggregator):
    """The one-device simulation of ROUNDS rounds (cohorts sampled as the bridge does)."""
    federation, model = _problem()
    config = simulation.SimulationConfig(
        rounds=ROUNDS, cohort_size=COHORT, num_devices=1, seed=SEED, verbose=False
    )
    return simulation.run(_algorithm(name, aggregator), model, federation, config)


def _deploy(server_algorithm, client_algorithm, mods=None, problem=_problem, rounds=ROUNDS):
    """(strategy, grid) after `rounds` Flower rounds over in-process ClientApps."""
    federation, model = problem()
    num_clients = federation.num_clients
    params = model.init(seeding.params_key(SEED))

    def institution(context):
        c = int(context.node_config["client-id"])
        examples = jax.tree.map(lambda x: x[c], federation.train)
        return client_lib.Institution(client_algorithm, params, examples, c, 0)

    app = client_lib.make_client_app(institution, mods=mods)
    grid = in_process.InProcessGrid(app, [{"client-id": c} for c in range(num_clients)])
    registration = server_lib.register(grid, num_clients)
    strategy = server_lib.RoundStrategy(
        server_algorithm,
        params,
        registration,
        num_clients=num_clients,
        cohort_size=COHORT,
        seed=SEED,
        task_names=tuple(task.name for task in federation.spec.tasks),
        record=True,
    )
    strategy.start(grid, strategy.federated_record(), num_rounds=rounds)
    return strategy, grid


class FlowerBridgeTest(parameterized.TestCase):
    @parameterized.parameters(("fedavg", "mean"), ("fedadam", "median"))
    def test_rounds_equal_the_simulation(self, name, aggregator):
        algorithm = _algorithm(name, aggregator)
        strategy, grid = _deploy(algorithm, algorithm)
        sim = _simulated(name, aggregator)
        got = records.to_arrays(strategy.state.params)
        want = records.to_arrays(sim.server_state.params)
        self.assertEqual(
            sorted(got), ["heads/a/bias", "heads/a/kernel", "heads/b/bias", "heads/b/kernel"]
        )
        for path in want:  # The same functions on the same inputs: bit-equal in practice.
            np.testing.assert_allclose(got[path], want[path], rtol=0, atol=1e-6, err_msg=path)
        # The federated head moved; the same cohorts (their example counts) and losses.
        self.assertGreater(
            np.abs(
                got["heads/a/kernel"]
                - algorithm.init(_problem()[1].init(seeding.params_key(SEED))).params["heads"]["a"][
                    "kernel"
                ]
            ).max(),
            1e-3,
        )
        for mine, theirs in zip(strategy.history, sim.history, strict=True):
            self.assertEqual(mine["num_examples"], theirs["num_examples"])
            np.testing.assert_allclose(mine["loss"], theirs["loss"], rtol=1e-6)
        # Each trained client's local head, kept in its Flower Context.state, is the
        # simulation's client state of that client.
        sim_heads = sim.client_states["heads"]["b"]["kernel"]
        trained = 0
        for context in grid.contexts.values():
            c = int(context.node_config["client-id"])
            if protocol.LOCAL_STATE not in context.state:
                continue
            trained += 1
            local = context.state[protocol.LOCAL_STATE]["heads/b/kernel"].numpy()
            np.testing.assert_allclose(local, sim_heads[c], rtol=0, atol=1e-6)
        self.assertGreaterEqual(trained, COHORT)

    def test_a_local_module_is_in_no_message(self):
        strategy, _ = _deploy(_algorithm(), _algorithm())
        train_messages = [
            m for m in strategy.messages if protocol.PARAMS in m or protocol.DELTA in m
        ]
        self.assertLen(train_messages, 2 * COHORT * ROUNDS)  # Out and back, per client, per round.
        for content in strategy.messages:
            for name, record in content.items():
                keys = list(record.keys())
                self.assertFalse([k for k in keys if k.startswith("heads/b")], (name, keys))
        for content in train_messages:  # The federated head travels every time.
            record = (
                content[protocol.PARAMS] if protocol.PARAMS in content else content[protocol.DELTA]
            )
            self.assertEqual(sorted(record.keys()), ["heads/a/bias", "heads/a/kernel"])

    def test_a_client_with_another_policy_stops_the_run_naming_the_leaf(self):
        # The client federates heads/b too: it expects a leaf the server does not send.
        with self.assertRaisesRegex(RuntimeError, "missing leaf 'heads/b/bias'"):
            _deploy(_algorithm(), _algorithm(local=()))
        # The server federates heads/b, which the client keeps local: it refuses the
        # params, and its error reply stops the server.
        with self.assertRaisesRegex(RuntimeError, "unexpected leaf 'heads/b/bias'"):
            _deploy(_algorithm(local=()), _algorithm())

    def test_a_reply_with_another_tree_stops_the_server_naming_the_leaf(self):
        def tamper(message, context, call_next):  # A Flower mod adding a leaf to the reply.
            reply = call_next(message, context)
            if reply.has_content() and protocol.DELTA in reply.content:
                extra = flwr_app.Array(np.zeros((1,), np.float32))
                reply.content[protocol.DELTA]["heads/c/kernel"] = extra
            return reply

        with self.assertRaisesRegex(
            records.TreeMismatchError, "client [0-9]'s reply: .*unexpected leaf 'heads/c/kernel'"
        ):
            _deploy(_algorithm(), _algorithm(), mods=[tamper])


@functools.cache
def _m3t_problem():
    """4 synthetic schools (text, image, tabular, interactions; 3 tasks), a small M3T."""
    federation = synthetic.make_education_federation(
        synthetic.SyntheticConfig(num_clients=4, mean_examples=12, seed=0)
    )
    config = m3t.M3TConfig(width=8, depth=1, num_heads=2, mlp_dim=16, lora_rank=2)
    return federation, m3t.build_m3t_model(federation.spec, config)


@pytest.mark.slow
class FlowerBridgeM3TTest(absltest.TestCase):
    def test_m3t_with_a_local_head_equals_the_simulation(self):
        federation, model = _m3t_problem()
        algorithm = registry.build_algorithm(
            "fedavg",
            model,
            local=local_training.LocalTrainingConfig(local_steps=2, batch_size=4),
            client_learning_rate=0.05,
            policy=policy_lib.ModulePolicy(local=("heads/score",)),
        )
        strategy, _ = _deploy(algorithm, algorithm, problem=_m3t_problem, rounds=2)
        config = simulation.SimulationConfig(
            rounds=2, cohort_size=COHORT, num_devices=1, seed=SEED, verbose=False
        )
        sim = simulation.run(algorithm, model, federation, config)
        got = records.to_arrays(strategy.state.params)
        want = records.to_arrays(sim.server_state.params)
        worst = max(float(np.abs(got[k] - want[k]).max()) for k in want)
        self.assertLess(worst, 1e-6, "the simulation vmaps the cohort; Flower calls one client")
        for content in strategy.messages:
            for record in content.values():
                self.assertFalse([k for k in record.keys() if k.startswith("heads/score")])


class RecordsTest(absltest.TestCase):
    def test_round_trip_and_shape_mismatch(self):
        tree_ = {"b": {"w": np.ones((2, 3), np.float32)}, "a": None, "c": np.zeros((), np.int32)}
        record = records.to_record(tree_)
        self.assertEqual(list(record.keys()), ["b/w", "c"])  # Flatten order; None absent.
        back = records.from_record(record, tree_, "x")
        np.testing.assert_array_equal(back["b"]["w"], tree_["b"]["w"])
        self.assertIsNone(back["a"])
        wrong = {**tree_, "b": {"w": np.ones((3, 2), np.float32)}}
        with self.assertRaisesRegex(
            records.TreeMismatchError, r"leaf 'b/w' is float32\[2, 3\], expected float32\[3, 2\]"
        ):
            records.from_record(record, wrong, "x")
        with self.assertRaisesRegex(records.TreeMismatchError, "missing leaf 'a'"):
            records.from_record(record, {**tree_, "a": np.zeros(1)}, "x")


if __name__ == "__main__":
    absltest.main()
