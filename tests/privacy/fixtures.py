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
"""A small M3T federation with missing modalities, shared by the privacy tests."""

import dataclasses

from dp_accounting import dp_event, rdp

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import m3t

MODALITIES = ("image", "tabular")
TASKS = ("correct", "score")


def _restrict(data: dict) -> dict:
    pick = lambda d, keys: {k: d[k] for k in keys}
    return {
        "inputs": pick(data["inputs"], MODALITIES),
        "present": pick(data["present"], MODALITIES),
        "labels": pick(data["labels"], TASKS),
        "label_mask": pick(data["label_mask"], TASKS),
        "mask": data["mask"],
    }


def small_m3t(num_clients: int = 2, mean_examples: int = 24, seed: int = 0, **kwargs):
    """(federation, model): the synthetic schools' images and tables, a binary and a
    regression task; modalities missing per school and per student. Two of the four
    modalities and tasks keep the compile times of per-example gradients small."""
    full = synthetic.make_education_federation(
        synthetic.SyntheticConfig(
            num_clients=num_clients,
            mean_examples=mean_examples,
            quantity_skew=0.0,
            min_examples=mean_examples,
            modality_missing_prob=kwargs.pop("modality_missing_prob", 0.3),
            example_missing_prob=0.3,
            image_size=8,
            text_length=4,
            text_vocab_size=16,
            interaction_length=4,
            num_skills=4,
            tabular_features=4,
            seed=seed,
            **kwargs,
        )
    )
    spec = dataclasses.replace(
        full.spec,
        modalities=MODALITIES,
        tasks=tuple(t for t in full.spec.tasks if t.name in TASKS),
    )
    federation = federation_lib.Federation(
        spec=spec,
        client_names=full.client_names,
        train=_restrict(full.train),
        test=_restrict(full.test),
    )
    model = m3t.build_m3t_model(
        federation.spec,
        m3t.M3TConfig(width=8, depth=1, num_heads=2, mlp_dim=16, patch_size=4, lora_rank=2),
    )
    return federation, model


def rdp_dp_sgd_epsilon(noise_multiplier, *, sampling_rate, steps, delta):
    """The reference accountant (dp_accounting RDP, Poisson sampling), as tests inject it."""
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sampling_rate, dp_event.GaussianDpEvent(noise_multiplier)),
        steps,
    )
    return rdp.RdpAccountant().compose(event).get_epsilon(delta)


def rdp_gaussian_epsilon(noise_multiplier, *, count, delta):
    """The reference accountant of `count` Gaussian mechanisms (no sampling)."""
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(noise_multiplier), count)
    return rdp.RdpAccountant().compose(event).get_epsilon(delta)
