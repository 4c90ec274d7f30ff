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

The aggregated delta g = server - client is the pseudo-gradient (Reddi et al.,
2021, "Adaptive Federated Optimization", arXiv:2003.00295, whose Delta is -g):

  * fedavg:     SGD(lr)            (McMahan et al., 2017; lr=1 is plain averaging)
  * fedavgm:    SGD(lr, momentum)  (Hsu et al., 2019; optax's heavy-ball trace)
  * fedadagrad, fedadam, fedyogi: Algorithm 2 of Reddi et al. exactly, per entry:

      m_t = b1 m_{t-1} + (1 - b1) g_t                              m_0 = 0
      fedadagrad: v_t = v_{t-1} + g_t^2                            v_0 = tau^2
      fedadam:    v_t = b2 v_{t-1} + (1 - b2) g_t^2
      fedyogi:    v_t = v_{t-1} - (1 - b2) g_t^2 sign(v_{t-1} - g_t^2)
      update    = -lr m_t / (sqrt(v_t) + tau)

    with no bias correction and tau (the "adaptivity", `eps` here, 1e-3 by
    default as Reddi et al. recommend) outside the square root. This is not
    optax's adagrad (initial accumulator 0.1 and eps inside the square root make
    it SGD at about 3x the rate for small deltas) nor its bias-corrected adam/yogi.

`lazy` wraps any of them so that a leaf no client trained this round keeps its
params and its optimizer state, step counts included, bit for bit.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import typing as t

SERVER_OPTIMIZERS = ("fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad")


class AdaptiveState(NamedTuple):
    """The moments of Algorithm 2: float32 pytrees shaped like the params."""

    m: optax.Updates  # First moment; m_0 = 0.
    v: optax.Updates  # Second moment; v_0 = tau^2.


def _second_moment(name: str, b2: float) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(v_{t-1}, g_t^2) -> v_t for one of Reddi et al.'s three adaptive variants."""
    if name == "fedadagrad":
        return lambda v, g2: v + g2
    if name == "fedadam":
        return lambda v, g2: b2 * v + (1.0 - b2) * g2
    return lambda v, g2: v - (1.0 - b2) * g2 * jnp.sign(v - g2)


