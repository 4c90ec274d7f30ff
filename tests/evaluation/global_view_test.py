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
"""The global model's rows when modules are local: scored with heads nobody trained."""

import numpy as np

from experiments import train_lib
from fedjax_m3t import policy as policy_lib
from fedjax_m3t import simulation
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.evaluation import report, trivial
from fedjax_m3t.models import linear
from tests import helpers

PARAMS = {
    "heads": {"y": {"kernel": 0.0, "bias": 0.0}, "z": {"kernel": 0.0}},
    "adapters": {"lora": {"a": 0.0}},
}


def _names(**patterns):
    resolved = policy_lib.resolve(policy_lib.ModulePolicy(**patterns), PARAMS)
    return report.untrained_local_modules(resolved), report.global_view_name(resolved)


def test_the_global_rows_name_the_untrained_local_modules():
    assert _names() == ([], "global")
    assert _names(local=("heads/**",)) == (["heads/y", "heads/z"], "global (untrained local heads)")
    assert _names(local=("heads/y/bias",)) == (["heads/y"], "global (untrained local heads)")
    assert _names(local=("adapters/**", "heads/z")) == (
        ["adapters/lora", "heads/z"],
        "global (untrained local modules)",
    )
    assert _names(local=("heads/**",), frozen=("heads/z",)) == (
        ["heads/y"],
        "global (untrained local heads)",
    )


def test_a_run_with_local_heads_scores_the_server_heads_at_their_initial_values():
    rng = np.random.default_rng(0)
    spec = helpers.tabular_spec()
    federation = helpers.federation(spec, [helpers.linear_client(rng, 6) for _ in range(3)])
    model = linear.build_linear_model(spec)  # Zero init.
    algorithm = registry.build_algorithm(
        "fedavg",
        model,
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=3),
        client_learning_rate=0.1,
        client_optimizer_name="sgd",
        policy=policy_lib.ModulePolicy(local=("heads/y/bias",)),
    )
    config = simulation.SimulationConfig(
        rounds=3, cohort_size=3, num_devices=1, eval_every=0, verbose=False
    )
    result = simulation.run(algorithm, model, federation, config)
    head = result.server_state.params["heads"]["y"]
    assert np.all(np.asarray(head["bias"]) == 0.0)  # Never sent: the initial value.
    assert np.abs(np.asarray(head["kernel"])).max() > 0.1  # Federated: trained.
    personal_bias = np.asarray(result.client_states["heads"]["y"]["bias"])
    assert np.abs(personal_bias).min() > 0.05  # Each client's own, trained (y has bias 0.5).
    assert report.global_view_name(algorithm.policy) == "global (untrained local heads)"

    # The global rows are exactly the server kernel with a zero bias, by hand.
    x, y = federation.test["inputs"]["tabular"], federation.test["labels"]["y"]
    by_hand = x @ np.asarray(head["kernel"])[:, 0]
    r2 = 1 - np.sum((y - by_hand) ** 2) / np.sum((y - y.mean()) ** 2)
    np.testing.assert_allclose(result.global_report.pooled["y"]["r2"], r2, rtol=1e-4)
    assert result.personal_report.pooled["y"]["r2"] > r2

    shown = {report.global_view_name(algorithm.policy): result.global_report}
    table = report.format_table(model, federation.client_names, shown).splitlines()
    assert table[2].startswith("global (untrained local heads) ALL (pooled)")
    assert table[0].index("client") == table[2].index("ALL (pooled)")  # Columns line up.

    floor = trivial.report(model, federation)
    line = train_lib.floor_line(model, result.personal_report, floor, view="personal")
    assert line.startswith("Personalised views vs predicting the train mean")
