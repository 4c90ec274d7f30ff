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
"""Personalised federated learning: a model tailored to each institution.

policies        FedPer (local heads), FedBN (local LayerNorms), per-institution
                LoRA adapters: FedAvg with a module policy
fedrep          FedRep: head steps, then body steps; heads stay local
personal_model  Ditto's persistent personal model, and local-only training
fine_tune       FedAvg + FT: k fine-tuning steps after the last round (adapt)
tap             TAP: a personal model with adaptive replacement, post-FL distillation
registry        the methods by name (algorithms/registry.py dispatches here)
"""

from fedjax_m3t.personalization import fedrep, fine_tune, personal_model, policies, registry, tap

__all__ = ["fedrep", "fine_tune", "personal_model", "policies", "registry", "tap"]
