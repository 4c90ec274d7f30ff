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
"""A seconds-long run on CPU, for smoke tests and CI (`--preset=tiny`).

4 synthetic institutions, 2 rounds of 2 local steps, a width-16 one-layer model,
and a checkpoint and an evaluation every round.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
    """The defaults, made small."""
    config = default.get_config()
    config.data.num_clients = 4
    config.data.mean_examples = 24
    config.model.width = 16
    config.model.depth = 1
    config.model.num_heads = 2
    config.algorithm.local_steps = 2
    config.algorithm.batch_size = 8
    config.run.rounds = 2
    config.output.checkpoint_every = 1
    config.output.eval_every = 1
    return config
