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
"""How many host devices the CPU backend is split into when the user sets nothing.

On CPU a round sharded over a few forced host devices (one `lax.scan` loop over
clients per device) ran faster than anything on one device
(benchmarks/round_speed.py; W1 on 2 cores, cohort 64: see the README's Speed
section). JAX fixes the count when its CPU backend starts, so `import
fedjax_m3t` sets it then, unless the user already chose one (XLA_FLAGS'
--xla_force_host_platform_device_count or `jax_num_cpu_devices`) or JAX has
already started. The default is a constant, not the core count, so that a run
with default settings sums in the same order, hence gives the same numbers, on
every machine. Accelerator backends are unaffected.
"""

import os

import jax

DEFAULT_HOST_DEVICES = 2
_FORCE_FLAG = "--xla_force_host_platform_device_count"


def user_chose_host_devices() -> bool:
    """Whether XLA_FLAGS or jax_num_cpu_devices already set the host device count."""
    return _FORCE_FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices != -1


def use_host_devices(count: int = DEFAULT_HOST_DEVICES) -> bool:
    """Splits the CPU backend into `count` devices if nothing has chosen a count yet.

    Args:
      count: host devices (>= 1).

    Returns:
      Whether the count was set (False: the user's choice stands, or JAX's CPU
      backend has already started and keeps the devices it has).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    if user_chose_host_devices():
        return False
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # The backend already started: its device count is fixed.
        return False
    return True
