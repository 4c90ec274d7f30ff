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
"""setUpModule / tearDownModule of the secure tests: XLA's optimisations off.

Compilation dominates these tests on CPU; the integer arithmetic they check is the
same with or without XLA's optimisations. The previous setting is restored.
"""

import jax

_SAVED = []


def set_up() -> None:
    _SAVED.append(jax.config.read("jax_disable_most_optimizations"))
    jax.config.update("jax_disable_most_optimizations", True)


def tear_down() -> None:
    jax.config.update("jax_disable_most_optimizations", _SAVED.pop())
