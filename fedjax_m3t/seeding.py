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
"""The fixed fold_in tags under a run's root key, `jax.random.key(seed)`.

Each part of a run that draws randomness folds its own tag into the one seed
(STYLE section 6): the initial params, the rounds (which split further by round,
see simulation/round.py) and the baselines' training. The baselines start from
the federated run's initial params, so both read `params_key`.
"""

import jax

PARAMS_TAG, ROUNDS_TAG, BASELINE_TAG = 0, 1, 2
# The evaluation-time adaptation of personalised algorithms (FederatedAlgorithm.adapt).
ADAPT_TAG = 3


def params_key(seed: int) -> jax.Array:
    """The key of a run's initial params: fold_in(key(seed), PARAMS_TAG)."""
    return jax.random.fold_in(jax.random.key(seed), PARAMS_TAG)
