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
"""The simulation loop: rounds, progress, metrics, checkpoints, resume, evaluation.

`run` is what experiment binaries and notebooks call. It owns no randomness of
its own: params come from fold_in(key(seed), 0) and rounds from
fold_in(key(seed), 1) (see simulation/round.py), so a run resumed from its
checkpoint equals an uninterrupted one.
"""

import dataclasses
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.models import interface
from fedjax_m3t.simulation import checkpoint as checkpoint_lib
from fedjax_m3t.simulation import evaluation
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import round as round_lib

PARAMS_TAG, ROUNDS_TAG = 0, 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """How to run the rounds.

    Attributes:
      rounds: total rounds (a resumed run continues up to this number).
      cohort_size: clients per round.
      chunk_size: clients vmapped at once per device; None picks the backend's fastest
        (round.default_chunk_size: on CPU 8, or 1 when sharded; on accelerators all).
      num_devices: devices to shard the cohort over (None: all local devices).
      seed: the only source of randomness.
      workdir: where metrics.jsonl and checkpoints go (None: nothing written).
      checkpoint_every: save every this many rounds (and at the end); 0 = only at the end.
      eval_every: evaluate the global model on the test split every this many rounds
        and log it (0 = only at the end).
      tensorboard: also write TensorBoard events to <workdir>/tb.
      verbose: print progress lines.
    """

    rounds: int = 10
    cohort_size: int = 8
    chunk_size: int | None = None
    num_devices: int | None = 1
    seed: int = 0
    workdir: str | None = None
    checkpoint_every: int = 5
    eval_every: int = 0
    tensorboard: bool = False
    verbose: bool = True

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}.")
        if self.checkpoint_every < 0 or self.eval_every < 0:
            raise ValueError("checkpoint_every and eval_every must be >= 0.")


class SimulationResult(NamedTuple):
    """What a run ends with.

    Attributes:
      server_state: the final server state.
      client_states: every client's personal leaves, [num_clients, ...].
      history: the per-round metric records (as in metrics.jsonl).
      global_report: final test metrics of the global model.
      personal_report: final test metrics of each client's view (global + its local leaves).
    """

    server_state: base.ServerState
    client_states: t.PyTree
    history: list
    global_report: evaluation.Report
    personal_report: evaluation.Report


def initial_state(
    algorithm: base.FederatedAlgorithm, model: interface.Model, num_clients: int, seed: int
) -> tuple[base.ServerState, t.PyTree]:
    """The round-0 server state and stacked client states [num_clients, ...]."""
    params = model.init(jax.random.fold_in(jax.random.key(seed), PARAMS_TAG))
    state = algorithm.init(params)
    one = algorithm.init_client_state(params)
    clients = jax.tree.map(lambda x: jnp.array(jnp.broadcast_to(x, (num_clients,) + x.shape)), one)
    return state, clients


