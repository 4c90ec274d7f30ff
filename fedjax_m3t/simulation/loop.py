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

A workdir is held by one run at a time (simulation/workdir.py), and a checkpoint
is continued only by the run that wrote it: its identity (simulation/identity.py:
algorithm, model, federation, seed, cohort) and the caller's `fingerprint` must
match, unless `SimulationConfig.resume='force'`.
"""

import dataclasses
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fedjax_m3t import evaluation, seeding
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import guard as guard_lib
from fedjax_m3t.algorithms import base
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.models import interface
from fedjax_m3t.simulation import checkpoint as checkpoint_lib
from fedjax_m3t.simulation import cohort as cohort_lib
from fedjax_m3t.simulation import distributed
from fedjax_m3t.simulation import identity as identity_lib
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import round as round_lib
from fedjax_m3t.simulation import workdir as workdir_lib

RESUME = ("auto", "force")


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
      resume: 'auto' continues a workdir's checkpoint only when it was written by
        this run (same identity and fingerprint; else ResumeError); 'force'
        continues it anyway, saying what differs (its state must still fit).
      guard_max_norm_ratio: also reject client updates whose norm exceeds this many
        times the cohort's median norm (aggregation/guard.py; None: only non-finite
        updates are rejected).
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
    resume: str = "auto"
    guard_max_norm_ratio: float | None = None

    def __post_init__(self):
        if self.resume not in RESUME:
            raise ValueError(f"resume must be one of {RESUME}, got {self.resume!r}.")
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


Hook = Callable[[RoundInfo], jax.Array | None]
"""Called after a round. It may return a bool [num_clients] array: the eligible mask
(cohort.Population.eligible) from the next round on, e.g. to stop clients whose
privacy budget is spent (privacy/policies.py); None keeps the mask."""


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
    visible = jax.device_count()  # Every process's devices.
    if config.num_devices and config.num_devices > visible:
        raise ValueError(
            f"num_devices={config.num_devices} exceeds the {visible} visible {backend} "
            "device(s); use at most that many (on CPU, XLA_FLAGS="
            "--xla_force_host_platform_device_count=N before JAX starts gives N)."
        )
    num_devices = config.num_devices or visible
    chunk = config.chunk_size or round_lib.default_chunk_size(config.cohort_size, num_devices)
    return num_devices, chunk, backend


def _holding_workdir(function):
    """Runs `function(..., config, ...)` holding config.workdir's lock (if it has one)."""

    @functools.wraps(function)
    def wrapped(algorithm, model, federation, config, **kwargs):
        # Several processes (experiments.launch) share one workdir: the first holds it.
        if not config.workdir or jax.process_index() != 0:
            return function(algorithm, model, federation, config, **kwargs)
        say = logging_lib.log if config.verbose else (lambda _: None)
        with workdir_lib.lock(config.workdir, say=say):
            return function(algorithm, model, federation, config, **kwargs)

    return wrapped


