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
"""Hierarchical aggregation (clients -> groups -> ... -> cloud) and its network cost.

levels        the tree above the clients, and one level's weighted mean
grouped       the client level: the selective mean per group (segment sums)
hierarchical  hierarchical FedAvg with per-module schedules (HF-FM)
network       HF-FM's analytic latency / energy model
"""

from fedjax_m3t.hierarchy import grouped, hierarchical, levels, network

__all__ = ["grouped", "hierarchical", "levels", "network"]
