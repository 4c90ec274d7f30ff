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
"""Test set-up: fake 4 CPU devices before any JAX operation runs."""

import os

# Keeps tests deterministic and quick on 2 cores.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)

# The Flower bridge needs the 'flower' extra; without flwr its modules are not
# collected for doctests (its tests skip themselves).
import importlib.util  # noqa: E402

if importlib.util.find_spec("flwr") is None:
    collect_ignore_glob = ["fedjax_m3t/deploy/flower/*"]
