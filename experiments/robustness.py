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
r"""Attack x aggregator on the synthetic federation: clean metric, metric under attack,
backdoor success, for each share of attacking institutions.

  python -m experiments.robustness                         # the small default grid
  python -m experiments.robustness --aggregator=mean --aggregator='trimmed_mean(trim=2)' \
      --attack=alie --attack=label_flip --fractions=0,0.1,0.2,0.4 --rounds=20

Every cell trains the small M3T model with FedAvg from the same seed on the same
federation (every institution every round), the attackers chosen by
attacks.selection from --seed (nested across fractions). 'clean' is the rule's
metric with no attacker; 'attacked' the metric on the honest test split after
training with the attack; 'backdoor' the success rate on triggered test inputs
(attack 'backdoor' only; the clean model's rate is printed as the 0% row). A rule
named without parameters is given the attackers' count: trimmed_mean trims
max(1, f) per side and (multi_)krum tolerates max(1, f), f = the number of
attacking institutions.
"""

import math

from absl import app, flags

from fedjax_m3t import simulation
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.attacks import plan as plan_lib
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import m3t

# Its flags (--rounds, --num_clients, ...) share names with experiments.train's: they go
# to the global FLAGS only when this file is the program, so that importing it next to
# experiments.train (tests, notebooks) defines nothing twice.
_FLAGS = flags.FLAGS if __name__ == "__main__" else flags.FlagValues()

_AGGREGATORS = flags.DEFINE_multi_string(
    "aggregator",
    ["mean", "median", "krum"],
    "Aggregation rules (specs.py syntax); repeat.",
    flag_values=_FLAGS,
)
_ATTACKS = flags.DEFINE_multi_string(
    "attack",
    ["sign_flip", "backdoor"],
    f"Attacks, of {plan_lib.ATTACKS[1:]}; repeat.",
    flag_values=_FLAGS,
)
_FRACTIONS = flags.DEFINE_list(
    "fractions", ["0", "0.1", "0.2", "0.4"], "Shares of attackers.", flag_values=_FLAGS
)
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Rounds per cell.", flag_values=_FLAGS)
_NUM_CLIENTS = flags.DEFINE_integer(
    "num_clients", 10, "Synthetic institutions.", flag_values=_FLAGS
)
_MEAN_EXAMPLES = flags.DEFINE_integer(
    "mean_examples", 48, "Mean examples per institution.", flag_values=_FLAGS
)
_TASK = flags.DEFINE_string(
    "task",
    "outcome",
    "The task whose metric is reported, and whose class the backdoor forces.",
    flag_values=_FLAGS,
)
_METRIC = flags.DEFINE_string("metric", "accuracy", "The metric reported.", flag_values=_FLAGS)
_TARGET = flags.DEFINE_integer(
    "backdoor_target", 3, "The class the backdoor forces.", flag_values=_FLAGS
)
_GUARD = flags.DEFINE_float(
    "guard_max_norm_ratio", None, "The round's norm rule (None: off).", flag_values=_FLAGS
)
_CLIENT_LR = flags.DEFINE_float("client_lr", 1e-2, "Local Adam learning rate.", flag_values=_FLAGS)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the data, the model and the attackers.", flag_values=_FLAGS
)


def with_f(rule: str, f: int) -> str:
    """A bare trimmed_mean / krum / multi_krum told the number of attackers."""
    key = {"trimmed_mean": "trim", "krum": "f", "multi_krum": "f"}.get(rule)
    return f"{rule}({key}={max(1, f)})" if key else rule


