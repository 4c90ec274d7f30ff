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
"""fedjax_m3t: multi-modal multi-task federated foundation models in JAX.

The layout shows the architecture:

  models/       the modular M3T model (encoders, backbone, adapters, heads) and
                the `Model` interface algorithms see
  policy        which modules are federated, local or frozen
  algorithms/   the round contract (base), the client update, FedOpt (FedAvg, FedAvgM,
                FedAdam, FedYogi, FedAdagrad, FedProx) by name
  aggregation/  stateful aggregators: selective weighted mean, coordinate median, robust
                rules (trimmed mean, norm bounding, Krum, geometric median, per module),
                the guard against faulty updates
  attacks/      simulated attacking institutions (update and data attacks)
  data/         the batch layout, federations, the train/test split, tables, text
  datasets/     the downloaded datasets, the school tables, synthetic education data
  simulation/   rounds (vmap / chunks / shard_map), the run loop, checkpoints
  evaluation/   test reports (global and personalised views), baselines, equity
"""

from fedjax_m3t import evaluation, metrics, policy, simulation, tasks, tree
from fedjax_m3t.aggregation import coordinate_median, selective
from fedjax_m3t.algorithms import base, fed_opt, local_training, registry
from fedjax_m3t.algorithms.base import (
    ClientContext,
    ClientOutput,
    FederatedAlgorithm,
    ServerState,
)
from fedjax_m3t.algorithms.local_training import LocalTrainingConfig
from fedjax_m3t.algorithms.registry import build_algorithm
from fedjax_m3t.algorithms.server_optimizers import server_optimizer
from fedjax_m3t.data import federation, spec, tabular
from fedjax_m3t.data.federation import Federation
from fedjax_m3t.data.spec import DataSpec, TaskSpec
from fedjax_m3t.datasets import multilevel, synthetic
from fedjax_m3t.datasets.synthetic import SyntheticConfig, make_education_federation
from fedjax_m3t.models import interface, linear, m3t
from fedjax_m3t.models.interface import Model
from fedjax_m3t.models.m3t import M3TConfig, build_m3t_model
from fedjax_m3t.policy import ModulePolicy
from fedjax_m3t.simulation import devices as _devices
from fedjax_m3t.simulation.loop import SimulationConfig, SimulationResult

# Importing the package starts no JAX backend, so the CPU can still be split into
# the default host devices here (simulation/devices.py; a user's choice wins).
_devices.use_host_devices()

__version__ = "0.1.0"

__all__ = [
    "ClientContext",
    "ClientOutput",
    "DataSpec",
    "FederatedAlgorithm",
    "Federation",
    "LocalTrainingConfig",
    "M3TConfig",
    "Model",
    "ModulePolicy",
    "ServerState",
    "SimulationConfig",
    "SimulationResult",
    "SyntheticConfig",
    "TaskSpec",
    "base",
    "build_algorithm",
    "build_m3t_model",
    "coordinate_median",
    "evaluation",
    "fed_opt",
    "federation",
    "interface",
    "linear",
    "local_training",
    "m3t",
    "make_education_federation",
    "metrics",
    "multilevel",
    "policy",
    "registry",
    "selective",
    "server_optimizer",
    "simulation",
    "spec",
    "synthetic",
    "tabular",
    "tasks",
    "tree",
]
