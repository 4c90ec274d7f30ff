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
r"""Personalised federated learning compared, with matched budgets, over seeds.

  python -m experiments.personalization            # the quick synthetic comparison
  python -m experiments.personalization --seeds=0,1,2,3,4 --rounds=40 --num_clients=16
  python -m experiments.generate_data --dataset=assistments2009,asap_aes --out=/tmp/manual
  python -m experiments.personalization --dataset=assistments2009+asap_aes \
      --data_dir=/tmp/tfds --manual_dir=/tmp/manual
  python -m experiments.personalization --dataset=hsb82     # also exam, star ('.[real]')

Every method (local_only, fedavg, fedavg_ft, fedper, fedrep, fedbn, ditto,
local_adapters, tap; more with --methods) trains the same model
from the same init, on the same federation, for the same rounds, cohorts (same
seed: the same sampled clients), local steps and batch size; Ditto, fedavg_ft and
TAP also spend extra local steps (Ditto and TAP their personal model's, FT its k
steps after the last round, TAP its teacher's and student's), counted in the
'examples' column. The data is drawn once
(--data_seed); each --seeds entry changes the init, the cohorts and the batches.

For each task the table gives, over the institutions' test sets, the mean, median
and worst institution value of the task's primary metric (AUC, R^2 or accuracy;
higher is better) of each institution's personalised model (for FedAvg the global
model), as mean +- sd over seeds; 'global' is the mean institution metric of the
global model; MB is what all clients sent and received in all rounds (federated
leaves down and their deltas up, float32); examples are the example-steps of
training; s the wall time of the run (compilation included).
"""

import dataclasses
import json
import os
import tempfile
import time

import jax
import numpy as np

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t import tree
from fedjax_m3t.evaluation import baselines
from fedjax_m3t.simulation import loop as run_lib

METHODS = (
    "local_only",
    "fedavg",
    "fedavg_ft",
    "fedper",
    "fedrep",
    "fedbn",
    "ditto",
    "local_adapters",
    "tap",
)
# Strong heterogeneity of the synthetic federation (train's defaults: 0.25 / 0.2 / none).
SYNTHETIC = dict(
    num_clients=8,
    mean_examples=96,
    label_skew_alpha=0.3,
    modality_missing_prob=0.5,
    task_missing_prob=0.3,
)
QUICK_MODEL = dict(width=16, depth=1, num_heads=2, lora_rank=2)
QUICK_RUN = dict(rounds=30, local_steps=5, batch_size=16, client_lr=1e-2)


@dataclasses.dataclass(frozen=True)
class MethodRun:
    """One method's run on one seed.

    Attributes:
      method, seed: what ran.
      personal: per task, the [num_clients] primary metric of each institution's
        personalised model (NaN where it lacks the task's test labels).
      global_: the same for the global model.
      megabytes: sent plus received by all clients in all rounds.
      example_steps: examples read in training (fine-tuning included).
      seconds: wall time of the run.
    """

    method: str
    seed: int
    personal: dict
    global_: dict
    megabytes: float
    example_steps: float
    seconds: float


