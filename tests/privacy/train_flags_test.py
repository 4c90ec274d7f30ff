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
"""The DP flags of experiments.train: checked, and built into the algorithm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t.algorithms import base
from fedjax_m3t.models import linear
from tests import helpers


def _algorithm(**fields):
    config = config_lib.TrainConfig(algorithm=config_lib.AlgorithmConfig(**fields))
    model = linear.build_linear_model(helpers.tabular_spec())
    return model, train_lib.build_algorithm(config, model)


def _update(model, algorithm, seed=0):
    params = model.init(jax.random.key(0))
    examples = helpers.linear_client(np.random.default_rng(0), 40)
    context = base.make_context(jax.random.key(seed), client_id=0)
    out = jax.jit(algorithm.client_update)(
        params, algorithm.init_client_state(params), examples, context
    )
    return jnp.concatenate([x.ravel() for x in jax.tree.leaves(out.delta)])


def test_dp_flags_change_the_client_update_and_default_to_off():
    model, plain = _algorithm(client_optimizer="sgd", batch_size=8, local_steps=2)
    delta = _update(model, plain)
    # A clip far above every gradient and z = 0: DP-SGD is the plain update.
    _, dp_off = _algorithm(client_optimizer="sgd", batch_size=8, local_steps=2, dp_sgd_clip=1e9)
    np.testing.assert_allclose(_update(model, dp_off), delta, rtol=1e-5, atol=1e-7)
    _, noisy = _algorithm(
        client_optimizer="sgd",
        batch_size=8,
        local_steps=2,
        dp_sgd_clip=0.1,
        dp_sgd_noise_multiplier=1.0,
    )
    assert not np.allclose(_update(model, noisy), delta, atol=1e-4)
    _, local = _algorithm(client_optimizer="sgd", batch_size=8, local_steps=2, local_dp_clip=1e-3)
    # Local DP clips the whole update to norm 1e-3 (no noise).
    np.testing.assert_allclose(float(jnp.linalg.norm(_update(model, local))), 1e-3, rtol=1e-4)


@pytest.mark.parametrize("kind", ["dp_sgd", "local_dp"])
def test_noise_without_a_clip_is_a_settings_error(kind):
    with pytest.raises(config_lib.SettingsError, match=f"--{kind}_clip > 0"):
        config_lib.AlgorithmConfig(**{f"{kind}_noise_multiplier": 1.0})