def _adaptive(
    name: str, learning_rate: float, b1: float, b2: float, tau: float
) -> optax.GradientTransformation:
    """Algorithm 2 of Reddi et al. (2021) for `name` in fedadagrad / fedadam / fedyogi."""
    second_moment = _second_moment(name, b2)

    def init(params):
        return AdaptiveState(
            m=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params),
            v=jax.tree.map(lambda p: jnp.full(jnp.shape(p), tau**2, jnp.float32), params),
        )

    def update(updates, state, params=None):
        del params  # Unused.
        # Moments in float32 whatever the delta's dtype: bf16 would lose small g^2.
        g32 = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), updates)
        m = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.m, g32)
        v = jax.tree.map(lambda v, g: second_moment(v, g * g), state.v, g32)
        steps = jax.tree.map(
            lambda g, m, v: (-learning_rate * m / (jnp.sqrt(v) + tau)).astype(jnp.result_type(g)),
            updates,
            m,
            v,
        )
        return steps, AdaptiveState(m=m, v=v)

    return optax.GradientTransformation(init, update)


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

    Feed it the aggregated delta (server - client) as the gradient.

    >>> opt = server_optimizer('fedadagrad', 1.0)
    >>> params = {'w': jnp.zeros(1)}
    >>> updates, _ = opt.update({'w': jnp.array([1e-4])}, opt.init(params))
    >>> # -1 * (0.1 * 1e-4) / (sqrt(1e-6 + 1e-8) + 1e-3)
    >>> round(float(updates['w'][0]), 7)
    -0.0049876

    Args:
      name: one of SERVER_OPTIMIZERS.
      learning_rate: server learning rate (Reddi et al.'s eta).
      momentum: for fedavgm.
      b1: first-moment decay (beta_1) for fedadam / fedyogi / fedadagrad.
      b2: second-moment decay (beta_2) for fedadam / fedyogi.
      eps: Reddi et al.'s adaptivity tau for fedadam / fedyogi / fedadagrad: the
        second moment starts at tau^2 and tau is added outside its square root.

    Returns:
      The transformation; the adaptive ones keep an `AdaptiveState`.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    if name == "fedavg":
        return optax.sgd(learning_rate)
    if name == "fedavgm":
        return optax.sgd(learning_rate, momentum=momentum)
    if name in ("fedadam", "fedyogi", "fedadagrad"):
        return _adaptive(name, learning_rate, b1, b2, eps)
    raise ValueError(f"Unknown server optimizer {name!r}; choose one of {SERVER_OPTIMIZERS}.")


class LazyState(NamedTuple):
    """The state of `lazy`: one independent inner state per leaf."""

    inner: t.PyTree  # The params' structure; at each leaf, inner.init(that leaf).


def _lazy_leaf(
    inner: optax.GradientTransformation,
    update: jax.Array,
    state: optax.OptState,
    param: jax.Array | None,
    trained: jax.typing.ArrayLike,
) -> tuple[jax.Array, optax.OptState]:
    """One leaf of `lazy`: the inner step where trained, else nothing moves."""
    trained = jnp.asarray(trained)
    if trained.shape != ():
        raise ValueError(f"`trained` leaves must be scalars; got shape {trained.shape}.")
    trained = trained > 0  # Bools stay bools; weights become flags.
    new_update, new_state = inner.update(update, state, param)
    new_state = jax.tree.map(lambda new, old: jnp.where(trained, new, old), new_state, state)
    # -0.0 rather than +0.0: p + (-0.0) is p bit for bit for every p, -0.0 included.
    new_update = jnp.where(trained, new_update, jnp.full_like(new_update, -0.0))
    return new_update, new_state


def lazy(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Applies `inner` only to the leaves trained this round, each leaf on its own.

    Every leaf gets its own state, `inner.init(leaf)`, so step counts (e.g. the
    `count` of optax's ScaleByAdamState) are per leaf. A leaf not trained this
    round gets an update of zeros and keeps every array of its state bit for bit,
    so `optax.apply_updates` leaves its params bit-identical, and a leaf trained
    in rounds 1 and 10 ends where one trained in rounds 1 and 2 would.

    Because each leaf is stepped alone, transformations that couple leaves (e.g.
    `optax.clip_by_global_norm`) act per leaf inside `lazy`.

    >>> opt = lazy(server_optimizer('fedavgm', 1.0))
    >>> params = {'a': jnp.ones(2), 'b': jnp.ones(2)}
    >>> delta = {'a': jnp.full(2, 0.5), 'b': jnp.full(2, 0.5)}
    >>> updates, state = opt.update(delta, opt.init(params), params,
    ...                             trained={'a': True, 'b': False})
    >>> updates['a'].tolist(), updates['b'].tolist()
    ([-0.5, -0.5], [-0.0, -0.0])

    Args:
      inner: the per-leaf transformation, e.g. `server_optimizer(name, lr)`.

    Returns:
      A transformation with `init(params)` and
      `update(updates, state, params=None, *, trained=None, **extra_args)`:
        updates: a pytree of arrays, any shapes; it may hold None at leaves
          that are not federated, and the outputs hold None there too.
        state: a `LazyState` from `init` on params of the same structure.
        params: None, or a pytree with the updates' structure.
        trained: None (every leaf trained), or a pytree with the updates'
          structure whose leaves are scalars, shape (): bools, or weights
          (trained where > 0).
        extra_args: ignored (`optax.chain` passes its members' to all).
      It returns (updates with the input's structure, shapes and dtypes from
      `inner`, the new `LazyState`).

    Raises:
      ValueError: from `update`, if a `trained` leaf is not a scalar.
    """

    def init(params):
        return LazyState(inner=jax.tree.map(inner.init, params))

    def update(updates, state, params=None, *, trained=None, **extra_args):
        del extra_args  # Meant for other members of an optax.chain.
        leaves, treedef = jax.tree.flatten(updates)
        states = treedef.flatten_up_to(state.inner)
        param_leaves = [None] * len(leaves) if params is None else treedef.flatten_up_to(params)
        flags = [True] * len(leaves) if trained is None else treedef.flatten_up_to(trained)
        stepped = [
            _lazy_leaf(inner, *leaf)
            for leaf in zip(leaves, states, param_leaves, flags, strict=True)
        ]
        new_updates = treedef.unflatten([u for u, _ in stepped])
        new_states = treedef.unflatten([s for _, s in stepped])
        return new_updates, LazyState(inner=new_states)

    return optax.GradientTransformationExtraArgs(init, update)