def federated_megabytes(algorithm, model, rounds: int, cohort_size: int) -> float:
    """MB of all messages: each sampled client gets and sends the federated leaves."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    shared = tree.select(algorithm.policy.federated, shapes)
    per_message = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shared))
    return 2 * per_message * cohort_size * rounds / 2**20


def example_steps(config: config_lib.TrainConfig, federation, cohort_size: int) -> float:
    """Training example-steps of the method of `config` (baselines' accounting)."""
    algo = config.algorithm
    local = train_lib.local_config(algo)
    rounds = config.run.rounds
    base = baselines.federated_example_steps(
        federation, local, rounds=rounds, cohort_size=cohort_size
    )
    if algo.algorithm == "ditto":  # The personal model's steps besides the global's.
        return base * (1 + (algo.ditto_steps or algo.local_steps) / algo.local_steps)
    if algo.algorithm == "fedavg_ft":  # k steps per client after the last round.
        per_step = baselines.examples_per_step(federation, local.batch_size).sum()
        return base + algo.fine_tune_steps * float(per_step)
    if algo.algorithm == "tap":  # Two models a round; teacher and student fine-tuned after.
        per_step = baselines.examples_per_step(federation, local.batch_size).sum()
        tuned = 1 if algo.tap_no_distill else 2
        return 2 * base + tuned * algo.fine_tune_steps * float(per_step)
    return base


def primary_values(model, report) -> dict:
    """{task: [num_clients] primary metric} of a Report."""
    return {
        task.name: report.client_values(task.name, metrics_lib.PRIMARY[task.kind])
        for task in model.spec.tasks
    }


def run_method(
    config: config_lib.TrainConfig, federation, model, method: str, seed: int
) -> MethodRun:
    """Trains `method` with `config`'s settings and the given seed; scores it."""
    config = config.override(algorithm=method, seed=seed)
    algorithm = train_lib.build_algorithm(config, model)
    simulation = dataclasses.replace(
        train_lib.simulation_config(config, federation.num_clients),
        workdir=None,
        eval_every=0,
        verbose=False,
    )
    start = time.perf_counter()
    result = run_lib.run(algorithm, model, federation, simulation)
    seconds = time.perf_counter() - start
    cohort = simulation.cohort_size
    megabytes = 0.0
    if method != "local_only":
        megabytes = federated_megabytes(algorithm, model, simulation.rounds, cohort)
    return MethodRun(
        method=method,
        seed=seed,
        personal=primary_values(model, result.personal_report),
        global_=primary_values(model, result.global_report),
        megabytes=megabytes,
        example_steps=example_steps(config, federation, cohort),
        seconds=seconds,
    )


def _spread(values) -> str:
    values = np.asarray(values, float)
    return f"{np.mean(values):.3f}+-{np.std(values):.3f}"


def institution_stats(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, median, worst = min) over the institutions that have the task."""
    values = values[~np.isnan(values)]
    if not values.size:
        return (np.nan, np.nan, np.nan)
    return float(values.mean()), float(np.median(values)), float(values.min())


def format_table(runs: list[MethodRun], model) -> str:
    """One block per task: a row per method, cells mean +- sd over seeds."""
    methods = list(dict.fromkeys(r.method for r in runs))
    lines = []
    for task in model.spec.tasks:
        metric = metrics_lib.PRIMARY[task.kind]
        head = (
            f"{task.name} ({metric}, per institution)  {'mean':>13} {'median':>13} "
            f"{'worst':>13} {'global mean':>13} {'MB':>8} {'examples':>10} {'s':>6}"
        )
        lines += ["", head, "-" * len(head)]
        for method in methods:
            mine = [r for r in runs if r.method == method]
            stats = np.array([institution_stats(r.personal[task.name]) for r in mine])
            global_mean = [institution_stats(r.global_[task.name])[0] for r in mine]
            label = f"{method} ({len(mine)} seeds)"
            global_cell = "-" if method == "local_only" else _spread(global_mean)
            lines.append(
                f"{label:<36} {_spread(stats[:, 0]):>13} {_spread(stats[:, 1]):>13} "
                f"{_spread(stats[:, 2]):>13} {global_cell:>13} "
                f"{np.mean([r.megabytes for r in mine]):>8.2f} "
                f"{np.mean([r.example_steps for r in mine]):>10.0f} "
                f"{np.mean([r.seconds for r in mine]):>6.1f}"
            )
    return "\n".join(lines)


def compare(
    config: config_lib.TrainConfig, methods, seeds, data_seed: int = 0, say=print
) -> tuple[list[MethodRun], str]:
    """Runs every method on every seed on the federation of `config` (drawn with data_seed).

    Returns:
      (the runs, the printed table).
    """
    federation, _ = train_lib.load_data(config.override(seed=data_seed))
    train_lib.check_federation(federation)
    say(federation.summary())
    model = train_lib.build_model(config.model, federation.spec)
    runs = []
    for seed in seeds:
        for method in methods:
            run = run_method(config, federation, model, method, seed)
            means = {t: round(institution_stats(v)[0], 3) for t, v in run.personal.items()}
            say(f"seed {seed} {method:<15} {run.seconds:6.1f} s  mean institution {means}")
            runs.append(run)
    table = format_table(runs, model)
    say(table)
    return runs, table


def _runs_json(runs: list[MethodRun]) -> list[dict]:
    def clean(values):
        return [None if np.isnan(v) else float(v) for v in values]

    return [
        {
            **{k: v for k, v in dataclasses.asdict(r).items() if k not in ("personal", "global_")},
            "personal": {t: clean(v) for t, v in r.personal.items()},
            "global": {t: clean(v) for t, v in r.global_.items()},
        }
        for r in runs
    ]


def _parse(value: str):
    """A --set value: JSON (numbers, true, lists) where it parses, else the string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def main(argv):
    from absl import app  # noqa: PLC0415 - flags are defined only when run as a binary.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
    if FLAGS.compilation_cache_dir:
        # The seeds share shapes, so every seed after the first reuses the compilations.
        jax.config.update("jax_compilation_cache_dir", FLAGS.compilation_cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    overrides = {}
    if FLAGS.dataset == "synthetic":
        overrides.update(SYNTHETIC)
    overrides.update(QUICK_MODEL)
    overrides.update(QUICK_RUN)
    for item in FLAGS.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse(value)
    for name in ("rounds", "num_clients", "cohort_size", "data_dir", "manual_dir"):
        value = getattr(FLAGS, name)
        if value is not None:
            overrides[name] = value
    try:
        config = config_lib.TrainConfig().override(dataset=FLAGS.dataset, **overrides)
        runs, table = compare(config, FLAGS.methods, [int(s) for s in FLAGS.seeds], FLAGS.data_seed)
    except config_lib.SettingsError as e:
        raise app.UsageError(str(e)) from None
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"config": config.to_json(), "runs": _runs_json(runs)}, f, indent=1)
        print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    from absl import app, flags

    # Defined here, not at import: the flag names would clash with experiments.train's.
    flags.DEFINE_list("methods", list(METHODS), "Registered algorithm names to compare.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of init, cohorts and batches.")
    flags.DEFINE_integer("data_seed", 0, "Seed of the federation (drawn once).")
    flags.DEFINE_string(
        "dataset",
        "synthetic",
        "As experiments.train's --dataset: synthetic (strong modality, task and label "
        "heterogeneity), assistments2009+asap_aes, exam, hsb82, star, ...",
    )
    flags.DEFINE_integer("rounds", None, f"Rounds (default {QUICK_RUN['rounds']}).")
    flags.DEFINE_integer("num_clients", None, "Synthetic: institutions (default 8).")
    flags.DEFINE_integer("cohort_size", None, "Clients per round (default: min(8, all)).")
    flags.DEFINE_string("data_dir", None, "Downloaded datasets: TFDS data_dir.")
    flags.DEFINE_string("manual_dir", None, "Downloaded datasets: the files' folder.")
    flags.DEFINE_multi_string(
        "set",
        [],
        "Any experiments.train field as name=value, e.g. --set=width=32 --set=local_steps=8 "
        "--set=ditto_lambda=1.0 (repeatable).",
    )
    flags.DEFINE_string("output", None, "Also write every run's numbers as JSON here.")
    flags.DEFINE_string(
        "compilation_cache_dir",
        os.path.join(tempfile.gettempdir(), "fedjax_m3t_xla_cache"),
        "JAX persistent compilation cache ('' disables).",
    )
    FLAGS = flags.FLAGS
    app.run(main)