@_holding_workdir
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
        wait for that round); one that returns a bool [num_clients] mask sets which
        clients are eligible from the next round on (no recompilation).
      population: which clients may be sampled and their groups (cohort.Population;
        None: everyone, in the groups of `federation.group_ids()`).
      extra_metrics: round number -> host-side metrics merged into that round's
        record before it is written (e.g. the privacy spent, from an accountant);
        it needs no device sync.

    Returns:
      The final state, per-round history and final evaluation reports.

    Raises:
      ValueError: for a cohort larger than the federation.
      checkpoint.ResumeError (a ValueError): for a checkpoint written by another
        run (identity or fingerprint differ; see SimulationConfig.resume), one past
        `config.rounds`, or checkpoints none of which reads back.
      workdir.WorkdirError: if another run holds the workdir, or it is not writable.
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
        guard=guard_lib.Guard(max_norm_ratio=config.guard_max_norm_ratio),
    )
    leader = jax.process_index() == 0  # Only process 0 prints and writes metrics.
    say = logging_lib.log if config.verbose and leader else (lambda _: None)
    show = logging_lib.show_progress if config.verbose and leader else (lambda *_, **__: None)
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
    identity = identity_lib.run_identity(
        algorithm, model, federation, seed=config.seed, cohort_size=config.cohort_size
    )
    state, client_states, resumed = _maybe_resume(
        config, fingerprint, identity, state, client_states, say
    )
    # Saved with every checkpoint; the engine is recorded, not compared (it may change).
    meta = {
        "fingerprint": fingerprint or {},
        "identity": identity,
        "engine": {"num_devices": num_devices, "chunk_size": chunk, "backend": backend},
    }
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
    populations = [population]  # Hooks may replace its eligible mask between rounds.
    state, rounds_key = distributed.put(
        (state, rounds_key), NamedSharding(mesh, P()) if mesh is not None else None
    )
    say(
        f"Federation data: {device_megabytes(train) + device_megabytes(test):.1f} MB "
        f"per device ({num_devices} device(s) hold {num_clients} clients)."
    )

    def unpad(tree_):
        return jax.tree.map(lambda x: x[:num_clients], tree_) if mesh is not None else tree_

    evaluator = evaluation.Evaluator(model, algorithm.personalize)
    personal = _personal_view(algorithm, model, evaluator, config.seed, train, population, chunk)
    has_local = bool(jax.tree.leaves(states)) or algorithm.adapt is not None
    writer = logging_lib.MetricsWriter(
        config.workdir if leader else None,
        tensorboard=config.tensorboard and leader,
        keep_until=start,
    )
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config)) if config.workdir else None
    if resumed:
        say(f"Resumed from the checkpoint of round {start} in {config.workdir}.")
    elif start:
        say(f"Starting from the given state of round {start}.")
    history = []
    if resumed:
        history = [r for r in logging_lib.read_metrics(config.workdir) if r["round"] <= start]
    last_time = [time.perf_counter()]

    def record(round_num, device_metrics):
        host = guard_lib.per_client_metrics(jax.device_get(device_metrics), federation.client_names)
        metrics = {k: float(v) for k, v in host.items()}
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
                view, view_states = personal(state, states)
                metrics.update(
                    _report_metrics("personal", view, state.params, test, federation, view_states)
                )
            if global_test is not None:
                report = evaluator.evaluate(state.params, global_test)
                metrics.update(_flat("global_test", report))
        writer.write(round_num, metrics)
        history.append({"round": round_num, **metrics})
        # On a terminal a bar redrawn in place; evaluation rounds and the last one stay.
        evaluated = bool(config.eval_every and round_num % config.eval_every == 0)
        show(progress(round_num, metrics), round_num, config.rounds,
             keep=evaluated or round_num == config.rounds)  # fmt: skip
        for hook in hooks:
            eligible = hook(RoundInfo(round_num, state, unpad(states), metrics))
            if eligible is not None:
                placed = place_clients(jnp.asarray(eligible, bool), num_clients, mesh)
                populations[0] = populations[0]._replace(eligible=placed)

    began = time.perf_counter()

    def progress(round_num, metrics):
        # ETA from the rounds after the first, which also compiled.
        elapsed = time.perf_counter() - began
        done_here = round_num - start
        later = elapsed - history[-done_here]["seconds"] if done_here > 1 else None
        per_round = later / (done_here - 1) if later is not None else metrics["seconds"]
        return logging_lib.progress_line(
            round_num, config.rounds, metrics, metrics["seconds"],
            elapsed=elapsed, eta=per_round * (config.rounds - round_num),
            compiling=done_here == 1,
        )  # fmt: skip

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
                    state, states, metrics = round_fn(
                        state, states, train, rounds_key, populations[0]
                    )
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
                        _save(checkpointer, round_num, state, unpad(states), meta)
                if interrupt.hit:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        logging_lib.end_progress()
        if pending is not None and _alive(pending[1]):  # Keep the record of the round saved.
            writer.write(pending[0], record(*pending))
        _save_on_interrupt(checkpointer, start, done, state, states, unpad, meta, say)
        writer.close()
        raise
    writer.close()
    if checkpointer:
        if checkpointer.latest_round() != done:
            _save(checkpointer, done, state, unpad(states), meta)
        checkpointer.close()
    global_report = _final(evaluator, state.params, test, federation)
    personal_report = global_report
    if has_local:
        view, view_states = personal(state, states)
        personal_report = _final(view, state.params, test, federation, view_states)
    global_test_report = None
    if global_test is not None:
        global_test_report = evaluator.evaluate(state.params, global_test)
    return SimulationResult(
        state, unpad(states), history, global_report, personal_report, global_test_report
    )


