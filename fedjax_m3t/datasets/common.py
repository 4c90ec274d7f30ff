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
"""What the dataset modules share: building, reading back, splitting, malformed rows.

A dataset module (e.g. `assistments2009`) defines a `tfds.core.GeneratorBasedBuilder`
and a `federation_from_builder`; the pieces here keep those short and alike:

  * `prepare` builds from the manual download directory, `read_all` reads a split back
    through `builder.as_data_source()` (array_record, random access, no TensorFlow);
  * `split_by_student` is the natural partition: one client per institution, each
    institution's students split between train and test (no student in both);
  * `split_dirichlet` is the label-skew partition of `fedjax_m3t.data.partition`,
    split by example;
  * `split` picks one of them from a `partition` name, as the `--partition` flag does.

Every split function returns (client names, per-client train row indices, per-client
test row indices), the rows ascending; `federation.from_rows` gathers the examples.

What every reader shares (`is_int`, `malformed_summary`, `malformed_details`): a
reader keeps each malformed row as (line, reason) or (file, line, reason), the
line physical with 1 = the header, and prints a one-line summary with
`malformed_summary` followed by the first few rows from `malformed_details`.
"""

import os
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from fedjax_m3t.data import partition as partition_lib

PARTITIONS = ("natural", "dirichlet")
Split = tuple[tuple[str, ...], list[np.ndarray], list[np.ndarray]]
SHOWN = 10  # Malformed rows listed one by one; the rest are counted.


def prepare(
    builder: tfds.core.DatasetBuilder, *, manual_dir: str | os.PathLike | None = None
) -> None:
    """Builds `builder` from the files in `manual_dir` (default <data_dir>/downloads/manual).

    Raises:
      FileNotFoundError: from the dataset's reader, naming the expected file and
        where to download it.
    """
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)


def read_all(builder: tfds.core.DatasetBuilder, split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a prepared split, stacked: {feature: [n, ...]}, data source order.

    Text features come back as Python str (object arrays); numeric ones with the
    feature's dtype and shape.
    """
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


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")


def split_by_student(
    client_ids: np.ndarray,
    student_ids: np.ndarray,
    times: np.ndarray,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Split:
    """Clients = distinct `client_ids`; each client's train/test split is by student.

    A seeded shuffle of the client's students puts round(test_fraction * students)
    of them (at least one, and at least one left for train) into test, so no test
    example shares a student with a train example. A client with a single student
    splits that student's examples in time instead: the last
    round(test_fraction * n) (at least one) go to test. A client with one example
    keeps it in train and has an empty test set.

    Args:
      client_ids: [n] the institution of each example (ints or strings).
      student_ids: [n] the student of each example.
      times: [n] an order within a student (e.g. an order id or a timestamp).
      test_fraction: share of each client's students in test, in (0, 1).
      seed: seed of the shuffles.

    Returns:
      (client names: str of each distinct client id, in sorted order; per client
      int64 train rows, ascending; per client int64 test rows, ascending).

    Raises:
      ValueError: for test_fraction outside (0, 1).
    """
    _check_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    names, trains, tests = [], [], []
    for client in np.unique(client_ids):
        rows = np.flatnonzero(client_ids == client)
        students = np.unique(student_ids[rows])
        if len(students) >= 2:
            k = int(np.clip(round(test_fraction * len(students)), 1, len(students) - 1))
            is_test = np.isin(student_ids[rows], rng.permutation(students)[:k])
        else:
            k = int(np.clip(round(test_fraction * len(rows)), 1, max(1, len(rows) - 1)))
            k = k if len(rows) >= 2 else 0
            time_rank = np.argsort(np.argsort(times[rows], kind="stable"), kind="stable")
            is_test = time_rank >= len(rows) - k
        names.append(str(client))
        trains.append(rows[~is_test])
        tests.append(rows[is_test])
    return tuple(names), trains, tests


def split_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float | None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Split:
    """`num_clients` clients with Dirichlet(alpha) label skew, split by example.

    Students and institutions may span clients: use it to study label skew, not
    institution effects.

    Args:
      labels: int [n] class of each example (binary labels as 0/1).
      num_clients: clients to make.
      alpha: Dirichlet concentration; None = IID.
      test_fraction: share of each client's examples in test, in (0, 1).
      seed: seed of the partition and the splits.

    Returns:
      (names 'dirichlet_00', ...; per client train rows; test rows), each client
      with >= 2 examples keeping >= 1 in test.
    """
    _check_fraction(test_fraction)
    client = partition_lib.dirichlet_partition(labels, num_clients, alpha, seed=seed)
    rng = np.random.default_rng(seed + 1)
    trains, tests = [], []
    for c in range(num_clients):
        rows = rng.permutation(np.flatnonzero(client == c))
        k = int(np.clip(round(test_fraction * len(rows)), 1, len(rows) - 1)) if len(rows) > 1 else 0
        tests.append(np.sort(rows[:k]))
        trains.append(np.sort(rows[k:]))
    return tuple(f"dirichlet_{c:02d}" for c in range(num_clients)), trains, tests


def split(
    partition: str,
    *,
    client_ids: np.ndarray,
    student_ids: np.ndarray,
    times: np.ndarray,
    labels: np.ndarray,
    num_clients: int = 16,
    alpha: float | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Split:
    """`split_by_student` for partition='natural', `split_dirichlet` for 'dirichlet'.

    Args: as those two functions; `labels` (int [n]) is used by 'dirichlet' only.

    Raises:
      ValueError: for an unknown partition, naming the known ones.
    """
    if partition == "natural":
        return split_by_student(
            client_ids, student_ids, times, test_fraction=test_fraction, seed=seed
        )
    if partition == "dirichlet":
        return split_dirichlet(labels, num_clients, alpha, test_fraction=test_fraction, seed=seed)
    raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}.")


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
