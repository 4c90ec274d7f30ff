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
"""Server optimizers of the FedOpt family, as optax transformations.

The aggregated delta (server - client) is used as a pseudo-gradient
(Reddi et al., 2021, "Adaptive Federated Optimization", arXiv:2003.00295):

  * fedavg:     SGD(lr)            (McMahan et al., 2017; lr=1 is plain averaging)
  * fedavgm:    SGD(lr, momentum)  (Hsu et al., 2019)
  * fedadam:    Adam(lr, b1, b2, eps)
  * fedyogi:    Yogi(lr, b1, b2, eps)
  * fedadagrad: Adagrad(lr, eps)

Reddi et al. recommend an adaptivity eps of about 1e-3 for the adaptive ones.
"""

import optax

SERVER_OPTIMIZERS = ("fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad")


def server_optimizer(
    name: str,
    learning_rate: float = 1.0,
    *,
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.99,
    eps: float = 1e-3,
) -> optax.GradientTransformation:
    """The optax transformation for a FedOpt server optimizer.

    >>> opt = server_optimizer('fedadam', 0.01)

    Args:
      name: one of SERVER_OPTIMIZERS.
      learning_rate: server learning rate.
      momentum: for fedavgm.
      b1, b2: moment decays for fedadam / fedyogi.
      eps: adaptivity for fedadam / fedyogi / fedadagrad.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    if name == "fedavg":
        return optax.sgd(learning_rate)
    if name == "fedavgm":
        return optax.sgd(learning_rate, momentum=momentum)
    if name == "fedadam":
        return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
    if name == "fedyogi":
        return optax.yogi(learning_rate, b1=b1, b2=b2, eps=eps)
    if name == "fedadagrad":
        return optax.adagrad(learning_rate, eps=eps)
    raise ValueError(f"Unknown server optimizer {name!r}; choose one of {SERVER_OPTIMIZERS}.")