def check_resume(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    federation: federation_lib.Federation,
    config: SimulationConfig,
    *,
    fingerprint: dict | None = None,
) -> int | None:
    """The round `run` would resume from, checked without reading any state.

    For callers that write files of their own into the workdir (the binary's
    config.json) only once the run is known to continue, or start, there.

    Returns:
      The newest readable checkpoint's round, or None when there is none.

    Raises:
      checkpoint.ResumeError: as `run` would, for a checkpoint of another run.
    """
    if not config.workdir or not os.path.isdir(_ckpt_dir(config)):
        return None
    identity = identity_lib.run_identity(
        algorithm, model, federation, seed=config.seed, cohort_size=config.cohort_size
    )
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config))
    try:
        for round_num in reversed(checkpointer.rounds()):
            try:
                meta = checkpointer.read_meta(round_num)
            except Exception:  # noqa: BLE001 - damaged: run() says so and skips it.
                continue
            _check_resumable(config, meta, fingerprint, identity, lambda _: None)
            return round_num
    finally:
        checkpointer.close()
    return None


class Loaded(NamedTuple):
    """A trained run read back from its workdir (see `load`).

    Attributes:
      server_state: the global state; `.params` is the global model.
      client_states: every client's personal leaves [num_clients, ...]; a client's
        model is `algorithm.personalize(server_state.params, its slice)`.
      round: the round of the checkpoint.
      meta: the checkpoint's metadata (round, fingerprint, identity, engine).
    """

    server_state: base.ServerState
    client_states: t.PyTree
    round: int
    meta: dict


def load(
    workdir: str,
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    federation: federation_lib.Federation,
) -> Loaded:
    """The newest intact checkpoint of a workdir, for inference or analysis.

    >>> # loaded = load('runs/a', algorithm, model, federation)
    >>> # predictions = fm.evaluation.predict(model, loaded.server_state.params,
    >>> #     federation.test, policy=algorithm.policy, client_states=loaded.client_states)

    Args:
      workdir: a `run`'s workdir.
      algorithm, model, federation: the objects the run was built from (their
        identity is checked against the checkpoint's; seed and cohort are not).

    Raises:
      FileNotFoundError: if the workdir has no checkpoint.
      checkpoint.ResumeError: if it was written for another algorithm, model or
        federation, or none of its checkpoints reads back.
    """
    identity = identity_lib.run_identity(algorithm, model, federation, seed=0, cohort_size=1)
    state, client_states = jax.eval_shape(
        lambda: fresh_state(algorithm, model, federation.num_clients, 0)
    )

    def check(meta):
        saved = {
            k: v
            for k, v in meta.get("identity", {}).items()
            if k in ("algorithm", "model", "federation")
        }
        changed = identity_lib.differences(saved, {k: identity[k] for k in saved})
        if changed:
            raise checkpoint_lib.ResumeError(
                f"The checkpoint in {workdir} is of another run: {'; '.join(changed[:4])}."
            )

    checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        template = {"server_state": state, "client_states": client_states}
        found = checkpointer.restore_newest_intact(template, check, logging_lib.log)
    finally:
        checkpointer.close()
    if found is None:
        raise FileNotFoundError(f"No checkpoint in {workdir}.")
    restored, meta = found
    return Loaded(restored["server_state"], restored["client_states"], int(meta["round"]), meta)


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
    return distributed.put(per_client, NamedSharding(mesh, P(round_lib.AXIS)))


def device_megabytes(tree_) -> float:
    """MB of `tree_`'s arrays held on the first local device (its shards only)."""
    first = jax.local_devices()[0]
    total = 0
    for x in jax.tree.leaves(tree_):
        total += sum(s.data.nbytes for s in x.addressable_shards if s.device == first)
    return total / 2**20


