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
r"""Speed of one federated round: the engine's executors vs a hand-written loop.

  python -m benchmarks.round_speed                       # W1 MLP, cohorts 64 and 256
  python -m benchmarks.round_speed --workloads=mlp,m3t --cohorts=64,256

Variants, all timed in this one process on the same data and the same pure
`client_update` (FedAvg, full participation):

  handwritten   (mlp only) W1 written by hand: a Python loop over clients of one
                jitted 5-step SGD scan on pre-cut batches, no masks or policies;
  default       build_round with what simulation.run picks when nothing is set
                (loop.engine_plan: every visible device, the backend's chunk size);
  loop          Python loop over clients of the engine's jitted client update,
                then a jitted aggregation and server step;
  engine/c1     build_round, chunk_size=1 (a compiled loop over clients);
  engine/c8     build_round, chunk_size=8 (vmap 8 clients, loop over chunks);
  engine/vmap   build_round, one vmap over the whole cohort;
  shard2/c1     build_round over 2 devices (jax.shard_map), chunk_size=1 per device;
  shard4/c1     the same over 4 devices;
  shard4/vmap   the same with one vmap per device (any shardN/cK or shardN/vmap works).

On CPU the devices are the host devices `import fedjax_m3t` makes (2 unless
XLA_FLAGS=--xla_force_host_platform_device_count=N says otherwise), sharing the
machine's cores; variants that need more devices than are visible are skipped.
Prints seconds per round, rounds/s, client updates/s, examples/s and each
variant's speed relative to the first variant timed (>1 = faster). Workloads:
'mlp' is STACK.md's W1 (MLP 784-200-200-10, 160 examples per client, 5 local SGD
steps of batch 32); 'm3t' a one-layer M3T transformer (width 32) on the synthetic
education federation, 48 examples a school.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import interface, m3t
from fedjax_m3t.simulation import loop as run_lib
from fedjax_m3t.simulation import round as round_lib

flags.DEFINE_list("workloads", ["mlp"], "Workloads: mlp (W1), m3t.")
flags.DEFINE_list(
    "cohorts",
    None,
    "Cohort sizes (= clients; full participation). Default: 64,256 for mlp; 32,128 for m3t.",
)
flags.DEFINE_integer("repeats", 5, "Timed rounds per variant (after one warm-up); median.")
VARIANTS = (
    "handwritten",
    "default",
    "loop",
    "engine/c1",
    "engine/c8",
    "engine/vmap",
    "shard2/c1",
    "shard2/c8",
    "shard4/c1",
    "shard4/c8",
    "shard4/vmap",
)
# The M3T transformer compiles for tens of seconds per variant: fewer, so that
# `--workloads=m3t` ends within 10 minutes on 2 cores.
M3T_VARIANTS = ("default", "loop", "engine/c8", "engine/vmap", "shard2/c1", "shard4/c1")
flags.DEFINE_list(
    "variants", None, f"Which variants to time (default: {VARIANTS}; for m3t {M3T_VARIANTS})."
)
FLAGS = flags.FLAGS


def mlp_model(num_features: int = 784, hidden: int = 200, classes: int = 10) -> interface.Model:
    """W1's MLP as a Model over 'tabular' inputs (params: backbone + heads/digit)."""
    spec = spec_lib.DataSpec(
        modalities=("tabular",),
        tasks=(spec_lib.TaskSpec(name="digit", kind="multiclass", num_classes=classes),),
        tabular_features=num_features,
    )

    def dense(key, n_in, n_out):
        return {
            "kernel": jax.random.normal(key, (n_in, n_out)) * np.sqrt(2.0 / n_in),
            "bias": jnp.zeros((n_out,)),
        }

    def init(rng):
        k1, k2, k3 = jax.random.split(rng, 3)
        return {
            "backbone": {
                "dense_0": dense(k1, num_features, hidden),
                "dense_1": dense(k2, hidden, hidden),
            },
            "heads": {"digit": dense(k3, hidden, classes)},
        }

    def predict(params, inputs):
        x = inputs["tabular"]
        for name in ("dense_0", "dense_1"):
            x = jax.nn.relu(
                x @ params["backbone"][name]["kernel"] + params["backbone"][name]["bias"]
            )
        head = params["heads"]["digit"]
        return {"digit": x @ head["kernel"] + head["bias"]}

    return interface.plain_model(spec, init, predict)


