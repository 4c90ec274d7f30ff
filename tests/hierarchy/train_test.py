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
"""--algorithm=hierarchical through the registry, the config and experiments.train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t import evaluation, tree
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.hierarchy import hierarchical, levels
from fedjax_m3t.models import linear
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import round as round_lib
from tests import helpers


def test_bad_hierarchy_settings_are_refused():
    with pytest.raises(config_lib.SettingsError, match="--cloud_every"):
        config_lib.TrainConfig().override(algorithm="hierarchical", cloud_every=-1)
    model = linear.build_linear_model(helpers.tabular_spec())
    with pytest.raises(ValueError, match="needs the tree of groups"):
        registry.build_algorithm(
            "hierarchical",
            model,
            local=local_training.LocalTrainingConfig(),
            client_learning_rate=0.1,
        )


def test_group_views_predict_with_each_groups_copy():
    # Edge only, 2 groups: after a round the groups differ, and client c's view is
    # its group's copy: the same predictions as the plain model on those params.
    spec = helpers.tabular_spec()
    model = linear.build_linear_model(spec)
    rng = np.random.default_rng(0)
    data = helpers.stack([helpers.linear_client(rng, n) for n in (3, 4, 5, 2)])
    algorithm = registry.build_algorithm(
        "hierarchical",
        model,
        local=local_training.LocalTrainingConfig(local_steps=2, batch_size=2),
        client_learning_rate=0.1,
        client_optimizer_name="sgd",
        tree=levels.Tree(num_groups=2),
        schedule=hierarchical.hffm_schedule(cloud_every=0),
    )
    params = model.init(None)
    groups = np.asarray([0, 1, 1, 0], np.int32)
    round_fn = round_lib.build_round(algorithm, num_clients=4, cohort_size=4, chunk_size=2)
    population = cohort_lib.Population(jnp.ones(4, bool), jnp.asarray(groups))
    states = jax.tree.map(lambda x: jnp.stack([x] * 4), algorithm.init_client_state(params))
    state, _, _ = round_fn(algorithm.init(params), states, data, jax.random.key(0), population)
    copies = state.agg_state.group_params
    gap = tree.l2_norm(jax.tree.map(lambda x: x[0] - x[1], copies))
    assert float(gap) > 1e-3
    got = hierarchical.predict_groups(algorithm, model, state, data, groups)
    for c in range(4):
        mine = jax.tree.map(lambda x, c=c: x[groups[c]], copies)
        one = jax.tree.map(lambda x, c=c: x[c : c + 1], data)
        want = evaluation.predict(model, mine, one)
        np.testing.assert_allclose(got["y"][c], want["y"][0], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_tiny_hierarchical_run_reports_the_group_view():
    tiny = config_lib.from_config_dict(config_lib.load_preset("tiny"))
    result = train_lib.train(tiny.override(algorithm="hierarchical", cloud_every=2))
    assert int(result.server_state.round) == 2
    # One group (synthetic data has none) and a cloud round at 2: every copy is the cloud's.
    copies = result.server_state.agg_state.group_params  # Every module is federated.
    jax.tree.map(
        lambda g, c: np.testing.assert_array_equal(g[0], c), copies, result.server_state.params
    )
