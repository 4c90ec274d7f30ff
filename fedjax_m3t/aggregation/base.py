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
"""The aggregator interface: streaming reductions of client deltas.

The round feeds clients in chunks (`accumulate`), combines per-device partial
results (`merge`, which the sharded round realises as a `psum`, so accumulators
must be sums), and `finalize`s once. New rules (compression, secure-aggregation
masks, DP noise on the sum) plug in as another Aggregator.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from fedjax_m3t import typing as t


class Aggregate(NamedTuple):
    """The aggregated update.

    Attributes:
      delta: the averaged delta per leaf (0 where nobody trained it).
      weight: total weight per leaf, float32 scalars; 0 means untrained this round.
    """

    delta: t.PyTree
    weight: t.PyTree


class Aggregator(NamedTuple):
    """Pure functions of a streaming aggregation rule.

    Attributes:
      init: delta template (arrays or ShapeDtypeStructs, one client) -> accumulator.
      accumulate: (acc, deltas [k, ...], per-leaf weights [k]) -> acc.
      merge: (acc, acc) -> acc, the sum of two partial accumulators.
      finalize: acc -> Aggregate.
    """

    init: Callable[[t.PyTree], Any]
    accumulate: Callable[[Any, t.PyTree, t.PyTree], Any]
    merge: Callable[[Any, Any], Any]
    finalize: Callable[[Any], Aggregate]
