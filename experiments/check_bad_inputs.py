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
r"""Runs a list of bad inputs through experiments/train.py and checks each error.

Every case must end with exit status 2 (or 1) and, as the last line on stderr, a
one-line 'Error: ...' naming the flag, file, column or row at fault, with no
traceback. Nearly every case stops before any data is loaded or any model built,
so the whole list takes seconds in-process:

  python -m experiments.check_bad_inputs               # in-process (fast)
  python -m experiments.check_bad_inputs --subprocess  # each case as its own process
  python -m experiments.check_bad_inputs --show        # print every case's error line

tests/experiments/bad_inputs_test.py runs it in CI.
"""

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

from absl import flags

from experiments import config as config_lib
from experiments import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Case:
    """A bad input: its flags (built in a scratch folder) and what its error must say."""

    name: str
    flags: Callable[[str], list[str]]
    expected: str


def _csv(folder: str, name: str, text: str | bytes) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    return path


def _table(rows: int = 12, x=lambda i: str(i), y=lambda i: str(i % 2), sep: str = ",") -> str:
    lines = [sep.join(["school", "x", "y"])]
    lines += [sep.join([str(i % 3), x(i), y(i)]) for i in range(rows)]
    return "\n".join(lines) + "\n"


def _csv_flags(path: str, target: str = "y:classification", *extra: str) -> list[str]:
    return [
        "--dataset=csv",
        f"--csv_path={path}",
        "--client_column=school",
        "--feature_columns=x",
        f"--target_columns={target}",
        *extra,
    ]


def _odd(row: int, value: str, usual=str):
    """A column's cell maker: `usual(i)`, but `value` in row `row`."""
    return lambda i: value if i == row else usual(i)


def _file(folder: str) -> str:
    return _csv(folder, "a_file", "not a folder")


CASES = (
    Case("negative batch size", lambda d: ["--batch_size=-4"], "--batch_size must be >= 0"),
    Case("no clients", lambda d: ["--num_clients=0"], "--num_clients must be >= 1"),
    Case("negative learning rate", lambda d: ["--client_lr=-0.1"], "--client_lr must be > 0"),
    Case("NaN learning rate", lambda d: ["--server_lr=nan"], "--server_lr must be > 0"),
    Case("fraction above 1", lambda d: ["--task_missing_prob=1.5"], "--task_missing_prob"),
    Case("no test examples", lambda d: ["--test_fraction=0"], "--test_fraction must be in"),
    Case("momentum of 1", lambda d: ["--server_momentum=1"], "--server_momentum"),
    Case("negative seed", lambda d: ["--seed=-1"], "--seed must be in"),
    Case("negative checkpoint_every", lambda d: ["--checkpoint_every=-1"], "--checkpoint_every"),
    Case("negative lora rank", lambda d: ["--lora_rank=-2"], "--lora_rank must be >= 0"),
    Case("zero local steps", lambda d: ["--local_steps=0"], "--local_steps must be >= 1"),
    Case("not a number", lambda d: ["--batch_size=abc"], "--batch_size=abc"),
    Case("unknown algorithm", lambda d: ["--algorithm=fedfoo"], "--algorithm"),
    Case("too many devices", lambda d: ["--num_devices=999"], "--num_devices=999 exceeds"),
    Case("tensorboard without workdir", lambda d: ["--tensorboard"], "add --workdir"),
    Case("workdir is a file", lambda d: [f"--workdir={_file(d)}"], "is a file"),
    Case(
        "workdir cannot be made",
        lambda d: [f"--workdir={os.path.join(_file(d), 'run')}"],
        "cannot be created",
    ),
    Case(
        "manual_dir missing",
        lambda d: ["--dataset=oulad", f"--data_dir={d}", f"--manual_dir={d}/nowhere"],
        "--manual_dir=",
    ),
    Case(
        "downloaded dataset not in an empty data_dir",
        lambda d: ["--dataset=assistments2009", f"--data_dir={d}"],
        "pass --manual_dir=",
    ),
    Case(
        "partition flags on a school table",
        lambda d: ["--dataset=exam", "--partition=dirichlet", "--num_clients=5"],
        "--num_clients does not apply to --dataset=exam",
    ),
    Case(
        "num_clients on a natural partition",
        lambda d: ["--dataset=assistments2009", f"--data_dir={d}", "--num_clients=5"],
        "--num_clients applies to downloaded datasets with --partition=dirichlet",
    ),
    Case(
        "table flags on synthetic data",
        lambda d: ["--client_column=school"],
        "--client_column does not apply to --dataset=synthetic",
    ),
    Case("csv_path missing", lambda d: _csv_flags(f"{d}/none.csv"), "does not exist"),
    Case("csv empty", lambda d: _csv_flags(_csv(d, "empty.csv", "")), "is empty"),
    Case(
        "csv not UTF-8",
        lambda d: _csv_flags(_csv(d, "latin.csv", _table().replace("school", "\xe9cole")
                                  .encode("latin-1"))),
        "--csv_encoding",
    ),
    Case(
        "csv with semicolons",
        lambda d: _csv_flags(_csv(d, "semi.csv", _table(sep=";"))),
        "--csv_sep=';'",
    ),
    Case(
        "csv repeated column",
        lambda d: _csv_flags(_csv(d, "dup.csv", "school,x,x,y\n1,2,3,0\n2,3,4,1\n")),
        "column names repeat ('x')",
    ),
    Case(
        "csv stray text in a numeric column",
        lambda d: _csv_flags(_csv(d, "stray.csv", _table(x=_odd(7, "n/a?")))),
        "Column 'x' is numeric but row 7 (CSV line 9): 'n/a?'",
    ),
    Case(
        "csv inf feature",
        lambda d: _csv_flags(_csv(d, "inf.csv", _table(x=lambda i: "inf" if i == 4 else str(i)))),
        "Feature 'x' has non-finite or out-of-float32-range values at row 4",
    ),
    Case(
        "csv value beyond float32",
        lambda d: _csv_flags(
            _csv(d, "big.csv", _table(y=lambda i: "1e39" if i == 2 else str(i))), "y:regression"
        ),
        "Target 'y' has non-finite",
    ),
    Case(
        "csv stray 0.5 in a 0/1 target",
        lambda d: _csv_flags(_csv(d, "half.csv", _table(y=_odd(5, "0.5", lambda i: str(i % 2))))),
        "non-integer values at row 5",
    ),
    Case(
        "csv classification target with many values",
        lambda d: _csv_flags(_csv(d, "many.csv", _table(rows=80, y=str)), "y:classification"),
        "80 distinct values",
    ),
    Case(
        "csv unknown column kind",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:classification",
                             "--column_kinds=z:numeric"),
        "--column_kinds entry 'z:numeric'",
    ),
    # Added in the second pass over issue #18.
    Case("no rounds", lambda d: ["--rounds=0"], "--rounds must be >= 1"),
    Case(
        "config file missing",
        lambda d: [f"--config={d}/nowhere.py"],
        "the config file cannot be read",
    ),
    Case(
        "config file with a syntax error",
        lambda d: [f"--config={_csv(d, 'broken.py', 'def get_config(:')}"],
        "failed to load: SyntaxError",
    ),
    Case(
        "config file without get_config",
        lambda d: [f"--config={_csv(d, 'other.py', 'WIDTH = 3')}"],
        "has no attribute 'get_config'",
    ),
    Case(
        "config override of no field",
        lambda d: ["--config.model.nosuch=3"],
        "--config.model.nosuch: the config has no such field",
    ),
    Case(
        "config override in the wrong group",
        lambda d: ["--config.run.width=64"],
        "did you mean --config.model.width?",
    ),
    Case(
        "checkpoint_every without workdir",
        lambda d: ["--checkpoint_every=5"],
        "--checkpoint_every applies to the checkpoints in --workdir",
    ),
    Case("resume without workdir", lambda d: ["--resume=force"], "--resume applies"),
    Case(
        "every module frozen",
        lambda d: ["--preset=tiny", "--model=linear", "--frozen=**"],
        "freezes every parameter",
    ),
    Case("csv_path a folder", lambda d: _csv_flags(d), "is not a file"),
    Case(
        "csv_sep tab on a comma file",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:classification", "--csv_sep=\\t"),
        "pass --csv_sep=','",
    ),
    Case(
        "csv_sep of two characters",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:regression", "--csv_sep=;;"),
        "--csv_sep must be one character",
    ),
    Case(
        "csv feature column missing",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:classification")
        + ["--feature_columns=x,q", "--column_kinds=q:numeric"],
        "Column 'q' (feature) is not in the DataFrame",
    ),
    Case(
        "csv column kind without a kind",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:classification",
                             "--column_kinds=x"),
        "--column_kinds entry 'x' must look like column:numeric or column:categorical",
    ),
    Case(
        "csv client column as a feature",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "y:classification")
        + ["--feature_columns=x,school"],
        "The client column 'school' is also in feature_columns",
    ),
    Case(
        "csv target column missing",
        lambda d: _csv_flags(_csv(d, "ok.csv", _table()), "w:regression"),
        "Column 'w' (target) is not in the DataFrame",
    ),
)  # fmt: skip


