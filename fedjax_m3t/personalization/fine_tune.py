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
"""Local fine-tuning of the final model: FedAvg + FT (and X + FT for any X).

The usual personalisation baseline (e.g. Wang et al., 2019, "Federated Evaluation
of On-device Personalization", arXiv:1910.10252; Jiang et al., 2019,
arXiv:1909.12488): after the last round every client fine-tunes the model it would
predict with (`personalize(global, client_state)`) for k steps on its own train
data, and predicts with the result.

It is an evaluation-time step, `FederatedAlgorithm.adapt` (added to the round
contract for it): training is untouched (`with_fine_tuning(fedavg)` trains exactly
as FedAvg and sends exactly what FedAvg sends), and the simulation loop scores the
personalised view as adapt(...) of the current global model at every evaluation
and at the end (base.adapt_clients, key fold_in(key(seed), ADAPT_TAG)). With
k = 0 the personalised view is the global model itself.
"""

import dataclasses

import optax

from fedjax_m3t import tasks
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.models import interface


def fine_tuning(
    model: interface.Model,
    algorithm: base.FederatedAlgorithm,
    optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    steps: int,
) -> base.AdaptFn:
    """k = `steps` local steps of the task loss from the client's personalised view.

    Args:
      model: the model.
      algorithm: gives the view to start from (`personalize`) and the leaves to tune
        (its policy's trainable ones: federated and local).
      optimizer: the fine-tuning optimizer (fresh state).
      local: batches and order of the steps (its local_steps is replaced by `steps`).
      steps: k >= 0.

    Returns:
      adapt(received, client_state, examples [n, ...], context) -> params, trained
      with the context's key and the client's own task scale.

    Raises:
      ValueError: for steps < 0.
    """
    if steps < 0:
        raise ValueError(f"fine-tuning steps must be >= 0, got {steps}.")
    personalize, trainable = algorithm.personalize, algorithm.policy.trainable
    loss = local_training.task_loss(model)
    config = dataclasses.replace(local, local_steps=max(steps, 1))

    def adapt(received, client_state, examples, context):
        params = personalize(received, client_state)
        if steps == 0:
            return params
        loss_context = local_training.LossContext(
            rng=context.rng,
            received=received,
            task_scale=tasks.own_task_scale(model.spec.tasks, examples),
        )
        tuned, _, _ = local_training.run_local_steps(
            loss, optimizer, trainable, params, examples, loss_context, config
        )
        return tuned

    return adapt


def with_fine_tuning(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    *,
    optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    steps: int,
) -> base.FederatedAlgorithm:
    """`algorithm` whose personalised view is fine-tuned `steps` steps (see module doc)."""
    return algorithm._replace(adapt=fine_tuning(model, algorithm, optimizer, local, steps))
