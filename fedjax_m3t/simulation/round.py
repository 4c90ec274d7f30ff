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
"""One federated round as a single jitted, pure function.

round(server_state, client_states, train_data, rounds_key)
    -> (server_state, client_states, metrics)

The round's key is fold_in(rounds_key, server_state.round): pure, and a run
resumed from a checkpointed state continues with the same keys.

  1. sample a cohort (on device, from the round key);
  2. gather the cohort's examples and personal states (padding slots carry no
     examples, so they weigh exactly 0);
  3. run the client update over the cohort: a `lax.scan` over chunks of
     `chunk_size` clients, `jax.vmap` inside a chunk, and, with a mesh, the cohort
     axis sharded over devices with `jax.shard_map` (partial sums `psum`'d);
     the selective aggregate is accumulated chunk by chunk, so peak memory is set
     by the chunk, not the cohort;
  4. scatter the new personal states back; apply the server step.

chunk_size=1 is a compiled loop over clients, chunk_size=cohort is one vmap:
on CPU the loop is usually faster, on accelerators the vmap (benchmarks/).
Each client's key is fold_in(clients_key, client_id), so results do not depend
on the chunking or the device count.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.simulation import cohort as cohort_lib

AXIS = "clients"


def make_client_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named 'clients' over the first `num_devices` local devices (None = all).

    Auto axis types: this JAX defaults `make_mesh` to Explicit, which shard_map-style
    code must not use.
    """
    devices = jax.local_devices()
    num_devices = num_devices or len(devices)
    if num_devices > len(devices):
        raise ValueError(
            f"Asked for {num_devices} devices but only {len(devices)} are visible. On CPU, "
            f"set XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} before "
            "importing JAX."
        )
    return jax.make_mesh(
        (num_devices,),
        (AXIS,),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=devices[:num_devices],
    )


def _check_mesh(mesh: jax.sharding.Mesh) -> None:
    """A 1-D 'clients' mesh with Auto axis types, or a ValueError saying how to make one."""
    if tuple(mesh.axis_names) != (AXIS,):
        raise ValueError(f"The mesh must have one axis named {AXIS!r}; got {mesh.axis_names}.")
    if any(a != jax.sharding.AxisType.Auto for a in mesh.axis_types):
        raise ValueError(
            f"The mesh's axis types are {mesh.axis_types}, but the round needs Auto: "
            "jax.make_mesh now defaults to Explicit. Use round.make_client_mesh(n) or "
            "jax.make_mesh((n,), ('clients',), axis_types=(jax.sharding.AxisType.Auto,))."
        )


def default_chunk_size(num_devices: int = 1, backend: str | None = None) -> int | None:
    """Clients per vmap chunk that was fastest on a backend (benchmarks/round_speed.py).

    On CPU a vmap over a whole cohort is slower than a compiled loop over clients
    (per-client weights fall out of cache): chunks of 8 were fastest on one device,
    and a plain loop (1) per device when the cohort is sharded over forced host
    devices. Accelerators want the widest vmap that fits in memory (None).
    """
    if (backend or jax.default_backend()) != "cpu":
        return None
    return 1 if num_devices > 1 else 8


class RoundOutput(NamedTuple):
    server_state: base.ServerState
    client_states: t.PyTree  # leaves [num_clients, ...]
    metrics: t.Metrics


def _reshape_chunks(tree_, chunk: int):
    return jax.tree.map(lambda x: x.reshape((-1, chunk) + x.shape[1:]), tree_)


def _unchunk(tree_):
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree_)


def _run_clients(
    algorithm, chunk_size, server_params, client_states, train_data, ids, keys, valid, axis=None
):
    """Chunked scan of the client update over a cohort.

    Each chunk gathers its own clients' examples and states from the federation
    (leaves [num_clients, ...]), so the cohort's data is never materialised at once.
    ids, keys, valid: [k] for the k cohort slots run here. `axis`: the shard_map
    axis when running per device (the scan carry must then be device-varying like
    the per-device sums it accumulates).

    Returns:
      (aggregator accumulator, new client states [k, ...], client metrics [k]).
    """
    update = jax.vmap(algorithm.client_update, in_axes=(None, 0, 0, 0))
    if chunk_size == 1:
        # A size-1 vmap still batches every op (slower kernels on CPU): call directly.
        def update(params, states_c, data_c, keys_c):
            squeeze = lambda x: x[0]
            out = algorithm.client_update(
                params, jax.tree.map(squeeze, states_c), jax.tree.map(squeeze, data_c), keys_c[0]
            )
            return jax.tree.map(lambda x: x[None], out)

    first = lambda x: x[0]
    template = jax.eval_shape(
        lambda: (
            algorithm.client_update(
                server_params,
                jax.tree.map(first, client_states),
                jax.tree.map(first, train_data),
                keys[0],
            ).delta
        )
    )

    def chunk_step(acc, chunk):
        ids_c, keys_c, valid_c = chunk
        # Padding ids point past the end: the gather clips, and the mask empties them.
        take = lambda x: jnp.take(x, ids_c, axis=0, mode="clip")
        data_c = jax.tree.map(take, train_data)
        data_c = {**data_c, "mask": data_c["mask"] & (valid_c[:, None] > 0)}
        out = update(server_params, jax.tree.map(take, client_states), data_c, keys_c)
        weight = jax.tree.map(lambda w: w * valid_c, out.weight)
        acc = algorithm.aggregator.accumulate(acc, out.delta, weight)
        return acc, (out.client_state, out.metrics)

    acc = algorithm.aggregator.init(template)
    if axis is not None:
        acc = jax.lax.pcast(acc, axis, to="varying")
    chunks = _reshape_chunks((ids, keys, valid), chunk_size)
    acc, (new_states, metrics) = jax.lax.scan(chunk_step, acc, chunks)
    return acc, _unchunk(new_states), _unchunk(metrics)


