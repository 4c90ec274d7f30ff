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
"""What the dataset modules share: building, reading back, partitions, malformed rows.

A dataset module (e.g. `assistments2009`) defines a `tfds.core.GeneratorBasedBuilder`
and a `federation_from_builder`; the pieces here keep those short and alike:

  * `prepare` builds from the manual download directory, `read_all` reads a split back
    through `builder.as_data_source()` (array_record, random access, no TensorFlow);
  * `partition` gives each example its client, natural (one per institution) or with
    Dirichlet label skew (`fedjax_m3t.data.partition`), and splits every client's
    examples into train and test with the one split of `fedjax_m3t.data.split`:
    by student in the natural partition (no student in both), by example in the
    Dirichlet one; `split.client_rows` and `federation.from_rows` then gather them.

The downloaded datasets' dependencies (tensorflow-datasets, pandas, pillow) are the
optional extra `datasets`: a dataset module gets them from `require`, whose
ImportError says how to install them, so that the core never needs them.

What every reader shares (`is_int`, `malformed_summary`, `malformed_details`): a
reader keeps each malformed row as (line, reason) or (file, line, reason), the
line physical with 1 = the header, and prints a one-line summary with
`malformed_summary` followed by the first few rows from `malformed_details`.

A build remembers what it was made from: `ensure_prepared` writes
`fedjax_m3t_build.json` beside the built files, holding the source files' names,
sizes and modification times and the builder options (e.g. strict). When the
downloaded files or the options change, the data_dir's build is stale: it is
rebuilt, with a message, instead of being read as if nothing had changed.
"""

import hashlib
import importlib
import json
import os
import pathlib
import shutil
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from fedjax_m3t.data import partition as partition_lib
from fedjax_m3t.data import split as split_lib

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

INSTALL = 'pip install "fedjax_m3t[datasets]"'  # In a checkout: pip install -e ".[datasets]".
PARTITIONS = ("natural", "dirichlet")
SHOWN = 10  # Malformed rows listed one by one; the rest are counted.


def require(name: str) -> ModuleType:
    """Imports `name`, a dependency of the downloaded datasets (the extra 'datasets').

    >>> require('numpy').__name__
    'numpy'

    Raises:
      ImportError: if it is not installed, with the command that installs it.
    """
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"The downloaded datasets need {name.split('.')[0]}, from the optional extra "
            f"'datasets': {INSTALL}"
        ) from e


def prepare(
    builder: "tfds.core.DatasetBuilder", *, manual_dir: str | os.PathLike | None = None
) -> None:
    """Builds `builder` from the files in `manual_dir` (default <data_dir>/downloads/manual).

    Raises:
      FileNotFoundError: from the dataset's reader, naming the expected file and
        where to download it.
    """
    tfds = require("tensorflow_datasets")
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)


BUILD_RECORD = "fedjax_m3t_build.json"


def default_manual_dir(builder: "tfds.core.DatasetBuilder") -> pathlib.Path:
    """<data_dir>/downloads/manual, where TFDS looks when no manual_dir is given."""
    # builder.data_dir is <data_dir>/<name>/<version>.
    return pathlib.Path(builder.data_dir).parents[1] / "downloads" / "manual"


