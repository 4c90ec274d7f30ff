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
"""Simulated attacks by a chosen fraction of institutions (issue "Security", item 3).

selection  which institutions attack (deterministic from a seed)
updates    model-update attacks: sign flip and scaling on the attacker's client
           (they pass through the round's guard), ALIE and inner-product
           manipulation by colluding attackers at the aggregator
data       data attacks on the attackers' train split: label flipping, and a
           backdoor trigger patch on one modality with its attack success rate
"""