def mlp_data(num_clients: int, per_client: int = 160, seed: int = 0) -> dict:
    """Random W1-shaped client data (timing only): [num_clients, 160, ...]."""
    rng = np.random.default_rng(seed)
    n = (num_clients, per_client)
    return {
        "inputs": {"tabular": rng.random(n + (784,), dtype=np.float32)},
        "present": {"tabular": np.ones(n, bool)},
        "labels": {"digit": rng.integers(0, 10, n).astype(np.int32)},
        "label_mask": {"digit": np.ones(n, bool)},
        "mask": np.ones(n, bool),
    }


def workload(name: str, num_clients: int):
    """(model, algorithm, stacked train data, examples per client update)."""
    local = local_training.LocalTrainingConfig(local_steps=5, batch_size=32)
    if name == "mlp":
        model, data = mlp_model(), mlp_data(num_clients)
        client_opt = optax.sgd(0.1)
    elif name == "m3t":
        # 48 examples a school (about 36 train) and one transformer layer: cohorts of 64
        # and 256 then fit in about 2 GB and the workload ends within 10 minutes on 2 cores.
        fed = synthetic.make_education_federation(
            synthetic.SyntheticConfig(num_clients=num_clients, mean_examples=48, quantity_skew=0.0)
        )
        config = m3t.M3TConfig(width=32, depth=1, num_heads=4, mlp_dim=64)
        model, data = m3t.build_m3t_model(fed.spec, config), fed.train
        client_opt = optax.adam(3e-3)
    else:
        raise app.UsageError(f"Unknown workload {name!r}; use mlp or m3t.")
    algorithm = fed_opt.fed_opt(
        model, client_optimizer=client_opt, server_optimizer=optax.sgd(1.0), local=local
    )
    return model, algorithm, data, local.local_steps * local.batch_size


def loop_round(algorithm, num_clients):
    """The hand-written baseline: a Python loop over the jitted client update."""
    client_update = jax.jit(algorithm.client_update)
    add = jax.jit(
        lambda acc, out: algorithm.aggregator.accumulate(
            acc,
            jax.tree.map(lambda x: x[None], out.delta),
            jax.tree.map(lambda w: w[None], out.weight),
        )
    )

    def finish_fn(state, acc, key):
        aggregate, agg_state = algorithm.aggregator.finalize(acc, state.agg_state, key)
        return algorithm.server_apply(state._replace(agg_state=agg_state), aggregate, key)

    finish = jax.jit(finish_fn)

    def run(state, client_states, per_client_data, keys):
        acc = None
        for c in range(num_clients):
            out = client_update(
                state.params,
                jax.tree.map(lambda x, c=c: x[c], client_states),
                per_client_data[c],
                base.make_context(keys[c], c),
            )
            if acc is None:
                acc = algorithm.aggregator.init(out.delta)
            acc = add(acc, out)
        return finish(state, acc, keys[0])[0]

    return run


