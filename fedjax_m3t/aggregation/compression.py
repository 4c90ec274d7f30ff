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
"""Communication accounting and compression of client uploads.

Accounting: what a client receives and sends per round is the federated leaves
under the module policy (local and frozen leaves never travel), counted in their
dtype's bytes (`round_bytes`, per module: the first two path components, e.g.
'encoders/image', 'heads/y'). Compressed uploads count what the codec sends:
b-bit codes plus a float32 minimum and step per leaf (quantisation), or k values
plus k int32 indices per leaf (top-k).

Compression as client transforms (run on the client after training, like local
DP, fedjax_m3t/privacy/local_dp.py):
  * `stochastic_quantize(bits)`: QSGD-style unbiased stochastic rounding of each
    leaf to 2^b levels between its min and max (Alistarh et al. 2017,
    arXiv:1610.02132); the server sees the decoded values.
  * `top_k(algorithm, k)`: the k largest-magnitude entries of each leaf, with
    error feedback (Stich, Cordonnier and Jaggi 2018, arXiv:1809.07599; Karimireddy
    et al. 2019): what was not sent is kept in the client state and added to the
    next round's delta. It wraps the algorithm since the residual is client state.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import policy as policy_lib
from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base

INDEX_BYTES = 4  # int32 positions of top-k values.
HEADER_BYTES = 8  # float32 minimum and step of a quantised leaf.


def _module(path, depth: int) -> str:
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return "/".join(names[:depth])


def module_bytes(tree_: t.PyTree, leaf_size=None, depth: int = 2) -> dict[str, int]:
    """Bytes per module of a pytree's non-None leaves (arrays or ShapeDtypeStructs).

    Args:
      tree_: the message (e.g. the federated leaves; None leaves are not sent).
      leaf_size: leaf -> bytes sent for it (default: size x dtype itemsize).
      depth: path components naming a module ('heads/y').

    Returns:
      {module: bytes}, sorted by module.
    """
    leaf_size = leaf_size or (lambda x: int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize)
    out: dict[str, int] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree_)[0]:
        name = _module(path, depth)
        out[name] = out.get(name, 0) + leaf_size(leaf)
    return dict(sorted(out.items()))


def quantized_leaf_bytes(bits: int):
    """leaf -> bytes of its b-bit codes and header."""
    return lambda x: math.ceil(int(np.prod(x.shape)) * bits / 8) + HEADER_BYTES


def top_k_leaf_bytes(k: int):
    """leaf -> bytes of its k values and indices (all of a leaf smaller than k)."""
    return lambda x: min(k, int(np.prod(x.shape))) * (np.dtype(x.dtype).itemsize + INDEX_BYTES)


def round_bytes(
    policy: policy_lib.ResolvedPolicy,
    params: t.Params,
    *,
    compression: str = "none",
    bits: int = 8,
    k: int = 100,
) -> dict[str, dict[str, int]]:
    """Bytes down and up per client per round, per module, of the federated leaves.

    Args:
      policy: the resolved module policy (only its federated leaves travel).
      params: the full params (arrays or ShapeDtypeStructs).
      compression: the upload codec: 'none', 'quantize' (b bits) or 'top_k' (k per leaf).

    Returns:
      {'down': {module: bytes}, 'up': {module: bytes}}; the download is never compressed.
    """
    sent = tree.select(policy.federated, params)
    up_size = {
        "none": None,
        "quantize": quantized_leaf_bytes(bits),
        "top_k": top_k_leaf_bytes(k),
    }[compression]
    return {"down": module_bytes(sent), "up": module_bytes(sent, up_size)}


def quantize(x: jax.Array, bits: int, rng: t.PRNGKey) -> jax.Array:
    """Unbiased stochastic rounding of x to 2^bits levels on [min x, max x], decoded.

    E[quantize(x)] = x: each entry rounds up with probability its distance past
    the level below, in steps.
    """
    lo, hi = jnp.min(x), jnp.max(x)
    levels = 2**bits - 1
    step = jnp.where(hi > lo, (hi - lo) / levels, 1.0)
    scaled = (x - lo) / step
    below = jnp.floor(scaled)
    up = jax.random.uniform(rng, x.shape) < (scaled - below)
    return (lo + (below + up) * step).astype(x.dtype)


def stochastic_quantize(bits: int):
    """A ClientTransform quantising every delta leaf to `bits` bits (unbiased)."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in [1, 16], got {bits}.")

    def transform(output: base.ClientOutput, rng: t.PRNGKey) -> base.ClientOutput:
        leaves, treedef = jax.tree.flatten(output.delta)
        keys = jax.random.split(rng, max(len(leaves), 1))
        sent = [quantize(x, bits, keys[i]) for i, x in enumerate(leaves)]
        return output._replace(delta=jax.tree.unflatten(treedef, sent))

    return transform


def sparsify(x: jax.Array, k: int) -> jax.Array:
    """x with all but its k largest-magnitude entries set to 0 (same shape)."""
    flat = x.reshape(-1)
    if k >= flat.shape[0]:
        return x
    _, idx = jax.lax.top_k(jnp.abs(flat), k)
    return jnp.zeros_like(flat).at[idx].set(flat[idx]).reshape(x.shape)


def top_k(algorithm: base.FederatedAlgorithm, k: int) -> base.FederatedAlgorithm:
    """`algorithm` whose clients send k entries per delta leaf, with error feedback.

    The client state becomes (the algorithm's client state, residual over the
    federated leaves): each round the client sends top_k(delta + residual) and
    keeps residual' = delta + residual - sent.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    inner = algorithm

    def init_client_state(params):
        zeros = jax.tree.map(jnp.zeros_like, tree.select(inner.policy.federated, params))
        return (inner.init_client_state(params), zeros)

    def client_update(received, client_state, examples, context):
        state, residual = client_state
        out = inner.client_update(received, state, examples, context)
        corrected = jax.tree.map(jnp.add, out.delta, residual)
        sent = jax.tree.map(lambda x: sparsify(x, k), corrected)
        left = jax.tree.map(jnp.subtract, corrected, sent)
        return out._replace(delta=sent, client_state=(out.client_state, left))

    def personalize(received, client_state):
        return inner.personalize(received, client_state[0])

    adapt = None
    if inner.adapt is not None:
        adapt = lambda r, s, e, c: inner.adapt(r, s[0], e, c)  # noqa: E731
    description = inner.description and {**inner.description, "top_k": k}
    return inner._replace(
        init_client_state=init_client_state,
        client_update=client_update,
        personalize=personalize,
        adapt=adapt,
        description=description,
    )
