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
"""Which institutions attack: a fixed fraction, chosen once from a seed."""

import numpy as np


def choose_attackers(num_clients: int, fraction: float, seed: int = 0) -> np.ndarray:
    """bool [num_clients]: round(fraction * num_clients) attackers, uniformly at random.

    The same (num_clients, fraction, seed) always gives the same attackers, and a
    larger fraction with the same seed keeps the smaller fraction's attackers (a
    prefix of one permutation), so results across fractions are nested.

    Args:
      num_clients: institutions in the federation.
      fraction: share of attackers in [0, 1].
      seed: the draw's seed.

    Raises:
      ValueError: if fraction is outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    order = np.random.default_rng(seed).permutation(num_clients)
    attackers = np.zeros(num_clients, bool)
    attackers[order[: int(round(fraction * num_clients))]] = True
    return attackers
