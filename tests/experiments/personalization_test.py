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
"""experiments/personalization.py: its accounting by hand, and one tiny comparison."""

import jax
import numpy as np
import pytest

from experiments import config as config_lib
from experiments import personalization, train_lib
from fedjax_m3t import tree

TINY = dict(
    num_clients=3,
    mean_examples=12,
    width=8,
    depth=1,
    num_heads=2,
    lora_rank=2,
    rounds=2,
    local_steps=2,
    batch_size=4,
    cohort_size=2,
)


def _setup():
    config = config_lib.TrainConfig().override(**TINY)
    federation, _ = train_lib.load_data(config)
    return config, federation, train_lib.build_model(config.model, federation.spec)


def test_megabytes_and_example_steps_by_hand():
    config, federation, model = _setup()
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    sizes = dict(
        zip(tree.leaf_paths(shapes), (x.size for x in jax.tree.leaves(shapes)), strict=True)
    )
    total = sum(sizes.values())
    heads = sum(v for k, v in sizes.items() if k.startswith("heads/"))
    for method, floats in (("fedavg", total), ("fedper", total - heads)):
        algorithm = train_lib.build_algorithm(config.override(algorithm=method), model)
        # 2 rounds x 2 clients x (down + up) x float32.
        expected = 2 * 2 * 2 * 4 * floats / 2**20
        assert personalization.federated_megabytes(algorithm, model, 2, 2) == pytest.approx(
            expected, rel=1e-12
        )
    # Each step reads min(4, n_c) examples; 2 rounds x 2 steps x 2/3 of the clients.
    n = federation.num_examples("train")
    fedavg = 2 * 2 * np.minimum(n, 4).sum() * 2 / 3
    steps = lambda **kw: personalization.example_steps(config.override(**kw), federation, 2)
    assert steps(algorithm="fedavg") == pytest.approx(fedavg)
    assert steps(algorithm="ditto") == pytest.approx(2 * fedavg)
    assert steps(algorithm="ditto", ditto_steps=1) == pytest.approx(1.5 * fedavg)
    assert steps(algorithm="fedavg_ft", fine_tune_steps=3) == pytest.approx(
        fedavg + 3 * np.minimum(n, 4).sum()
    )
    assert steps(algorithm="tap", fine_tune_steps=3) == pytest.approx(
        2 * fedavg + 2 * 3 * np.minimum(n, 4).sum()
    )


def test_institution_stats():
    mean, median, worst = personalization.institution_stats(np.array([0.5, np.nan, 0.9, 0.7]))
    assert (mean, median, worst) == pytest.approx((0.7, 0.7, 0.5))
    assert np.isnan(personalization.institution_stats(np.array([np.nan]))[0])


@pytest.mark.slow
@pytest.mark.long
def test_tiny_comparison_end_to_end():
    config, _, model = _setup()
    runs, table = personalization.compare(
        config, ["local_only", "fedper"], seeds=[0, 1], say=lambda _: None
    )
    assert [(r.method, r.seed) for r in runs] == [
        ("local_only", 0),
        ("fedper", 0),
        ("local_only", 1),
        ("fedper", 1),
    ]
    assert runs[0].megabytes == 0 and runs[1].megabytes > 0
    for task in ("correct", "score", "outcome"):
        assert task in table
        assert all(r.personal[task].shape == (3,) for r in runs)
    assert "local_only (2 seeds)" in table and "fedper (2 seeds)" in table


def test_tap_flags_reach_its_config():
    config = config_lib.TrainConfig().override(
        tap_no_distill=True, tap_margin=0.02, tap_boost_tasks=("score",), fine_tune_steps=7
    )
    personal = train_lib.personal_config(config.algorithm)
    assert (personal.tap.distill, personal.tap.replacement) == (False, True)
    assert (personal.tap.margin, personal.tap.small_margin) == (0.02, 0.005)
    assert personal.tap.boost_tasks == ("score",)
    assert personal.fine_tune_steps == 7
