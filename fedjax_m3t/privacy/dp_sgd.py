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
"""Student-level DP-SGD inside the client update (Abadi et al., 2016, arXiv:1607.00133).

Each local step of a client becomes a DP-SGD step over its own students
(examples): per-example gradients by a `jax.vmap` over the batch, each clipped
to L2 norm at most C (over all trainable leaves together), summed, plus
Gaussian noise of std z * C on the sum, divided by the batch's slot count B
(the fixed `LocalTrainingConfig.batch_size`, not the number of real examples,
which would itself depend on the data):

    g = (sum_i clip_C(g_i) * real_i + N(0, z^2 C^2 I)) / B.

Padding examples (mask False) contribute exactly 0. The noise comes from the
step key (a `fold_in` tag of it, apart from the examples' keys), so it is a pure
function of the client's round key.

It plugs into the one local loop as its `GradientFn`
(`local_training.run_local_steps(..., gradient=...)`, `fed_opt(..., gradient=...)`).
With z = 0 and C = inf it is the plain batch gradient whenever every batch slot
holds a real example (tests/privacy/dp_sgd_test.py).

What is guaranteed: (epsilon, delta)-DP of each institution's sequence of model
updates with respect to adding or removing one of its students, as accounted by
`student_epsilon` with an injected accountant (sampling rate B / n_students,
local_steps steps per round it took part in). The accountant assumes Poisson
sampling of each batch; the engine reads batches from one shuffled order per
round (`local_training.example_order`), the usual gap between DP-SGD's analysis
and its implementations: the numbers are the standard reporting, not a proof for
shuffled batches.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import local_training

# fold_in tags of a step key: the examples' keys, the noise.
_EXAMPLES_TAG, _NOISE_TAG = 0, 1

DpSgdEpsilonFn = Callable[..., float]
"""dp_sgd_epsilon(noise_multiplier, *, sampling_rate, steps, delta) -> epsilon."""


def per_example_gradients(
    objective: local_training.Objective, trainable: t.Params, batch: dict, rng: t.PRNGKey
) -> tuple[jax.Array, t.Metrics, t.Params]:
    """The objective's value and gradient on each example alone, by a vmap.

    Args:
      objective: (trainable, batch [b, ...], key) -> (loss, stats), a mean over the
        batch's real examples (so one real example's objective is its own loss, a
        padding example's 0).
      trainable: the trainable leaves.
      batch: leaves [b, ...].
      rng: the step key (each example gets its own fold_in of it).

    Returns:
      (losses [b], stats with leaves [b], gradients with leaves [b, ...]).
    """
    size = batch["mask"].shape[0]
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
        jax.random.fold_in(rng, _EXAMPLES_TAG), jnp.arange(size)
    )

    def one(example, key):
        single = jax.tree.map(lambda x: x[None], example)
        return jax.value_and_grad(objective, has_aux=True)(trainable, single, key)

    (losses, stats), grads = jax.vmap(one)(batch, keys)
    return losses, stats, grads


def clip_per_example(
    grads: t.Params, mask: jax.Array, clip: jax.typing.ArrayLike
) -> tuple[t.Params, jax.Array]:
    """Scales each example's gradient to L2 norm at most `clip`; padding rows to 0.

    Args:
      grads: leaves [b, ...], one gradient per example.
      mask: bool [b], real examples.
      clip: scalar C > 0 (inf: no clipping).

    Returns:
      (clipped gradients [b, ...], the unclipped norms float32 [b]).
    """
    leaves = jax.tree.leaves(grads)
    squares = [
        jnp.sum(jnp.square(x.astype(jnp.float32)).reshape(x.shape[0], -1), 1) for x in leaves
    ]
    norms = jnp.sqrt(sum(squares)) if squares else jnp.zeros(mask.shape, jnp.float32)
    # C / max(norm, tiny) is inf for C = inf or a zero gradient: the factor is then 1.
    factor = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-30))
    factor = jnp.where(mask, factor, 0.0)

    def scale(x):
        f = factor.reshape((-1,) + (1,) * (x.ndim - 1))
        # where(): a padding row's gradient may be garbage (inf / nan), never 0 * inf.
        return jnp.where(f > 0, x * f.astype(x.dtype), jnp.zeros_like(x))

    return jax.tree.map(scale, grads), norms


def gaussian_noise(rng: t.PRNGKey, like: t.PyTree, std: jax.typing.ArrayLike) -> t.PyTree:
    """Independent N(0, std^2) per coordinate, shaped like `like` (one key per leaf)."""
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(rng, max(len(leaves), 1))
    noise = [
        std * jax.random.normal(k, x.shape, jnp.float32) for k, x in zip(keys, leaves, strict=False)
    ]
    return jax.tree.unflatten(
        treedef, [n.astype(x.dtype) for n, x in zip(noise, leaves, strict=True)]
    )


def _per_client(value, context: local_training.LossContext) -> jax.Array:
    """A scalar, or entry client_id of a per-client vector [num_clients]."""
    value = jnp.asarray(value, jnp.float32)
    if value.ndim == 0:
        return value
    if context.client_id is None:
        raise ValueError("Per-client DP-SGD parameters need LossContext.client_id.")
    return value[context.client_id]


def dp_sgd_gradient(
    clip: jax.typing.ArrayLike, noise_multiplier: jax.typing.ArrayLike
) -> local_training.GradientFn:
    """The DP-SGD GradientFn: clipped per-example gradients plus noise, over B slots.

    >>> gradient = dp_sgd_gradient(clip=1.0, noise_multiplier=1.1)

    Args:
      clip: C, a float or a float32 vector [num_clients] (one per institution,
        indexed by the client's id; inf: no clipping).
      noise_multiplier: z (std z * C on the sum), a float or a vector [num_clients].
        z = 0 with C = inf adds no noise.

    Returns:
      gradient(objective, trainable, batch [B, ...], key, context) -> ((loss, stats),
      (sum_i clip_C(g_i) + N(0, z^2 C^2)) / B), loss the batch objective's value.

    Raises:
      ValueError: for a negative z or a non-positive C given as Python numbers.
    """
    for name, value, ok in (
        ("clip", clip, lambda v: v > 0),
        ("noise", noise_multiplier, lambda v: v >= 0),
    ):
        if isinstance(value, int | float) and not ok(value):
            raise ValueError(
                f"DP-SGD {name} must be {'> 0' if name == 'clip' else '>= 0'}, got {value}."
            )

    def gradient(objective, trainable, batch, rng, context):
        losses, stats, grads = per_example_gradients(objective, trainable, batch, rng)
        mask = batch["mask"]
        c, z = _per_client(clip, context), _per_client(noise_multiplier, context)
        clipped, _ = clip_per_example(grads, mask, c)
        summed = jax.tree.map(lambda g: jnp.sum(g, axis=0), clipped)
        std = jnp.where(z > 0, z * c, 0.0)  # Never 0 * inf.
        noise = gaussian_noise(jax.random.fold_in(rng, _NOISE_TAG), summed, std)
        slots = mask.shape[0]
        grad = jax.tree.map(lambda g, n: (g + n) / slots, summed, noise)
        real = jnp.sum(mask.astype(jnp.float32))
        loss = jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.maximum(real, 1.0)
        return (loss, jax.tree.map(lambda s: jnp.sum(s, axis=0), stats)), grad

    return gradient


def student_epsilon(
    accountant: DpSgdEpsilonFn,
    *,
    noise_multiplier: float,
    batch_size: int,
    num_examples: int,
    local_steps: int,
    rounds: int,
    delta: float,
) -> float:
    """An institution's student-level epsilon after `rounds` rounds of DP-SGD.

    Args:
      accountant: dp_sgd_epsilon(z, *, sampling_rate, steps, delta) -> epsilon
        (privacy/accounting.py, injected).
      noise_multiplier: z.
      batch_size: B, examples per step.
      num_examples: the institution's students n (sampling rate min(1, B / n)).
      local_steps: steps per round.
      rounds: rounds it took part in (its other rounds release nothing of its data).
      delta: the target delta.

    Returns:
      epsilon (0 for no round).
    """
    if rounds <= 0:
        return 0.0
    rate = min(1.0, batch_size / max(num_examples, 1))
    return float(
        accountant(noise_multiplier, sampling_rate=rate, steps=local_steps * rounds, delta=delta)
    )