def run_in_process(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of the binary's main on `argv` (flags only), in this process."""
    # ml_collections loads a --config file as the module 'config_config' and reuses it
    # from sys.modules: drop the previous case's, as a fresh process would not have it.
    sys.modules.pop("config_config", None)
    flag_values = flags.FlagValues()
    config_lib.define_flags(flag_values, sys_argv=["train", *argv])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            train.parse(flag_values, ["train", *argv])
        except (flags.Error, config_lib.SettingsError) as e:
            code = train.error(e)
        else:
            code = train.train_from(flag_values)
    return code, err.getvalue()


def run_subprocess(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of `python -m experiments.train` on `argv`."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr


def problem(case: Case, code: int, stderr: str) -> str | None:
    """What is wrong with a case's outcome, or None when it is as required."""
    last = last_line(stderr)
    if "Traceback" in stderr:
        return f"a traceback: {last}"
    if code not in (1, 2):
        return f"exit status {code}"
    if not last.startswith("Error: "):
        return f"last line is not 'Error: ...': {last!r}"
    if case.expected not in last:
        return f"{last!r} does not say {case.expected!r}"
    return None


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check(cases=CASES, runner=run_in_process, show=False) -> list[tuple[str, str]]:
    """[(case name, problem)] of the cases whose outcome is wrong (empty: all good)."""
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            scratch = os.path.join(folder, "".join(c if c.isalnum() else "_" for c in case.name))
            os.makedirs(scratch)
            code, stderr = runner(case.flags(scratch))
            found = problem(case, code, stderr)
            if show:
                print(f"{case.name}: exit {code}: {last_line(stderr)}")
            if found:
                failures.append((case.name, found))
    return failures


def main() -> int:
    runner = run_subprocess if "--subprocess" in sys.argv[1:] else run_in_process
    failures = check(runner=runner, show="--show" in sys.argv[1:])
    for name, found in failures:
        print(f"FAIL {name}: {found}")
    print(f"{len(CASES) - len(failures)}/{len(CASES)} bad inputs end with a one-line Error.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