def _personal_view(algorithm, model, evaluator, seed, train, population, chunk):
    """(server state, client states) -> (evaluator, states) scoring each personal model.

    Without `algorithm.adapt` that is the run's evaluator on the client states
    (personalize(global, state)); with it, each client's adapted params
    (`base.adapt_clients` on its train data, key fold_in(key(seed), ADAPT_TAG)),
    recomputed from the current global model at every evaluation.
    """
    if algorithm.adapt is None:
        return lambda state, states: (evaluator, states)
    adapted = evaluation.Evaluator(model, lambda received, params: params)
    key = jax.random.fold_in(jax.random.key(seed), seeding.ADAPT_TAG)
    adapt = jax.jit(functools.partial(base.adapt_clients, algorithm, chunk_size=chunk))
    return lambda state, states: (adapted, adapt(state, states, train, population.group, key))


def _final(evaluator, params, test, federation, client_states=None) -> evaluation.Report:
    """A report scored against the host copy of the labels (no device->host data copy).

    `test` and `client_states` may hold padding clients past the federation's (sharded
    runs): their predictions are dropped.
    """
    predictions = evaluator.predict(params, test, client_states)
    if jax.process_count() > 1:  # Each process holds its devices' clients: gather them.
        predictions = multihost_utils.process_allgather(predictions, tiled=True)
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


def _save_on_interrupt(checkpointer, start, done, state, states, unpad, meta, say):
    if not checkpointer:
        return
    if done > start and _alive((state, states)):
        last = int(jax.device_get(state.round))
        _save(checkpointer, last, state, unpad(states), meta)
        say(f"Interrupted: saved round {last}; rerun with the same workdir to resume.")
    else:
        kept = checkpointer.latest_round()
        say(f"Interrupted; the last checkpoint is round {kept}: rerun with the same workdir.")
    checkpointer.close()


def _ckpt_dir(config: SimulationConfig) -> str:
    return os.path.join(config.workdir, "checkpoints")


def _save(checkpointer, round_num, state, client_states, meta):
    meta = {"round": int(round_num), **meta}
    checkpointer.save(round_num, {"server_state": state, "client_states": client_states}, meta)


def _maybe_resume(config, fingerprint, identity, state, client_states, say):
    """(state, client states, round) of the workdir's newest intact checkpoint, if any."""
    if not config.workdir:
        return state, client_states, 0
    checkpointer = checkpoint_lib.Checkpointer(_ckpt_dir(config))

    def check(meta):
        _check_resumable(config, meta, fingerprint, identity, say)

    try:
        template = {"server_state": state, "client_states": client_states}
        found = checkpointer.restore_newest_intact(template, check, say)
    finally:
        checkpointer.close()
    if found is None:
        return state, client_states, 0
    restored, meta = found
    return restored["server_state"], restored["client_states"], int(meta["round"])


def _check_resumable(config, meta, fingerprint, identity, say):
    """Raises ResumeError unless this run may continue the checkpoint of `meta`."""
    where = config.workdir
    saved = meta.get("fingerprint", {})
    changed = []
    if fingerprint is not None and saved != fingerprint:
        changed = identity_lib.differences(saved, fingerprint)
    if not changed and "identity" in meta:  # Checkpoints of older versions have none.
        changed = identity_lib.differences(meta["identity"], identity)
    if changed:
        names = ", ".join(c.partition(":")[0] for c in changed)
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if changed[4:] else "")
        if config.resume != "force":
            raise checkpoint_lib.ResumeError(
                f"The checkpoint in {where} was written with different settings ({names}): "
                f"{shown}. "
                "Use a new --workdir, or rerun with the same settings to resume "
                "(resume='force', --resume=force, continues it anyway)."
            )
        say(f"resume='force': continuing the checkpoint in {where} despite: {shown}.")
    if int(meta["round"]) > config.rounds:
        raise checkpoint_lib.ResumeError(
            f"The checkpoint in {where} is at round {meta['round']}, past the {config.rounds} "
            f"rounds asked for: its model is not a {config.rounds}-round one. Ask for "
            f"--rounds >= {meta['round']} to continue it, or use a new --workdir."
        )