def build_round(
    algorithm: base.FederatedAlgorithm,
    *,
    num_clients: int,
    cohort_size: int,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    donate: bool = False,
):
    """Builds the jitted round function.

    Args:
      algorithm: the federated algorithm.
      num_clients: clients in the federation (leading axis of train data and states).
      cohort_size: clients per round (<= num_clients).
      chunk_size: clients vmapped at once per device (None: all of them).
      mesh: a 1-D 'clients' mesh with Auto axis types (make_client_mesh) to shard the
        cohort over (None: one device).
      donate: donate the server and client states' buffers (saves memory; the
        inputs are invalid afterwards).

    Returns:
      round_fn(server_state, client_states, train_data, rounds_key) -> RoundOutput, with
      client_states leaves [num_clients, ...], train_data leaves [num_clients, n, ...]
      and this round's key fold_in(rounds_key, server_state.round).

    Raises:
      ValueError: if cohort_size is not in [1, num_clients], or the mesh is not a 1-D
        'clients' mesh with Auto axis types.
    """
    if not 1 <= cohort_size <= num_clients:
        raise ValueError(
            f"cohort_size must be in [1, num_clients={num_clients}], got {cohort_size}."
        )
    if mesh is not None:
        _check_mesh(mesh)
    num_devices = 1 if mesh is None else mesh.size
    plan = cohort_lib.layout(cohort_size, num_devices, chunk_size)

    def run_clients(server_params, client_states, train_data, ids, keys, valid, axis=None):
        return _run_clients(
            algorithm,
            plan.chunk_size,
            server_params,
            client_states,
            train_data,
            ids,
            keys,
            valid,
            axis,
        )

    run_cohort = run_clients
    if mesh is not None and num_devices > 1:

        def sharded(server_params, client_states, train_data, ids, keys, valid):
            # Replicated params are device-invariant: without pcast their gradient
            # would be psum'd across devices, silently mixing clients' updates.
            server_params = jax.lax.pcast(server_params, AXIS, to="varying")
            acc, new_states, metrics = run_clients(
                server_params, client_states, train_data, ids, keys, valid, AXIS
            )
            # Aggregator accumulators are sums, so merging devices is a psum.
            return jax.lax.psum(acc, AXIS), new_states, metrics

        run_cohort = jax.shard_map(
            sharded,
            mesh=mesh,
            in_specs=(P(), P(), P(), P(AXIS), P(AXIS), P(AXIS)),
            out_specs=(P(), P(AXIS), P(AXIS)),
        )

    def round_fn(server_state, client_states, train_data, rounds_key):
        rng = jax.random.fold_in(rounds_key, server_state.round)
        sample_key, clients_key = jax.random.split(rng)
        real_ids = cohort_lib.sample_cohort(sample_key, num_clients, cohort_size)
        pad = plan.padded_size - cohort_size
        # Padding ids point past the end: gathers clip, scatters drop them.
        ids = jnp.concatenate([real_ids, jnp.full((pad,), num_clients, jnp.int32)])
        valid = jnp.arange(plan.padded_size) < cohort_size
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(clients_key, ids)
        acc, new_states, client_metrics = run_cohort(
            server_state.params, client_states, train_data, ids, keys, valid.astype(jnp.float32)
        )
        client_states = jax.tree.map(
            lambda all_, new: all_.at[ids].set(new, mode="drop"), client_states, new_states
        )
        server_state, server_metrics = algorithm.server_apply(
            server_state, algorithm.aggregator.finalize(acc)
        )
        return RoundOutput(
            server_state, client_states, _cohort_metrics(client_metrics, valid, server_metrics)
        )

    return jax.jit(round_fn, donate_argnums=(0, 1) if donate else ())


def _cohort_metrics(client_metrics, valid, server_metrics):
    """Example-weighted means of client metrics over the real cohort, plus server metrics."""
    n = client_metrics["num_examples"] * valid
    total = jnp.sum(n)
    out = {
        k: jnp.sum(v * n) / jnp.maximum(total, 1.0)
        for k, v in client_metrics.items()
        if k != "num_examples"
    }
    out["num_examples"] = total
    out["num_clients"] = jnp.sum(valid.astype(jnp.float32))
    out.update(server_metrics)
    return out