def run_cell(
    federation, aggregator: str, plan: plan_lib.AttackPlan, settings: dict, measure=None
) -> tuple:
    """(the task metric on the honest test split, backdoor success or None) of one cell.

    The backdoor success is measured for `plan` if it is a backdoor, else for the plan
    `measure` (None: not measured).
    """
    poisoned = plan_lib.poison(plan, federation)
    model = m3t.build_m3t_model(
        federation.spec, m3t.M3TConfig(width=16, depth=1, num_heads=2, lora_rank=0)
    )
    algorithm = registry.build_algorithm(
        "fedavg",
        model,
        local=local_training.LocalTrainingConfig(local_steps=5, batch_size=16),
        client_learning_rate=settings["client_lr"],
        client_optimizer_name="adam",
        aggregator=aggregator,
    )
    algorithm = plan_lib.arm(plan, algorithm, federation.num_clients)
    config = simulation.SimulationConfig(
        rounds=settings["rounds"],
        cohort_size=federation.num_clients,
        seed=settings["seed"],
        verbose=False,
        guard_max_norm_ratio=settings["guard"],
    )
    result = simulation.run(algorithm, model, poisoned, config)
    metric = result.global_report.pooled[settings["task"]][settings["metric"]]
    backdoor = None
    measure = plan if plan.attack == "backdoor" else measure
    if measure is not None:
        params = result.server_state.params
        backdoor = plan_lib.backdoor_success_rate(measure, model, params, federation)
    return metric, backdoor


def table(aggregators, attacks, fractions, settings: dict, on_row=None) -> list[dict]:
    """One row per (attack, aggregator, fraction) with 'clean', 'attacked' and 'backdoor'.

    `on_row(row)`, if given, is called as each row is measured (progress of long grids).
    """
    federation = synthetic.make_education_federation(
        synthetic.SyntheticConfig(
            num_clients=settings["num_clients"],
            mean_examples=settings["mean_examples"],
            seed=settings["seed"],
        )
    )
    n = federation.num_clients
    rows = []
    for aggregator in aggregators:
        # The clean run; with a backdoor in the grid, also its rate on triggered inputs.
        trigger = cell_plan("backdoor", 0.0, settings) if "backdoor" in attacks else None
        clean_plan = cell_plan("none", 0.0, settings)
        clean, clean_backdoor = run_cell(
            federation, with_f(aggregator, 0), clean_plan, settings, trigger
        )
        for attack in attacks:
            for fraction in fractions:
                f = int(round(fraction * n))
                plan = cell_plan(attack, fraction, settings)
                if f == 0:
                    metric = clean
                    backdoor = clean_backdoor if attack == "backdoor" else None
                else:
                    metric, backdoor = run_cell(federation, with_f(aggregator, f), plan, settings)
                row = dict(attack=attack, aggregator=aggregator, fraction=fraction)
                rows.append({**row, "clean": clean, "attacked": metric, "backdoor": backdoor})
                if on_row is not None:
                    on_row(rows[-1])
    return rows


def cell_plan(attack: str, fraction: float, settings: dict) -> plan_lib.AttackPlan:
    """The plan of one cell."""
    return plan_lib.AttackPlan(
        attack=attack,
        fraction=fraction,
        seed=settings["seed"],
        backdoor_task=settings["task"],
        backdoor_target=settings["target"],
    )


def format_rows(rows: list[dict], metric: str) -> str:
    """The table as text, one line per cell."""
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
    head = f"{'attack':<11} {'aggregator':<24} {'f/n':>5} {'clean ' + metric:>16} "
    head += f"{'attacked':>9} {'backdoor':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['attack']:<11} {r['aggregator']:<24} {r['fraction']:>5.0%} {fmt(r['clean']):>16} "
            f"{fmt(r['attacked']):>9} {fmt(r['backdoor']):>9}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
    unknown = [a for a in _ATTACKS.value if a not in plan_lib.ATTACKS]
    if unknown:
        raise app.UsageError(f"Unknown attacks {unknown}; choose from {plan_lib.ATTACKS}.")
    settings = dict(
        rounds=_ROUNDS.value,
        num_clients=_NUM_CLIENTS.value,
        mean_examples=_MEAN_EXAMPLES.value,
        task=_TASK.value,
        metric=_METRIC.value,
        target=_TARGET.value,
        guard=_GUARD.value,
        seed=_SEED.value,
        client_lr=_CLIENT_LR.value,
    )
    fractions = [float(x) for x in _FRACTIONS.value]
    progress = lambda r: print(format_rows([r], _METRIC.value).splitlines()[-1], flush=True)
    rows = table(_AGGREGATORS.value, _ATTACKS.value, fractions, settings, progress)
    print(format_rows(rows, f"{_TASK.value}:{_METRIC.value}"))


if __name__ == "__main__":
    app.run(main)
