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

The host never waits on a round it has just dispatched: a round's metrics are
fetched while the next one runs (one round late), and the loop synchronises
only to evaluate, checkpoint, call hooks, or finish. Ctrl-C is deferred to the
end of the round in flight (its buffers are donated to the next one), so the
state saved on interrupt is always a whole round's; a second Ctrl-C stops at once.
"""

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fedjax_m3t import evaluation, seeding
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.models import interface
from fedjax_m3t.simulation import checkpoint as checkpoint_lib
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import round as round_lib


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """How to run the rounds.

    Attributes:
      rounds: total rounds (a resumed run, or one from an initial state of round r,
        continues up to this number).
      cohort_size: clients per round.
      chunk_size: clients vmapped at once per device (>= 1); None picks the backend's
        fastest (round.default_chunk_size: on CPU 8, or 1 when sharded; on
        accelerators the whole per-device cohort).
      num_devices: devices to shard the cohort over (None: all local devices).
      seed: the only source of randomness.
      workdir: where metrics.jsonl and checkpoints go (None: nothing written).
      checkpoint_every: save every this many rounds (and at the end); 0 = only at the end.
      eval_every: evaluate on the test split every this many rounds and log it, the
        global model and, where modules are local, each client's personalised view
        (0 = only at the end).
      tensorboard: also write TensorBoard events to <workdir>/tb.
      verbose: print progress lines.
    """

    rounds: int = 10
    cohort_size: int = 8
    chunk_size: int | None = None
    num_devices: int | None = None
    seed: int = 0
    workdir: str | None = None
    checkpoint_every: int = 5
    eval_every: int = 0
    tensorboard: bool = False
    verbose: bool = True

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}.")
        if self.cohort_size < 1:
            raise ValueError(f"cohort_size must be >= 1, got {self.cohort_size}.")
        if self.checkpoint_every < 0 or self.eval_every < 0:
            raise ValueError("checkpoint_every and eval_every must be >= 0.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(
                f"chunk_size must be >= 1, or None for the backend's default; got "
                f"{self.chunk_size}."
            )
        if self.num_devices is not None and self.num_devices < 1:
            raise ValueError(
                f"num_devices must be >= 1, or None for all devices; got {self.num_devices}."
            )


class SimulationResult(NamedTuple):
    """What a run ends with.

    Attributes:
      server_state: the final server state.
      client_states: every client's personal leaves, [num_clients, ...].
      history: the per-round metric records (as in metrics.jsonl).
      global_report: final test metrics of the global model.
      personal_report: final test metrics of each client's view (global + its local
        leaves); the same object as global_report when no module is local.
      global_test_report: the global model on `federation.global_test` (its
        `pooled` metrics; one 'client'), or None when the federation has none.
    """

    server_state: base.ServerState
    client_states: t.PyTree
    history: list
    global_report: evaluation.Report
    personal_report: evaluation.Report
    global_test_report: evaluation.Report | None = None


class RoundInfo(NamedTuple):
    """What a hook sees after a round.

    Attributes:
      round: the round just completed.
      server_state, client_states: the state after it. Its buffers are donated to
        the next round: copy (jax.device_get) anything a hook keeps.
      metrics: the round's host metrics record.
    """

    round: int
    server_state: base.ServerState
    client_states: t.PyTree
    metrics: dict


Hook = Callable[[RoundInfo], None]


def fresh_state(
    algorithm: base.FederatedAlgorithm, model: interface.Model, num_clients: int, seed: int
) -> tuple[base.ServerState, t.PyTree]:
    """The round-0 server state and stacked client states [num_clients, ...]."""
    params = model.init(seeding.params_key(seed))
    state = algorithm.init(params)
    one = algorithm.init_client_state(params)
    clients = jax.tree.map(lambda x: jnp.array(jnp.broadcast_to(x, (num_clients,) + x.shape)), one)
    return state, clients


def engine_plan(config: SimulationConfig) -> tuple[int, int, str]:
    """(devices, chunk size, backend) a run uses: config values, else the defaults."""
    backend = jax.default_backend()
    num_devices = config.num_devices or len(jax.local_devices())
    chunk = config.chunk_size or round_lib.default_chunk_size(config.cohort_size, num_devices)
    return num_devices, chunk, backend


def run(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    federation: federation_lib.Federation,
    config: SimulationConfig,
    *,
    fingerprint: dict | None = None,
    initial_state: tuple[base.ServerState, t.PyTree] | None = None,
    hooks: Sequence[Hook] = (),
    population: cohort_lib.Population | None = None,
    extra_metrics: Callable[[int], dict] | None = None,
) -> SimulationResult:
    """Runs (or resumes) a federated simulation.

    Args:
      algorithm: the federated algorithm.
      model: the model the algorithm was built for.
      federation: the clients' data.
      config: rounds, cohort, devices, seed, outputs.
      fingerprint: JSON-able settings saved with checkpoints; resuming with different
        settings raises instead of silently mixing two runs.
      initial_state: (server state, client states [num_clients, ...]) to start from
        instead of a fresh init (another run's result, a state edited for unlearning
        or continual learning); its round counter is kept. A checkpoint in the
        workdir still takes precedence (that is a resume).
      hooks: called after every round with a RoundInfo (each forces the host to
        wait for that round).
      population: which clients may be sampled and their groups (cohort.Population;
        None: everyone, in the groups of `federation.group_ids()`).
      extra_metrics: round number -> host-side metrics merged into that round's
        record before it is written (e.g. the privacy spent, from an accountant);
        it needs no device sync.

    Returns:
      The final state, per-round history and final evaluation reports.

    Raises:
      ValueError: for a cohort larger than the federation, or a checkpoint whose
        fingerprint differs from this run's.
    """
    num_clients = federation.num_clients
    num_devices, chunk, backend = engine_plan(config)
    mesh = round_lib.make_client_mesh(num_devices) if num_devices > 1 else None
    round_fn = round_lib.build_round(
        algorithm,
        num_clients=num_clients,
        cohort_size=config.cohort_size,
        chunk_size=chunk,
        mesh=mesh,
        donate=True,
    )
    say = logging_lib.log if config.verbose else (lambda _: None)
    say(
        f"Engine: {num_devices} {backend} device(s), chunks of {chunk} client(s) per device"
        + (
            " (defaults for this backend)."
            if not (config.num_devices and config.chunk_size)
            else "."
        )
    )
    if initial_state is None:
        state, client_states = fresh_state(algorithm, model, num_clients, config.seed)
    else:
        state, client_states = initial_state
    state, client_states, resumed = _maybe_resume(config, fingerprint, state, client_states)
    start = resumed or int(jax.device_get(state.round))
    rounds_key = jax.random.fold_in(jax.random.key(config.seed), seeding.ROUNDS_TAG)
    if population is None:
        population = cohort_lib.Population(
            eligible=jnp.ones((num_clients,), bool), group=jnp.asarray(federation.group_ids())
        )
    global_test = None
    if federation.global_test is not None:  # One set: a leading 'client' axis of 1.
        global_test = jax.device_put(jax.tree.map(lambda x: x[None], federation.global_test))
    # Placed once: rounds and periodic evaluations then move no data host->device.
    # With several devices the federation, the client states and the population are
    # padded to whole blocks and sharded over the clients axis (each device holds
    # its block of clients); the server state and keys are replicated.
    per_client = (federation.train, federation.test, client_states, population)
    train, test, states, population = place_clients(per_client, num_clients, mesh)
    state, rounds_key = jax.device_put(
        (state, rounds_key), NamedSharding(mesh, P()) if mesh is not None else None
    )
    say(
        f"Federation data: {device_megabytes(train) + device_megabytes(test):.1f} MB "
        f"per device ({num_devices} device(s) hold {num_clients} clients)."
    )

    def unpad(tree_):
        return jax.tree.map(lambda x: x[:num_clients], tree_) if mesh is not None else tree_

    evaluator = evaluation.Evaluator(model, algorithm.personalize)
    has_local = bool(jax.tree.leaves(states))
    writer = logging_lib.MetricsWriter(
        config.workdir, tensorboard=config.tensorboard, keep_until=start
    )
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config)) if config.workdir else None
    if resumed:
        say(f"Resumed from the checkpoint of round {start} in {config.workdir}.")
    elif start:
        say(f"Starting from the given state of round {start}.")
    history = logging_lib.read_metrics(config.workdir)[:start] if resumed else []
    last_time = [time.perf_counter()]

    def record(round_num, device_metrics):
        metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        now = time.perf_counter()
        metrics["seconds"] = now - last_time[0]
        last_time[0] = now
        return metrics

    def finish(round_num, metrics):
        if extra_metrics is not None:
            metrics.update(extra_metrics(round_num))
        if config.eval_every and round_num % config.eval_every == 0:
            metrics.update(_report_metrics("test", evaluator, state.params, test, federation))
            if has_local:
                metrics.update(
                    _report_metrics("personal", evaluator, state.params, test, federation, states)
                )
            if global_test is not None:
                report = evaluator.evaluate(state.params, global_test)
                metrics.update(_flat("global_test", report))
        writer.write(round_num, metrics)
        history.append({"round": round_num, **metrics})
        say(logging_lib.progress_line(round_num, config.rounds, metrics, metrics["seconds"]))
        for hook in hooks:
            hook(RoundInfo(round_num, state, unpad(states), metrics))

    def needs_sync(round_num):
        return (
            bool(hooks)
            or round_num == config.rounds
            or (config.eval_every and round_num % config.eval_every == 0)
            or (
                checkpointer
                and config.checkpoint_every
                and round_num % config.checkpoint_every == 0
            )
        )

    pending = None  # (round, device metrics) of the round whose metrics are not yet read.
    done = start
    interrupt = _DeferredInterrupt()
    try:
        with interrupt:
            for round_num in range(start + 1, config.rounds + 1):
                # Rounds move no data host->device: everything is already placed.
                with jax.transfer_guard_host_to_device("disallow"):
                    state, states, metrics = round_fn(state, states, train, rounds_key, population)
                done = round_num
                if pending is not None:  # Read while this round runs.
                    finish(pending[0], record(*pending))
                pending = (round_num, metrics)
                if needs_sync(round_num) or interrupt.hit:
                    finish(round_num, record(*pending))
                    pending = None
                    if (
                        checkpointer
                        and config.checkpoint_every
                        and round_num % config.checkpoint_every == 0
                    ):
                        _save(checkpointer, round_num, state, unpad(states), fingerprint)
                if interrupt.hit:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        _save_on_interrupt(checkpointer, start, done, state, states, unpad, fingerprint, say)
        writer.close()
        raise
    writer.close()
    if checkpointer:
        if checkpointer.latest_round() != done:
            _save(checkpointer, done, state, unpad(states), fingerprint)
        checkpointer.close()
    global_report = _final(evaluator, state.params, test, federation)
    personal_report = global_report
    if has_local:
        personal_report = _final(evaluator, state.params, test, federation, states)
    global_test_report = None
    if global_test is not None:
        global_test_report = evaluator.evaluate(state.params, global_test)
    return SimulationResult(
        state, unpad(states), history, global_report, personal_report, global_test_report
    )


def place_clients(
    per_client: t.PyTree, num_clients: int, mesh: jax.sharding.Mesh | None
) -> t.PyTree:
    """Puts per-client arrays (leaves [num_clients, ...]) on the devices, once.

    With a mesh they are padded to whole blocks (round.pad_clients) and sharded
    over its clients axis, so each device holds only its block; else they go to
    the default device.
    """
    if mesh is None:
        return jax.device_put(per_client)
    num_padded = round_lib.padded_num_clients(num_clients, mesh.size)
    per_client = round_lib.pad_clients(per_client, num_padded)
    return jax.device_put(per_client, NamedSharding(mesh, P(round_lib.AXIS)))


def device_megabytes(tree_) -> float:
    """MB of `tree_`'s arrays held on the first local device (its shards only)."""
    first = jax.local_devices()[0]
    total = 0
    for x in jax.tree.leaves(tree_):
        total += sum(s.data.nbytes for s in x.addressable_shards if s.device == first)
    return total / 2**20


