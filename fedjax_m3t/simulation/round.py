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

round(server_state, client_states, train_data, rounds_key, population=None)
    -> RoundOutput(server_state, client_states, metrics)

The round's key is fold_in(rounds_key, server_state.round): pure, and a run
resumed from a checkpointed state continues with the same keys. From it, with
fixed tags: the sampler's, the clients' (client c: fold_in(clients_key, c)), the
aggregator's and the server's keys.

  1. sample a cohort among the `population.eligible` clients (on device). On one
     device: uniformly from the federation. Sharded over D devices, the
     federation, the client states and the population are sharded over the
     clients axis (each device holds a block of ceil(N / D) clients, padded with
     empty ones: memory per device falls as devices are added), and each device
     samples its share of the cohort from its own block (stratified sampling:
     every client still has inclusion probability cohort / N when the blocks are
     full; full participation takes every client). So with partial participation
     the cohorts, not only the order of float sums, depend on the device count;
  2. the cohort's per-task loss scale from its label counts
     (ClientContext.task_scale; see algorithms/local_training.leaf_weights);
  3. run broadcast + client update over the cohort (algorithms/base.py): a
     `lax.scan` over chunks of `chunk_size` clients, `jax.vmap` inside a chunk,
     and, with a mesh, the cohort axis sharded over devices with `jax.shard_map`
     (the aggregator's `merge_across` combines the devices). A streaming
     aggregator accumulates chunk by chunk (peak memory set by the chunk); a
     stacked one keeps the cohort's deltas;
  4. finalize the aggregate (with the aggregator's state and key), scatter the
     new personal states back, apply the server step (with its key).

chunk_size=1 is a compiled loop over clients, chunk_size >= the per-device
cohort is one vmap; None picks the backend's fastest (`default_chunk_size`).
Each client's key depends only on its id, so results do not depend on the
chunking; with full participation the device count changes only the order of
float sums.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from fedjax_m3t import tasks
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base as aggregation_base
from fedjax_m3t.aggregation import guard as guard_lib
from fedjax_m3t.algorithms import base
from fedjax_m3t.simulation import cohort as cohort_lib

AXIS = "clients"


def make_client_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named 'clients' over the first `num_devices` devices (None = all).

    The local devices, or every process's after `jax.distributed.initialize`.

    Auto axis types: this JAX defaults `make_mesh` to Explicit, which shard_map-style
    code must not use.
    """
    # Several processes (simulation/distributed.py): the mesh spans all their devices.
    devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
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


def default_chunk_size(cohort_size: int, num_devices: int = 1, backend: str | None = None) -> int:
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


# fold_in tags of the round key.
SAMPLER_TAG, CLIENTS_TAG, AGGREGATOR_TAG, SERVER_TAG = 0, 1, 2, 3


def _reshape_chunks(tree_, chunk: int):
    return jax.tree.map(lambda x: x.reshape((-1, chunk) + x.shape[1:]), tree_)


def _unchunk(tree_):
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree_)


def cohort_task_scale(
    train_data: dict, rows: jax.Array, valid: jax.Array, axis: str | None = None
) -> dict:
    """tasks.task_scale over the cohort's clients (ClientContext.task_scale).

    Args:
      train_data: leaves [num_clients, n, ...] (this device's block when sharded).
      rows: int32 [k] cohort slots' rows (padding rows point past the end).
      valid: [k], nonzero for real slots.
      axis: when sharded, the mesh axis to sum the counts over.
    """
    real = jnp.take(train_data["mask"], rows, axis=0, mode="clip") & (valid[:, None] > 0)
    count = lambda x: jnp.sum(x.astype(jnp.float32), axis=1)
    labels = {
        task: count(real & jnp.take(mask, rows, axis=0, mode="clip"))
        for task, mask in train_data["label_mask"].items()
    }
    num_examples = count(real)
    if axis is not None:  # Every device needs the whole cohort's counts.
        num_examples, labels = jax.lax.all_gather((num_examples, labels), axis, tiled=True)
    return tasks.task_scale(tuple(labels), num_examples, labels)


def _client_fn(algorithm: base.FederatedAlgorithm, chunk_size: int):
    """(state, client_states [k], data [k], contexts [k]) -> ClientOutput [k]."""

    def one(server_state, client_state, examples, context):
        received = algorithm.broadcast(server_state, context)
        return algorithm.client_update(received, client_state, examples, context)

    if chunk_size > 1:
        return jax.vmap(one, in_axes=(None, 0, 0, base.CONTEXT_AXES))

    # A size-1 vmap still batches every op (slower kernels on CPU): call directly.
    def single(server_state, states_c, data_c, contexts_c):
        squeeze = lambda x: x[0]
        context = contexts_c._replace(
            rng=contexts_c.rng[0], client_id=contexts_c.client_id[0], group=contexts_c.group[0]
        )
        out = one(
            server_state, jax.tree.map(squeeze, states_c), jax.tree.map(squeeze, data_c), context
        )
        return jax.tree.map(lambda x: x[None], out)

    return single


def _run_clients(
    algorithm, chunk_size, server_state, client_states, train_data, slots, axis=None, guard=None
):
    """Chunked scan of broadcast + client update over cohort slots.

    Each chunk gathers its own clients' examples and states from the federation
    (leaves [num_clients, ...]), so the cohort's data is never materialised at once.
    `slots`: (rows, ids, keys, valid, groups, scale), [k] each but the shared scale,
    for the k slots run here: `rows` index train_data / client_states (this device's
    block when sharded), `ids` are the clients' federation-wide ids. `axis`: the
    shard_map axis when running per device (the scan carry must then be
    device-varying like the per-device sums it accumulates). `guard` screens each
    update before the aggregator sees it (aggregation/guard.py; None: the default).

    Returns:
      (accumulator or StackedUpdates, new client states [k, ...], client metrics [k]).
    """
    rows, ids, keys, valid, groups, scale = slots
    aggregator = algorithm.aggregator
    guard = guard_lib.Guard() if guard is None else guard
    update = _client_fn(algorithm, chunk_size)

    def chunk_step(acc, chunk):
        rows_c, ids_c, keys_c, valid_c, groups_c = chunk
        # Padding rows point past the end: the gather clips, and the mask empties them.
        take = lambda x: jnp.take(x, rows_c, axis=0, mode="clip")
        data_c = jax.tree.map(take, train_data)
        data_c = {**data_c, "mask": data_c["mask"] & (valid_c[:, None] > 0)}
        contexts = base.ClientContext(keys_c, ids_c, server_state.round, groups_c, scale)
        out = update(server_state, jax.tree.map(take, client_states), data_c, contexts)
        weight = jax.tree.map(lambda w: w * valid_c, out.weight)
        delta, weight, bad = guard_lib.screen_nonfinite(guard, out.delta, weight, valid_c.shape[0])
        metrics = {**out.metrics, guard_lib.NONFINITE_KEY: bad}
        if aggregator.stacked:
            return acc, (out.client_state, metrics, delta, weight)
        if aggregator.grouped:  # Per-group sums (hierarchical aggregation).
            acc = aggregator.accumulate(acc, delta, weight, groups_c)
        else:
            acc = aggregator.accumulate(acc, delta, weight)
        return acc, (out.client_state, metrics)

    acc = ()
    if not aggregator.stacked:
        first = lambda x: x[0]
        context = base.ClientContext(keys[0], ids[0], server_state.round, groups[0], scale)
        template = jax.eval_shape(
            lambda: (
                algorithm.client_update(
                    algorithm.broadcast(server_state, context),
                    jax.tree.map(first, client_states),
                    jax.tree.map(first, train_data),
                    context,
                ).delta
            )
        )
        acc = aggregator.init(template)
        if axis is not None:
            acc = jax.lax.pcast(acc, axis, to="varying")
        if aggregator.begin_round is not None:
            acc = aggregator.begin_round(acc, server_state.agg_state)
    chunks = _reshape_chunks((rows, ids, keys, valid, groups), chunk_size)
    acc, outs = jax.lax.scan(chunk_step, acc, chunks)
    outs = _unchunk(outs)
    if aggregator.stacked:
        new_states, metrics, deltas, weights = outs
        return aggregation_base.StackedUpdates(deltas, weights, ids), new_states, metrics
    new_states, metrics = outs
    return acc, new_states, metrics


def build_round(
    algorithm: base.FederatedAlgorithm,
    *,
    num_clients: int,
    cohort_size: int,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    donate: bool = False,
    guard: guard_lib.Guard | None = None,
):
    """Builds the jitted round function.

    Args:
      algorithm: the federated algorithm.
      num_clients: clients in the federation (leading axis of train data and states).
      cohort_size: client slots per round (<= num_clients).
      chunk_size: clients vmapped at once per device, >= 1 (None: the backend's
        fastest, `default_chunk_size`; >= the per-device cohort: one vmap).
      mesh: a 1-D 'clients' mesh with Auto axis types (make_client_mesh) to shard the
        cohort over (None: one device).
      donate: donate the server and client states' buffers (saves memory; the
        inputs are invalid afterwards).
      guard: which client updates are rejected before the aggregator
        (aggregation/guard.py; None: Guard(), non-finite updates only). Its metrics
        join the round's; rejected clients are left out of the other metrics.

    Returns:
      round_fn(server_state, client_states, train_data, rounds_key, population=None)
      -> RoundOutput, with client_states leaves [num_clients, ...], train_data leaves
      [num_clients, n, ...], population a cohort.Population (None: everyone eligible,
      group 0) and this round's key fold_in(rounds_key, server_state.round).

    Raises:
      ValueError: if cohort_size is not in [1, num_clients], chunk_size < 1, or the
        mesh is not a 1-D 'clients' mesh with Auto axis types.
    """
    if not 1 <= cohort_size <= num_clients:
        raise ValueError(
            f"cohort_size must be in [1, num_clients={num_clients}], got {cohort_size}."
        )
    if mesh is not None:
        _check_mesh(mesh)
    num_devices = 1 if mesh is None else mesh.size
    if chunk_size is None:
        chunk_size = default_chunk_size(cohort_size, num_devices)
    plan = cohort_lib.layout(cohort_size, num_devices, chunk_size)
    guard = guard_lib.Guard() if guard is None else guard
    if guard.needs_cohort:  # The norm rule screens the whole cohort's rows.
        algorithm = algorithm._replace(aggregator=aggregation_base.as_stacked(algorithm.aggregator))
    aggregator = algorithm.aggregator
    num_padded = padded_num_clients(num_clients, num_devices)
    block = num_padded // num_devices  # Clients held by each device.
    slots_per_device = plan.padded_size // num_devices

    def global_slots(population, rng):
        """One device: a uniform sample of the federation; rows = ids."""
        real_ids, real_valid = cohort_lib.sample_cohort(
            jax.random.fold_in(rng, SAMPLER_TAG), population.eligible, cohort_size
        )
        pad = plan.padded_size - cohort_size
        # Padding ids point past the end: gathers clip, scatters drop them.
        ids = jnp.concatenate([real_ids, jnp.full((pad,), num_padded, jnp.int32)])
        valid = jnp.concatenate([real_valid, jnp.zeros((pad,), bool)])
        return ids, ids, valid

    def local_slots(population, rng):
        """Sharded: each device samples its share of the cohort from its own block."""
        device = jax.lax.axis_index(AXIS)
        share = cohort_size // num_devices + (device < cohort_size % num_devices)
        if cohort_size == num_clients:  # Full participation: every client, in order.
            rows = jnp.arange(slots_per_device, dtype=jnp.int32)
            valid = rows < block
        else:
            key = jax.random.fold_in(jax.random.fold_in(rng, SAMPLER_TAG), device)
            rows = cohort_lib.shuffled_eligible(key, population.eligible)
            rows = rows[: min(slots_per_device, block)]
            extra = slots_per_device - rows.shape[0]
            rows = jnp.concatenate([rows, jnp.full((extra,), block, jnp.int32)])
            valid = jnp.arange(slots_per_device) < share
        valid = valid & jnp.take(population.eligible, rows, mode="clip")
        return rows, rows + device * block, valid

    def cohort_step(server_state, client_states, train_data, population, rng, axis=None):
        """Sample, train, write states back: on one device, or per device in shard_map."""
        rows, ids, valid = (global_slots if axis is None else local_slots)(population, rng)
        valid = valid.astype(jnp.float32)
        clients_key = jax.random.fold_in(rng, CLIENTS_TAG)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(clients_key, ids)
        groups = jnp.take(population.group, rows, mode="clip")
        scale = cohort_task_scale(train_data, rows, valid, axis)
        if axis is not None:
            # Replicated params are device-invariant: without pcast their gradient
            # would be psum'd over devices, mixing clients (STACK.md).
            server_state = jax.lax.pcast(server_state, axis, to="varying")
        acc, new_states, metrics = _run_clients(
            algorithm,
            plan.chunk_size,
            server_state,
            client_states,
            train_data,
            (rows, ids, keys, valid, groups, scale),
            axis,
            guard,
        )
        metrics = {**metrics, guard_lib.ID_KEY: ids}
        if axis is not None:
            acc = aggregator.merge_across(acc, axis)
        # Invalid slots (padding, ineligible clients) keep their clients' states.
        written = jnp.where(valid > 0, rows, jax.tree.leaves(train_data)[0].shape[0])
        client_states = jax.tree.map(
            lambda all_, new: all_.at[written].set(new, mode="drop"), client_states, new_states
        )
        return acc, client_states, metrics, valid

    run_cohort = cohort_step
    if num_devices > 1:
        # The federation and the client states are sharded over the clients axis:
        # each device holds `block` clients, and trains the ones it samples.
        acc_spec = P(AXIS) if aggregator.stacked else P()
        run_cohort = jax.shard_map(
            functools.partial(cohort_step, axis=AXIS),
            mesh=mesh,
            in_specs=(P(), P(AXIS), P(AXIS), P(AXIS), P()),
            out_specs=(acc_spec, P(AXIS), P(AXIS), P(AXIS)),
        )

    def round_fn(server_state, client_states, train_data, rounds_key, population=None):
        if population is None:
            population = cohort_lib.everyone(num_clients)
        # Inputs of num_clients rows are padded here (a copy per call); simulation.run
        # passes them padded to num_padded and sharded once (pad_clients).
        unpadded = jax.tree.leaves(train_data)[0].shape[0] != num_padded
        if unpadded:
            train_data, client_states, population = pad_clients(
                (train_data, client_states, population), num_padded
            )
        rng = jax.random.fold_in(rounds_key, server_state.round)
        acc, client_states, client_metrics, valid = run_cohort(
            server_state, client_states, train_data, population, rng
        )
        if unpadded:
            client_states = jax.tree.map(lambda x: x[:num_clients], client_states)
        acc, client_metrics, valid, guard_metrics = guard_lib.screen_round(
            guard, acc, client_metrics, valid, num_clients, aggregator.stacked
        )
        aggregate, agg_state = aggregator.finalize(
            acc, server_state.agg_state, jax.random.fold_in(rng, AGGREGATOR_TAG)
        )
        server_state, server_metrics = algorithm.server_apply(
            server_state._replace(agg_state=agg_state),
            aggregate,
            jax.random.fold_in(rng, SERVER_TAG),
        )
        metrics = cohort_metrics(client_metrics, valid, server_metrics)
        return RoundOutput(server_state, client_states, {**metrics, **guard_metrics})

    return jax.jit(round_fn, donate_argnums=(0, 1) if donate else ())


def padded_num_clients(num_clients: int, num_devices: int) -> int:
    """Clients rounded up to a multiple of the devices (each device holds a block)."""
    return -(-num_clients // num_devices) * num_devices


def pad_clients(tree_: t.PyTree, num_padded: int) -> t.PyTree:
    """Pads every leaf's leading (clients) axis with zeros / False to num_padded rows.

    Padding clients have no real example (mask False) and are not eligible, so they
    are never sampled and weigh 0.
    """

    def pad(x):
        extra = num_padded - x.shape[0]
        if not extra:
            return x
        widths = [(0, extra)] + [(0, 0)] * (x.ndim - 1)
        # Host arrays are padded on the host, so no device ever holds them whole.
        return np.pad(x, widths) if isinstance(x, np.ndarray) else jnp.pad(x, widths)

    return jax.tree.map(pad, tree_)


def cohort_metrics(client_metrics: t.Metrics, valid: jax.Array, server_metrics: t.Metrics):
    """The round's metrics from per-slot client metrics [k] and the server's.

    'loss/<task>' is sum(loss_sum/<task>) / sum(loss_count/<task>) over the valid
    slots: the mean over every labelled example of the cohort, not a mean of
    per-client means (a client without the task's labels adds nothing). Other
    client metrics are means weighted by each client's real examples.
    """
    n = client_metrics["num_examples"] * valid
    total = jnp.sum(n)
    out = {}
    for k, v in client_metrics.items():
        if k.startswith("loss_sum/"):
            task = k[len("loss_sum/") :]
            count = jnp.sum(client_metrics[f"loss_count/{task}"] * valid)
            out[f"loss/{task}"] = jnp.sum(v * valid) / jnp.maximum(count, 1.0)
        elif not k.startswith("loss_count/") and k != "num_examples":
            out[k] = jnp.sum(v * n) / jnp.maximum(total, 1.0)
    out["num_examples"] = total
    out["num_clients"] = jnp.sum(valid)
    out.update(server_metrics)
    return out