def run(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    federation: federation_lib.Federation,
    config: SimulationConfig,
    *,
    fingerprint: dict | None = None,
) -> SimulationResult:
    """Runs (or resumes) a federated simulation.

    Args:
      algorithm: the federated algorithm.
      model: the model the algorithm was built for.
      federation: the clients' data.
      config: rounds, cohort, devices, seed, outputs.
      fingerprint: JSON-able settings saved with checkpoints; resuming with different
        settings raises instead of silently mixing two runs.

    Returns:
      The final state, per-round history and final evaluation reports.

    Raises:
      ValueError: for a cohort larger than the federation, or a checkpoint whose
        fingerprint differs from this run's.
    """
    num_clients = federation.num_clients
    mesh = None
    num_devices = config.num_devices or len(jax.local_devices())
    if num_devices > 1:
        mesh = round_lib.make_client_mesh(num_devices)
    round_fn = round_lib.build_round(
        algorithm,
        num_clients=num_clients,
        cohort_size=config.cohort_size,
        chunk_size=config.chunk_size or round_lib.default_chunk_size(num_devices),
        mesh=mesh,
        donate=True,
    )
    state, client_states = initial_state(algorithm, model, num_clients, config.seed)
    state, client_states, start = _maybe_resume(config, fingerprint, state, client_states)
    rounds_key = jax.random.fold_in(jax.random.key(config.seed), ROUNDS_TAG)
    train, test = federation.train, federation.test
    if mesh is not None:
        replicated = NamedSharding(mesh, P())
        train, test, state, client_states, rounds_key = jax.device_put(
            (train, test, state, client_states, rounds_key), replicated
        )
    else:
        # Placed once: periodic evaluations then move no data host->device either.
        train, test = jax.device_put((train, test))
    writer = logging_lib.MetricsWriter(
        config.workdir, tensorboard=config.tensorboard, keep_until=start
    )
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config)) if config.workdir else None
    say = logging_lib.log if config.verbose else (lambda _: None)
    if start:
        say(f"Resumed from the checkpoint of round {start} in {config.workdir}.")
    history = logging_lib.read_metrics(config.workdir)[:start] if start else []
    round_num = start
    try:
        for round_num in range(start + 1, config.rounds + 1):
            began = time.perf_counter()
            # Rounds move no data host->device: everything is already placed.
            with jax.transfer_guard_host_to_device("disallow"):
                state, client_states, metrics = round_fn(state, client_states, train, rounds_key)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            metrics["seconds"] = time.perf_counter() - began
            if config.eval_every and round_num % config.eval_every == 0:
                report = evaluation.evaluate(model, state.params, test)
                metrics.update(_flatten_report(report))
            writer.write(round_num, metrics)
            history.append({"round": round_num, **metrics})
            say(logging_lib.progress_line(round_num, config.rounds, metrics, metrics["seconds"]))
            if (
                checkpointer
                and config.checkpoint_every
                and round_num % config.checkpoint_every == 0
            ):
                _save(checkpointer, round_num, state, client_states, fingerprint)
    except KeyboardInterrupt:
        if checkpointer and round_num > start:
            last = int(jax.device_get(state.round))
            _save(checkpointer, last, state, client_states, fingerprint)
            say(f"Interrupted: saved round {last}; rerun with the same workdir to resume.")
        raise
    finally:
        writer.close()
    if checkpointer:
        if checkpointer.latest_round() != round_num:
            _save(checkpointer, round_num, state, client_states, fingerprint)
        checkpointer.close()
    global_report = evaluation.evaluate(model, state.params, test)
    personal_report = evaluation.evaluate(
        model,
        state.params,
        test,
        policy=algorithm.policy,
        client_states=client_states,
    )
    return SimulationResult(state, client_states, history, global_report, personal_report)


def _ckpt_dir(config: SimulationConfig) -> str:
    return os.path.join(config.workdir, "checkpoints")


def _save(checkpointer, round_num, state, client_states, fingerprint):
    meta = {"round": int(round_num), "fingerprint": fingerprint or {}}
    checkpointer.save(round_num, {"server_state": state, "client_states": client_states}, meta)


def _maybe_resume(config, fingerprint, state, client_states):
    if not config.workdir:
        return state, client_states, 0
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config))
    try:
        if checkpointer.latest_round() is None:
            return state, client_states, 0
        template = {"server_state": state, "client_states": client_states}
        restored, meta = checkpointer.restore(template)
    finally:
        checkpointer.close()
    saved = meta.get("fingerprint", {})
    if fingerprint is not None and saved != fingerprint:
        changed = sorted(
            k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
        )
        raise ValueError(
            f"The checkpoint in {config.workdir} was written with different settings "
            f"({', '.join(changed)}). Use a new --workdir, or rerun with the same settings "
            "to resume."
        )
    return restored["server_state"], restored["client_states"], int(meta["round"])


def _flatten_report(report: evaluation.Report) -> dict:
    return {
        f"test/{task}/{name}": value
        for task, values in report.pooled.items()
        for name, value in values.items()
        if name != "count"
    }
