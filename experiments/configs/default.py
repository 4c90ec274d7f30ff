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
r"""The defaults of experiments/train.py as a config file: every flag's default.

  python -m experiments.train --config=experiments/configs/default.py \
      --config.model.width=64 --config.run.rounds=10

A new config file starts from this one and changes what it needs (see tiny.py).
"""

from ml_collections import config_dict

from experiments import config as config_lib


def get_config() -> config_dict.ConfigDict:
    """The groups data, model, algorithm, run and output, with the flags' defaults."""
    return config_lib.to_config_dict(config_lib.TrainConfig())
