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
"""What train_lib checks beyond the config's own fields, and how a run is guarded.

  * `preflight`: everything that can be checked before any data is loaded (the
    workdir is a writable folder, TensorBoard is installed, the devices exist, the
    table file exists, a given --manual_dir is a folder);
  * `read_table`: a CSV or Parquet file read with one-line errors for an empty
    file, another encoding (--csv_encoding), another separator (--csv_sep, hinted
    when the header has one column) and repeated column names;
  * `check_applicable`: a flag given for a dataset that does not use it (e.g.
    --partition=dirichlet with --dataset=exam) is an error, never ignored;
  * `run_guarded`: the simulation run holding the workdir's lock, refusing a
    checkpoint of other settings before config.json is (over)written, with
    library errors about the workdir turned into SettingsError.

Every failure is a `config.SettingsError` whose message names the flag, file,
column or row and says what to change.
"""

import csv
import json
import os

import jax

from experiments import config as config_lib
from fedjax_m3t.simulation import checkpoint as checkpoint_lib
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import loop as run_lib
from fedjax_m3t.simulation import workdir as workdir_lib

SettingsError = config_lib.SettingsError
# Separators a one-column header hints at.
_OTHER_SEPARATORS = {";": ";", "\t": "\\t", "|": "|", ",": ","}


def preflight(config: config_lib.TrainConfig) -> None:
    """Checks what needs no data: outputs, devices and input paths.

    Raises:
      SettingsError: naming the flag and what to change.
    """
    output, data = config.output, config.data
    if output.workdir:
        try:
            workdir_lib.check_writable(output.workdir)
        except workdir_lib.WorkdirError as e:
            raise SettingsError(str(e)) from None
    if output.tensorboard:
        try:
            import tensorboardX  # noqa: F401, PLC0415 - optional dependency.
        except ImportError:
            raise SettingsError(
                "--tensorboard needs tensorboardX: pip install 'fedjax_m3t[tensorboard]'."
            ) from None
    visible = len(jax.local_devices())
    if config.run.num_devices > visible:
        raise SettingsError(
            f"--num_devices={config.run.num_devices} exceeds the {visible} visible "
            f"{jax.default_backend()} device(s); use --num_devices={visible} or fewer "
            "(0: all)."
        )
    if data.dataset == "csv" and data.csv_path:
        if not os.path.exists(data.csv_path):
            raise SettingsError(f"--csv_path={data.csv_path} does not exist.")
        if not os.path.isfile(data.csv_path):
            raise SettingsError(f"--csv_path={data.csv_path} is not a file.")
        separator(data.csv_sep)
    if data.manual_dir and not os.path.isdir(data.manual_dir):
        raise SettingsError(
            f"--manual_dir={data.manual_dir} is not a folder; it must hold the downloaded "
            "files (README 'Data' lists them)."
        )


# Data flags that only some datasets read: flag -> (the dataset kinds that do, in words).
_SYNTHETIC, _CSV, _SCHOOL, _DOWNLOADED = "synthetic", "csv", "school table", "downloaded"
APPLIES = {
    **{
        name: (_SYNTHETIC,)
        for name in (
            "mean_examples", "quantity_skew", "label_skew_alpha", "modality_missing_prob",
            "task_missing_prob",
        )
    },
    **{
        name: (_CSV,)
        for name in (
            "csv_path", "client_column", "group_column", "feature_columns", "target_columns",
            "student_column", "time_column", "column_kinds", "max_classes", "csv_encoding",
            "csv_sep",
        )
    },
    **{
        name: (_DOWNLOADED,)
        for name in (
            "data_dir", "partition", "dirichlet_alpha", "manual_dir", "institution",
            "dataset_options", "strict", "text_encoding", "text_length",
        )
    },
    "standardize_targets": (_CSV, _SCHOOL),
    "num_clients": (_SYNTHETIC, _DOWNLOADED),  # Downloaded: with --partition=dirichlet.
}  # fmt: skip


def dataset_kind(dataset: str) -> str:
    """'synthetic', 'csv', 'school table' or 'downloaded' (several joined by '+' too)."""
    if dataset in (_SYNTHETIC, _CSV):
        return dataset
    return (
        _DOWNLOADED
        if all(n in config_lib.BUILDER_DATASETS for n in dataset.split("+"))
        else _SCHOOL
    )


def check_applicable(config: config_lib.TrainConfig, given: set[str]) -> None:
    """Raises SettingsError for a given data flag the chosen dataset does not read.

    Args:
      config: the run's config.
      given: the flags set explicitly (on the command line or as --config overrides);
        values from a config file or preset are not the user's ask and pass.
    """
    data = config.data
    kind = dataset_kind(data.dataset)
    for name in sorted(given & set(APPLIES)):
        if kind not in APPLIES[name]:
            raise SettingsError(
                f"--{name} does not apply to --dataset={data.dataset} (it is for "
                f"{' and '.join(APPLIES[name])} data); drop it."
            )
    # Output flags that only a --workdir gives a meaning to (--tensorboard: its own check).
    needs_workdir = sorted(given & {"checkpoint_every", "resume"})
    if needs_workdir and not config.output.workdir:
        raise SettingsError(
            f"--{needs_workdir[0]} applies to the checkpoints in --workdir, and there is "
            "none: add --workdir=<folder> or drop the flag."
        )
    dirichlet_only = sorted(given & {"num_clients", "dirichlet_alpha"})
    if kind == _DOWNLOADED and data.partition != "dirichlet" and dirichlet_only:
        raise SettingsError(
            f"--{dirichlet_only[0]} applies to downloaded datasets with --partition=dirichlet "
            "(the natural partition has one client per institution); add it or drop the flag."
        )


