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
"""Differential privacy and per-institution privacy policies for federated training.

Accounting (dp-accounting), central DP-FedAvg, student-level DP-SGD, local DP,
per-institution policies and the membership-inference audit. Import the modules
themselves (`from fedjax_m3t.privacy import accounting`); this package re-exports
nothing, so its modules can be added independently.
"""