def handwritten_round(model, num_clients: int, learning_rate: float = 0.1):
    """W1 as one would write it by hand: plain SGD on fixed batches, no masks, no policy.

    Each client's 160 examples are cut into its 5 batches of 32 once, outside the
    timing; the round is a Python loop of one jitted client step and a running sum.
    """

    def loss(params, x, y):
        logits = model.apply(params, {"inputs": {"tabular": x}})["digit"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def client(params, xs, ys):
        def step(p, batch):
            grads = jax.grad(loss)(p, *batch)
            return jax.tree.map(lambda w, g: w - learning_rate * g, p, grads), None

        trained, _ = jax.lax.scan(step, params, (xs, ys))
        return jax.tree.map(jnp.subtract, params, trained)

    add = jax.jit(lambda acc, delta: jax.tree.map(jnp.add, acc, delta))
    finish = jax.jit(lambda p, acc: jax.tree.map(lambda w, d: w - d / num_clients, p, acc))

    def run(params, batches):
        acc = jax.tree.map(jnp.zeros_like, params)
        for xs, ys in batches:
            acc = add(acc, client(params, xs, ys))
        return finish(params, acc)

    return run


def _build_variant(variant, name, model, algorithm, data, state, client_states, rounds_key):
    """(fn, args) of one variant, or None if it does not apply to the workload."""
    num_clients = data["mask"].shape[0]
    if variant == "handwritten":
        if name != "mlp":
            return None
        x, y = data["inputs"]["tabular"], data["labels"]["digit"]
        batches = [(x[c].reshape(5, 32, -1), y[c].reshape(5, 32)) for c in range(num_clients)]
        return handwritten_round(model, num_clients), (state.params, batches)
    if variant == "loop":
        per_client = [jax.tree.map(lambda x, c=c: x[c], data) for c in range(num_clients)]
        keys = [jax.random.fold_in(rounds_key, c) for c in range(num_clients)]
        return loop_round(algorithm, num_clients), (state, client_states, per_client, keys)
    if variant == "default":
        # What a user who sets nothing gets: simulation.run on every visible device
        # (on CPU, the host devices `import fedjax_m3t` made) with the backend's chunk.
        num_devices, chunk, _ = run_lib.engine_plan(
            run_lib.SimulationConfig(cohort_size=num_clients)
        )
        where = f"shard{num_devices}" if num_devices > 1 else "engine"
    else:
        where, chunk = variant.split("/")
        chunk = num_clients if chunk == "vmap" else int(chunk[1:])
    wanted = int(where[5:]) if where.startswith("shard") else 1
    if wanted > len(jax.local_devices()):
        print(
            f"{variant}: skipped, {len(jax.local_devices())} devices visible (set XLA_FLAGS="
            f"--xla_force_host_platform_device_count={wanted} to time it)",
            flush=True,
        )
        return None
    mesh = round_lib.make_client_mesh(wanted) if wanted > 1 else None
    fn = round_lib.build_round(
        algorithm, num_clients=num_clients, cohort_size=num_clients, chunk_size=chunk, mesh=mesh
    )
    args = (state, client_states, data, rounds_key)
    # Placed once, as simulation.run does: timed calls move no data.
    args = jax.device_put(args, NamedSharding(mesh, P()) if mesh is not None else None)
    return fn, args


def bench(name: str, num_clients: int, variants, repeats: int) -> list[tuple[str, float]]:
    """Times every variant; repeats are interleaved (variant by variant, round by round)
    so that drifts of the machine's speed hit all variants alike; reports medians."""
    model, algorithm, data, examples_per_update = workload(name, num_clients)
    state, client_states = run_lib.fresh_state(algorithm, model, num_clients, seed=0)
    rounds_key = jax.random.key(1)
    built = {}
    for variant in variants:
        made = _build_variant(
            variant, name, model, algorithm, data, state, client_states, rounds_key
        )
        if made is not None:
            fn, args = made
            jax.block_until_ready(fn(*args))  # Compile and warm up.
            built[variant] = (fn, args)
    times = {v: [] for v in built}
    for _ in range(repeats):
        for variant, (fn, args) in built.items():
            began = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[variant].append(time.perf_counter() - began)
    results = [(v, float(np.median(t))) for v, t in times.items()]
    base_name, base = results[0]
    for variant, seconds in results:
        print(
            f"{name:<4} cohort {num_clients:>4}  {variant:<12} {seconds * 1e3:9.1f} ms/round  "
            f"{1 / seconds:7.2f} rounds/s  {num_clients / seconds:8.1f} clients/s  "
            f"{num_clients * examples_per_update / seconds:9.0f} examples/s  "
            f"x{base / seconds:5.2f} vs {base_name}",
            flush=True,
        )
    return results


def main(argv):
    del argv  # Unused.
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} devices, "
        f"{os.cpu_count()} CPU cores",
        flush=True,
    )
    for name in FLAGS.workloads:
        for cohort in FLAGS.cohorts or (("32", "128") if name == "m3t" else ("64", "256")):
            variants = FLAGS.variants or (M3T_VARIANTS if name == "m3t" else VARIANTS)
            bench(name, int(cohort), variants, FLAGS.repeats)


if __name__ == "__main__":
    app.run(main)
