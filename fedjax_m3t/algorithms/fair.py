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
"""Fair aggregation: q-FFL and agnostic federated learning, as wrappers of an algorithm.

q-FFL (Li, Sanjabi, Beirami and Smith, "Fair Resource Allocation in Federated
Learning", ICLR 2020, arXiv:1905.10497), the q-FedAvg server rule: with F_k the
client's loss at the received model w, Delta w_k = w - w_k its delta and the
Lipschitz estimate L = 1 / client learning rate,

    Delta_k = F_k^q L Delta w_k,    h_k = q F_k^(q-1) ||L Delta w_k||^2 + L F_k^q,
    w <- w - sum_k p_k Delta_k / sum_k p_k h_k.

It is carried by the engine's weighted mean unchanged: each client sends
Delta_k / h_k with weight p_k h_k (p_k its per-leaf example weight), so the
weighted mean is the rule above, and a FedAvg server step at learning rate 1
applies it. q = 0 gives h_k = L, Delta_k / h_k = Delta w_k: FedAvg exactly. The
paper samples clients with probability p_k and averages uniformly; here p_k
weights the sum (the same expectation, and q = 0 is then our FedAvg).

AFL (Mohri, Sivek and Suresh, "Agnostic Federated Learning", ICML 2019,
arXiv:1902.00146): min_w max_{lambda in simplex} sum_k lambda_k F_k(w). The
server keeps the mixture lambda over institutions (one per client: a school) in
`ServerState.agg_state`; the aggregate is sum_k lambda_k Delta w_k / sum_k
lambda_k over the cohort (the model step on the lambda-weighted loss), and
lambda takes a projected gradient ascent step on the losses,
lambda <- Proj_simplex(lambda + afl_lr * (N / K) g) with g_k = F_k for the K
sampled clients (0 elsewhere; N / K makes it unbiased under uniform sampling).
The client's loss reaches the server next to its delta (the AFL aggregator
strips it); it is stacked (it needs each slot's client id).

Both evaluate F_k on the client's whole train data at the received params (its
personal leaves merged in), before training: the losses both papers use.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedjax_m3t import tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.algorithms import base
from fedjax_m3t.models import interface

_EPS = 1e-10  # Floor of F_k: F_k^(q-1) with q < 1 is infinite at F_k = 0.


def client_loss(
    model: interface.Model,
    algorithm: base.FederatedAlgorithm,
    received: t.Params,
    client_state: t.PyTree,
    examples: dict,
    context: base.ClientContext,
) -> jax.Array:
    """F_k: the client's training objective on all its examples [n, ...], a float32 scalar.

    Scored at `algorithm.personalize(received, client_state)` with the client's own
    task scale (tasks.own_task_scale), in eval mode.
    """
    params = algorithm.personalize(received, client_state)
    predictions = model.apply(params, examples, rng=context.rng, train=False)
    scale = tasks.own_task_scale(model.spec.tasks, examples)
    loss, _ = tasks.scaled_loss(model.spec.tasks, predictions, examples, scale)
    return loss


def qffl_rescale(
    delta: t.PyTree, weight: t.PyTree, loss: jax.Array, *, q: float, lipschitz: float
) -> tuple[t.PyTree, t.PyTree, jax.Array]:
    """One client's q-FedAvg message: (Delta_k / h_k, p_k h_k per leaf, h_k).

    Args:
      delta: Delta w_k = w - w_k on the federated leaves (None elsewhere).
      weight: per-leaf scalar weights p_k (0 where untrained).
      loss: F_k, scalar.
      q: the fairness parameter (0: FedAvg).
      lipschitz: L, usually 1 / the client learning rate.
    """
    f = jnp.maximum(loss, _EPS)
    sq_norm = tree.l2_norm(delta) ** 2
    f_q = f**q
    h = q * f ** (q - 1.0) * lipschitz**2 * sq_norm + lipschitz * f_q
    scale = f_q * lipschitz / h
    return (
        jax.tree.map(lambda d: d * scale, delta),
        jax.tree.map(lambda w: w * h, weight),
        h,
    )


def qffl(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    *,
    q: float,
    lipschitz: float,
) -> base.FederatedAlgorithm:
    """`algorithm` (a FedAvg: weighted-mean aggregator, server SGD at rate 1) as q-FedAvg.

    Args:
      algorithm: the FedAvg to wrap (its client update and personalize are reused).
      model: for the client loss F_k.
      q: >= 0; 0 is FedAvg, larger q weights high-loss clients more.
      lipschitz: L of the paper, 1 / the client learning rate.

    Returns:
      The algorithm whose clients send q-FedAvg's rescaled deltas and weights
      (metrics add 'qffl_loss' F_k and 'qffl_h' h_k).
    """
    if q < 0:
        raise ValueError(f"q must be >= 0, got {q}.")
    inner = algorithm.client_update

    def client_update(received, client_state, examples, context):
        loss = client_loss(model, algorithm, received, client_state, examples, context)
        out = inner(received, client_state, examples, context)
        delta, weight, h = qffl_rescale(out.delta, out.weight, loss, q=q, lipschitz=lipschitz)
        metrics = {**out.metrics, "qffl_loss": loss, "qffl_h": h}
        return out._replace(delta=delta, weight=weight, metrics=metrics)

    description = algorithm.description and {**algorithm.description, "name": "qffl", "q": q}
    return algorithm._replace(client_update=client_update, description=description)


def project_simplex(v: jax.Array) -> jax.Array:
    """Euclidean projection of v [n] onto {x >= 0, sum x = 1} (Duchi et al. 2008).

    >>> project_simplex(jnp.array([2.5, 0.5])).tolist()
    [1.0, 0.0]
    """
    n = v.shape[0]
    u = jnp.sort(v)[::-1]
    cssv = jnp.cumsum(u) - 1.0
    j = jnp.arange(1, n + 1, dtype=v.dtype)
    rho = jnp.sum((u - cssv / j > 0).astype(jnp.int32))  # The condition holds for j <= rho.
    theta = cssv[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


class AFLState(NamedTuple):
    """AFL's aggregator state.

    Attributes:
      mixture: float32 [num_clients], lambda on the simplex.
    """

    mixture: jax.Array


def afl_aggregator(num_clients: int, learning_rate: float) -> aggregation_base.Aggregator:
    """AFL's stacked aggregator over messages {'delta': ..., 'loss': F_k} (see `afl`).

    finalize: the lambda-weighted mean of the cohort's deltas (per leaf, over the
    slots that trained it) and lambda's projected ascent step on the losses.
    """

    def init_state(template):
        del template  # Unused: the state is over clients, not leaves.
        return AFLState(jnp.full((num_clients,), 1.0 / num_clients, jnp.float32))

    def finalize(updates: aggregation_base.StackedUpdates, state: AFLState, rng):
        del rng  # Unused: deterministic.
        ids = updates.client_id
        valid = updates.weight["loss"]  # 1 for real slots (the round zeroes padding).
        lam = jnp.take(state.mixture, ids, mode="clip") * (valid > 0)

        def mean(d, w):
            coef = lam * (w > 0)
            total = jnp.sum(coef)
            s = jnp.tensordot(coef, d, axes=1) / jnp.maximum(total, 1e-30)
            return s.astype(d.dtype), total

        pairs = jax.tree.map(mean, updates.delta["delta"], updates.weight["delta"])
        is_pair = lambda x: isinstance(x, tuple)
        delta = jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair)
        weight = jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair)
        sampled = jnp.maximum(jnp.sum((valid > 0).astype(jnp.float32)), 1.0)
        grad = (
            jnp.zeros((num_clients,), jnp.float32)
            .at[ids]
            .add(updates.delta["loss"] * (valid > 0), mode="drop")
        )
        mixture = project_simplex(state.mixture + learning_rate * (num_clients / sampled) * grad)
        return aggregation_base.Aggregate(delta, weight), AFLState(mixture)

    return aggregation_base.stacked_aggregator(finalize, init_state)


def afl(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    *,
    num_clients: int,
    learning_rate: float,
) -> base.FederatedAlgorithm:
    """`algorithm` (a FedOpt) with AFL's mixture over clients in place of its aggregator.

    Args:
      algorithm: the algorithm to wrap (its server step applies the lambda-weighted delta).
      model: for the client loss F_k.
      num_clients: clients in the federation (the mixture's size).
      learning_rate: lambda's ascent step size (afl_lr).

    Returns:
      The algorithm; `state.agg_state.mixture` is lambda (metric 'afl_loss': F_k).
    """
    inner = algorithm.client_update

    def client_update(received, client_state, examples, context):
        loss = client_loss(model, algorithm, received, client_state, examples, context)
        out = inner(received, client_state, examples, context)
        return out._replace(
            delta={"delta": out.delta, "loss": loss},
            weight={"delta": out.weight, "loss": jnp.ones((), jnp.float32)},
            metrics={**out.metrics, "afl_loss": loss},
        )

    description = algorithm.description and {
        **algorithm.description,
        "name": "afl",
        "afl_lr": learning_rate,
    }
    aggregator = afl_aggregator(num_clients, learning_rate)

    def init(params):
        state = algorithm.init(params)
        return state._replace(agg_state=aggregator.init_state(None))

    return algorithm._replace(
        init=init, client_update=client_update, aggregator=aggregator, description=description
    )