def _final(evaluator, params, test, federation, client_states=None) -> evaluation.Report:
    """A report scored against the host copy of the labels (no device->host data copy).

    `test` and `client_states` may hold padding clients past the federation's (sharded
    runs): their predictions are dropped.
    """
    predictions = evaluator.predict(params, test, client_states)
    predictions = jax.tree.map(lambda p: p[: federation.num_clients], predictions)
    return evaluation.score(evaluator.model, predictions, federation.test)


def _report_metrics(prefix, evaluator, params, test, federation, client_states=None) -> dict:
    return _flat(prefix, _final(evaluator, params, test, federation, client_states))


def _flat(prefix: str, report: evaluation.Report) -> dict:
    """{'<prefix>/<task>/<metric>': value} of a report's pooled metrics."""
    return {
        f"{prefix}/{task}/{name}": value
        for task, values in report.pooled.items()
        for name, value in values.items()
        if name != "count"
    }


class _DeferredInterrupt:
    """Turns the first SIGINT into a flag the loop checks between rounds.

    Only in the main thread (where Python delivers signals); elsewhere a no-op.
    """

    def __init__(self):
        self.hit = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.hit:  # Second Ctrl-C: stop now.
            raise KeyboardInterrupt
        self.hit = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _alive(tree_) -> bool:
    return not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(tree_))


def _save_on_interrupt(checkpointer, start, done, state, states, unpad, fingerprint, say):
    if not checkpointer:
        return
    if done > start and _alive((state, states)):
        last = int(jax.device_get(state.round))
        _save(checkpointer, last, state, unpad(states), fingerprint)
        say(f"Interrupted: saved round {last}; rerun with the same workdir to resume.")
    else:
        kept = checkpointer.latest_round()
        say(f"Interrupted; the last checkpoint is round {kept}: rerun with the same workdir.")
    checkpointer.close()


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