def separator(flag: str) -> str:
    """The --csv_sep character ('\\t' written as backslash-t)."""
    sep = "\t" if flag in ("\\t", "tab") else flag
    if len(sep) != 1:
        raise SettingsError(f"--csv_sep must be one character (or \\t), got {flag!r}.")
    return sep


def read_table(path: str, encoding: str = "utf-8", sep: str = ","):
    """The DataFrame of a CSV (or Parquet: .parquet, .pq) file.

    Args:
      path: the file.
      encoding: the CSV's text encoding (--csv_encoding).
      sep: the CSV's separator (--csv_sep).

    Raises:
      SettingsError: for an empty file, undecodable text, a header of repeated or
        (probably) wrongly separated column names, or a file pandas cannot parse.
    """
    try:
        import pandas as pd  # noqa: PLC0415 - optional dependency of the 'real' extra.
    except ImportError:
        raise SettingsError("--dataset=csv needs pandas: pip install -e '.[real]'.") from None
    if path.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many kinds.
            raise SettingsError(f"--csv_path={path} is not a readable Parquet file ({e}).") from e
        return _check_names(path, list(frame.columns), frame)
    sep = separator(sep)
    if os.path.getsize(path) == 0:
        raise SettingsError(f"--csv_path={path} is empty: it needs a header row and data rows.")
    try:
        with open(path, encoding=encoding, newline="") as f:
            header_line = f.readline()
    except LookupError:
        raise SettingsError(f"--csv_encoding={encoding} is not a known text encoding.") from None
    except UnicodeDecodeError as e:
        raise SettingsError(_not_text(path, encoding, e)) from None
    header = next(csv.reader([header_line], delimiter=sep), [])
    if len(header) == 1:
        others = [shown for char, shown in _OTHER_SEPARATORS.items() if char in header[0]]
        if others:
            raise SettingsError(
                f"--csv_path={path}: the header has one column, {header[0].strip()!r}; if the "
                f"file separates columns with {others[0]!r}, pass --csv_sep='{others[0]}'."
            )
    _check_names(path, header)
    try:
        frame = pd.read_csv(path, encoding=encoding, sep=sep)
    except UnicodeDecodeError as e:
        raise SettingsError(_not_text(path, encoding, e)) from None
    except pd.errors.EmptyDataError:
        raise SettingsError(f"--csv_path={path} has no columns.") from None
    except pd.errors.ParserError as e:
        first = str(e).strip().splitlines()[0]
        raise SettingsError(
            f"--csv_path={path} cannot be parsed: {first} (is --csv_sep={sep!r} its separator?)"
        ) from None
    if frame.empty:
        raise SettingsError(f"--csv_path={path} has a header but no data rows.")
    return frame


def _not_text(path: str, encoding: str, error: UnicodeDecodeError) -> str:
    bad = error.object[error.start : error.start + 1]
    return (
        f"--csv_path={path} is not {encoding} text (byte {error.start} is {bad!r}); give its "
        "encoding with --csv_encoding (e.g. latin-1 or cp1252)."
    )


def _check_names(path: str, names: list, frame=None):
    seen, repeated = set(), []
    for name in names:
        key = str(name).strip()
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    if repeated:
        raise SettingsError(
            f"--csv_path={path}: column names repeat ({', '.join(map(repr, repeated))}); "
            "rename them so that each column has its own name."
        )
    return frame


def run_guarded(
    config: config_lib.TrainConfig, simulation, algorithm, model, federation, **run_kwargs
):
    """`simulation.run` holding the workdir; config.json is written once the run may go on.

    Raises:
      SettingsError: for a workdir held by another run, or one whose checkpoint was
        written with other settings (unless --resume=force) or is past --rounds.
    """
    workdir = simulation.workdir
    fingerprint = compatible_fingerprint(config.fingerprint(), saved_fingerprint(workdir))
    try:
        if not workdir or jax.process_index() != 0:
            # Several processes (experiments.launch): only the first holds the workdir.
            if not workdir:
                logging_lib.log("No --workdir: metrics and checkpoints are not saved.")
            return run_lib.run(
                algorithm, model, federation, simulation, fingerprint=fingerprint, **run_kwargs
            )
        with workdir_lib.lock(workdir, say=logging_lib.log):
            run_lib.check_resume(algorithm, model, federation, simulation, fingerprint=fingerprint)
            with open(os.path.join(workdir, "config.json"), "w") as f:
                json.dump(config.to_json(), f, indent=2)
            return run_lib.run(
                algorithm, model, federation, simulation, fingerprint=fingerprint, **run_kwargs
            )
    except (checkpoint_lib.ResumeError, workdir_lib.WorkdirError) as e:
        raise SettingsError(str(e)) from None


def saved_fingerprint(workdir: str | None) -> dict | None:
    """The settings fingerprint of the workdir's newest readable checkpoint, or None."""
    directory = os.path.join(workdir, "checkpoints") if workdir else None
    if not directory or not os.path.isdir(directory):
        return None
    checkpointer = checkpoint_lib.Checkpointer(directory)
    try:
        for round_num in reversed(checkpointer.rounds()):
            try:
                return checkpointer.read_meta(round_num).get("fingerprint", {})
            except Exception:  # noqa: BLE001, S112 - damaged: the run says so and skips it.
                continue
    finally:
        checkpointer.close()
    return None


def compatible_fingerprint(fingerprint: dict, saved: dict | None) -> dict:
    """`fingerprint` without the fields a saved one lacks and that keep their default.

    Fields added to the config after a workdir was written are absent from its
    checkpoints' fingerprints; at their defaults they change nothing, so such a
    workdir still resumes.
    """
    if saved is None:
        return fingerprint
    defaults = config_lib.TrainConfig().fingerprint()
    return {
        k: v for k, v in fingerprint.items() if k in saved or k not in defaults or v != defaults[k]
    }