def source_fingerprint(manual_dir: str | os.PathLike) -> dict:
    """{'files': count, 'bytes': total, 'digest': of every (path, size, mtime)} of a folder."""
    entries = []
    for root, dirs, files in os.walk(manual_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            stat = os.stat(path)
            entries.append((os.path.relpath(path, manual_dir), stat.st_size, stat.st_mtime_ns))
    text = json.dumps(entries).encode()
    return {
        "files": len(entries),
        "bytes": sum(e[1] for e in entries),
        "digest": hashlib.sha256(text).hexdigest()[:16],
    }


def ensure_prepared(
    make_builder: Callable[[], "tfds.core.DatasetBuilder"],
    *,
    manual_dir: str | os.PathLike | None = None,
    options: dict | None = None,
    say: Callable[[str], None] = print,
) -> "tfds.core.DatasetBuilder":
    """A prepared builder whose build matches the downloaded files and the options.

    Builds on first use; rebuilds (with a message) when the files in the manual
    directory or `options` differ from those the build recorded, or when a build
    made before builds were recorded meets downloaded files. A build whose files
    are gone is used as it is.

    Args:
      make_builder: makes the builder over the data_dir (called again to rebuild).
      manual_dir: the downloaded files (default <data_dir>/downloads/manual).
      options: JSON-able builder options that change the build (e.g. {'strict': True}).
      say: where the messages go.

    Raises:
      FileNotFoundError: naming the manual directory (--manual_dir) when the
        dataset is not built and the directory holds no files, or when a given
        manual_dir does not exist.
    """
    builder = make_builder()
    given = manual_dir is not None
    manual = pathlib.Path(manual_dir).expanduser() if given else default_manual_dir(builder)
    name = builder.name
    if given and not manual.is_dir():
        raise FileNotFoundError(
            f"--manual_dir={manual} is not a folder; it must hold the downloaded {name} files."
        )
    has_files = manual.is_dir() and any(manual.iterdir())
    wanted = {
        "sources": source_fingerprint(manual) if has_files else None,
        "options": options or {},
    }
    record = pathlib.Path(builder.data_dir) / BUILD_RECORD
    if builder.is_prepared():
        saved = json.loads(record.read_text()) if record.exists() else None
        if saved == wanted or not has_files:
            if saved is not None and saved != wanted:
                say(f"{name}: the files it was built from are not in {manual}; using the build.")
            return builder
        what = (
            "its files and options were not recorded"
            if saved is None
            else ", ".join(k for k in wanted if saved.get(k) != wanted[k])
        )
        say(f"{name}: the build in {builder.data_dir} is stale ({what} changed); rebuilding.")
        shutil.rmtree(builder.data_dir)
        builder = make_builder()
    if not has_files:
        instructions = " ".join(str(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", "")).split())
        raise FileNotFoundError(
            f"{name} is not built in this --data_dir and {manual} holds no downloaded files: "
            f"put them there or pass --manual_dir=<folder with them>. {instructions}"
        )
    prepare(builder, manual_dir=manual)
    record.write_text(json.dumps(wanted, indent=2))
    return builder


def read_all(builder: "tfds.core.DatasetBuilder", split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a prepared split, stacked: {feature: [n, ...]}, data source order.

    Text features come back as Python str (object arrays); numeric ones with the
    feature's dtype and shape.
    """
    tfds = require("tensorflow_datasets")
    source = builder.as_data_source(split=split)
    examples = source.__getitems__(range(len(source)))
    features = builder.info.features
    out = {}
    for key in features.keys():
        feature = features[key]
        values = [e[key] for e in examples]
        if isinstance(feature, tfds.features.Text):
            out[key] = np.array(
                [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], object
            )
        else:
            out[key] = np.array(values, feature.np_dtype).reshape(
                (len(examples),) + tuple(feature.shape)
            )
    return out


def partition(
    kind: str,
    *,
    client_ids: np.ndarray,
    student_ids: np.ndarray | None,
    labels: np.ndarray,
    num_clients: int = 16,
    alpha: float | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Each example's client and split, for the --partition flag's two choices.

    'natural': one client per distinct `client_ids` value (sorted, named by str of
    the value); within it the split is by student (`split.units` of `student_ids`,
    None = every example its own student). 'dirichlet': `num_clients` clients
    named 'dirichlet_00', ... with Dirichlet(alpha) skew of `labels`
    (`partition.dirichlet_partition`; students and institutions then span
    clients: use it to study label skew, not institution effects), split by
    example with seed + 1.

    Args:
      kind: 'natural' or 'dirichlet'.
      client_ids: [n] the institution of each example (ints or strings).
      student_ids: int [n] the student of each example, or None.
      labels: int [n] the class of each example ('dirichlet' only).
      num_clients: clients of the 'dirichlet' partition.
      alpha: Dirichlet concentration; None = IID.
      test_fraction: share of each client's students (examples) in test, in [0, 1).
      seed: seed of the partition and the split.

    Returns:
      (client names, int64 [n] client index of each example, bool [n] train).

    Raises:
      ValueError: for an unknown partition, naming the known ones, or a bad
        test_fraction.
    """
    if kind == "natural":
        values, client = np.unique(np.asarray(client_ids), return_inverse=True)
        client = client.reshape(-1).astype(np.int64)
        unit = split_lib.units(client, student_ids)
        train = split_lib.train_mask(client, unit, test_fraction=test_fraction, seed=seed)
        return tuple(str(v) for v in values), client, train
    if kind == "dirichlet":
        client = partition_lib.dirichlet_partition(labels, num_clients, alpha, seed=seed)
        # seed + 1: the split's keys do not reuse the partition's draws.
        train = split_lib.train_mask(client, test_fraction=test_fraction, seed=seed + 1)
        return tuple(f"dirichlet_{c:02d}" for c in range(num_clients)), client, train
    raise ValueError(f"partition must be one of {PARTITIONS}, got {kind!r}.")


def is_int(text: str) -> bool:
    """Whether `text` is an integer literal (optional leading '-', digits only).

    >>> is_int('-12'), is_int('1.5'), is_int('')
    (True, False, False)
    """
    return text.lstrip("-").isdigit()


def _where(entry: tuple) -> str:
    return ":".join(str(x) for x in entry[:-1])


def malformed_summary(malformed: Sequence[tuple]) -> str:
    """'N malformed rows at lines 3, 7 (and 2 more)': the summary's clause on them.

    >>> malformed_summary([(3, 'bad'), (7, 'bad')])
    '2 malformed rows at lines 3, 7'
    >>> malformed_summary([('a.csv', 5, 'bad')] * 12)
    '12 malformed rows at a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5 (and 2 more)'
    """  # noqa: E501
    shown = ", ".join(_where(e) for e in malformed[:SHOWN])
    more = f" (and {len(malformed) - SHOWN} more)" if len(malformed) > SHOWN else ""
    lines = "lines " if malformed and len(malformed[0]) == 2 else ""
    return f"{len(malformed)} malformed rows" + (f" at {lines}{shown}{more}" if shown else "")


def malformed_details(malformed: Sequence[tuple]) -> list[str]:
    """One line per listed malformed row: '  line 3: reason' or '  a.csv line 3: reason'."""
    out = []
    for entry in malformed[:SHOWN]:
        where = f"{entry[0]} line {entry[1]}" if len(entry) == 3 else f"line {entry[0]}"
        out.append(f"  {where}: {entry[-1]}")
    return out
