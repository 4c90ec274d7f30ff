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
"""The ASSISTments 2009-2010 skill builder file: its format, a reader, and KT windows.

The real file is `skill_builder_data_corrected.csv` from the ASSISTments data page
("2009-2010 ASSISTment Data", https://sites.google.com/site/assistmentsdata/). It is
latin-1 (ISO-8859-1), comma-separated with a header row, one row per (problem
attempt, skill): a problem tagged with several skills repeats its row, with the same
`order_id`, once per skill. The columns are COLUMNS, in that order.

`read_assistments2009` reads such a file (real, or written by
`fedjax_m3t.datasets.assistments2009.writer`), see its docstring for how each quirk is
handled, and `sequences` cuts each student's history into fixed-length
knowledge-tracing windows.
"""

import csv
import math
import os
import pathlib
import sys

import numpy as np

from fedjax_m3t.datasets import common

pd = common.require("pandas")

FILE_NAME = "skill_builder_data_corrected.csv"
ENCODING = "latin-1"
DOWNLOAD_PAGE = (
    'the ASSISTments data page, "2009-2010 ASSISTment Data" '
    "(https://sites.google.com/site/assistmentsdata/home/2009-2010-assistment-data)"
)
COLUMNS = (
    "order_id", "assignment_id", "user_id", "assistment_id", "problem_id", "original",
    "correct", "attempt_count", "ms_first_response", "tutor_mode", "answer_type",
    "sequence_id", "student_class_id", "position", "type", "base_sequence_id", "skill_id",
    "skill_name", "teacher_id", "school_id", "hint_count", "hint_total", "overlap_time",
    "template_id", "answer_id", "answer_text", "first_action", "bottom_hint", "opportunity",
    "opportunity_original",
)  # fmt: skip
# The columns the reader needs; every one must be in the header.
NEEDED_COLUMNS = ("order_id", "user_id", "school_id", "skill_id", "skill_name", "correct")
_INT_COLUMNS = ("order_id", "user_id", "school_id")


def read_assistments2009(
    path: str | os.PathLike, *, strict: bool = False, verbose: bool = True
) -> pd.DataFrame:
    """Reads the skill builder file, handling its quirks.

    What is done with each quirk (DATA.md; where a real file disagrees, trust it):
      * the file is decoded as latin-1 (skill names such as 'Équations');
      * rows with an empty `skill_id` are dropped and counted
        (attrs['empty_skill_rows']);
      * a problem tagged with several skills repeats its row with the same `order_id`;
        only the FIRST row of each order_id (in file order, among rows with a skill)
        is kept, so every attempt counts once, with its first listed skill; the
        removed repeats are counted (attrs['duplicate_rows']);
      * a malformed row (a field count that differs from the header's, a `correct`
        that is not 0 or 1 (so fractional partial credit is malformed), a non-integer
        `order_id`, `user_id`, `school_id` or non-empty `skill_id`) is skipped; its
        physical line number (1 = the header) and reason are kept in
        attrs['malformed'] and summarised on stdout; with strict=True the first one
        raises instead;
      * the rows are sorted by (user_id, order_id): each student's attempts in order.

    Args:
      path: the csv file.
      strict: raise on the first malformed row instead of skipping it.
      verbose: print a one-line summary of what was dropped.

    Returns:
      A DataFrame with the columns NEEDED_COLUMNS: order_id, user_id, school_id,
      skill_id (int64), skill_name (str), correct (int64, 0/1), sorted by
      (user_id, order_id), index 0..n-1. attrs holds 'path', 'rows' (data rows
      read), 'empty_skill_rows', 'duplicate_rows' and 'malformed' (a list of
      (line number, reason)).

    Raises:
      FileNotFoundError: naming the expected file name and where to download it.
      ValueError: naming the column and the file if a needed column is missing, or
        (strict=True) naming the line of the first malformed row.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No ASSISTments 2009-2010 file at {path}. Download {FILE_NAME} from "
            f"{DOWNLOAD_PAGE} and pass its path (or put it in the manual directory)."
        )
    values = {c: [] for c in NEEDED_COLUMNS}
    malformed, rows = [], 0
    with open(path, encoding=ENCODING, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        index = _column_index(header, path)
        for fields in reader:
            rows += 1
            reason = _parse_row(fields, len(header), index, values)
            if reason is None:
                continue
            if strict:
                raise ValueError(f"{path}, line {reader.line_num}: malformed row ({reason}).")
            malformed.append((reader.line_num, reason))
    df = pd.DataFrame(
        {
            **{c: np.array(values[c], np.int64) for c in _INT_COLUMNS},
            "skill_id": np.array(values["skill_id"], np.int64),
            "skill_name": np.array(values["skill_name"], dtype=object),
            "correct": np.array(values["correct"], np.int64),
        }
    )
    df = df[list(NEEDED_COLUMNS)]
    has_skill = df["skill_id"] >= 0
    empty_skill = int((~has_skill).sum())
    df = df[has_skill]
    repeated = df["order_id"].duplicated(keep="first")
    df = df[~repeated].sort_values(["user_id", "order_id"], kind="stable").reset_index(drop=True)
    df.attrs = {
        "path": str(path),
        "rows": rows,
        "empty_skill_rows": empty_skill,
        "duplicate_rows": int(repeated.sum()),
        "malformed": malformed,
    }
    if verbose:
        _print_summary(df)
    return df


def _column_index(header: list[str], path: pathlib.Path) -> dict[str, int]:
    """Positions of NEEDED_COLUMNS in the header; ValueError naming a missing one."""
    header = [h.strip() for h in header]
    for column in NEEDED_COLUMNS:
        if column not in header:
            raise ValueError(
                f"{path}: the header has no column {column!r} (needed: {NEEDED_COLUMNS}); "
                f"is this the ASSISTments 2009-2010 skill builder file ({FILE_NAME})?"
            )
    return {c: header.index(c) for c in NEEDED_COLUMNS}


def _parse_row(fields: list[str], width: int, index: dict, values: dict) -> str | None:
    """Appends one row's needed values to `values`; returns why it is malformed, or None.

    An empty skill_id is stored as -1 (dropped later, and counted).
    """
    if len(fields) != width:
        return f"{len(fields)} fields, the header has {width}"
    parsed = {}
    for column in _INT_COLUMNS:
        text = fields[index[column]].strip()
        if not common.is_int(text):
            return f"{column} {text!r} is not an integer"
        parsed[column] = int(text)
    correct = fields[index["correct"]].strip()
    try:
        correct_value = float(correct)
    except ValueError:
        correct_value = math.nan
    if correct_value not in (0.0, 1.0):
        return f"correct {correct!r} is not 0 or 1"
    skill = fields[index["skill_id"]].strip()
    if skill and not common.is_int(skill):
        return f"skill_id {skill!r} is not an integer"
    for column, value in parsed.items():
        values[column].append(value)
    values["correct"].append(int(correct_value))
    values["skill_id"].append(int(skill) if skill else -1)
    values["skill_name"].append(fields[index["skill_name"]])
    return None


def _print_summary(df: pd.DataFrame) -> None:
    a = df.attrs
    malformed = a["malformed"]
    print(
        f"ASSISTments 2009-2010: read {a['rows']} rows of {a['path']}; kept {len(df)} "
        f"attempts of {df['user_id'].nunique()} students in {df['school_id'].nunique()} "
        f"schools; dropped {a['empty_skill_rows']} rows with no skill_id, "
        f"{a['duplicate_rows']} repeated order_id rows (multi-skill problems: first skill "
        f"kept), {common.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in common.malformed_details(malformed):
        print(line, file=sys.stdout)


def sequences(
    df: pd.DataFrame, *, length: int = 16, max_per_student: int | None = 64
) -> dict[str, np.ndarray]:
    """Cuts each student's attempts into knowledge-tracing windows.

    Windowing: every attempt of a student after the first is a query; its window is
    the student's up to `length - 1` previous (skill_id, correct) pairs followed by
    (skill_id, 2), left-padded with (0, 0), so the query is the last position. A
    student with n attempts gives n - 1 windows, or only the LAST `max_per_student`
    of them (the ones with the longest histories), so that the few very active
    students of the real data do not dominate; None keeps all.

    Args:
      df: attempts as returned by `read_assistments2009` (sorted by user, order).
      length: L, positions per window, the query included (>= 2).
      max_per_student: most windows per student (None = no bound).

    Returns:
      {'interaction': int32 [n, L, 2] (raw skill_id, response: 0 wrong, 1 right,
       2 query; (0, 0) padding), 'label': int32 [n] correct of the query,
       'school_id', 'user_id', 'order_id' (of the query): int64 [n]}, in the rows'
      order.

    Raises:
      ValueError: for length < 2, max_per_student < 1, or a skill_id < 1 (0 is padding).
    """
    if length < 2 or (max_per_student is not None and max_per_student < 1):
        raise ValueError(f"Need length >= 2 and max_per_student >= 1 or None; got {length}, "
                         f"{max_per_student}.")  # fmt: skip
    df = df.sort_values(["user_id", "order_id"], kind="stable")
    user, skill, correct = (df[c].to_numpy() for c in ("user_id", "skill_id", "correct"))
    if skill.size and skill.min() < 1:
        raise ValueError("skill_id must be >= 1 (0 marks padding in the windows).")
    rank = df.groupby("user_id", sort=False).cumcount().to_numpy()  # Position within student.
    count = df.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    first = 1 if max_per_student is None else np.maximum(1, count - max_per_student)
    query = np.flatnonzero(rank >= first)
    offsets = np.arange(-(length - 1), 1)  # Window position j holds row query + offset.
    rows = query[:, None] + offsets[None, :]
    real = offsets[None, :] >= -rank[query][:, None]
    rows = np.where(real, rows, 0)
    pairs = np.stack([skill[rows], correct[rows]], axis=-1)
    pairs = np.where(real[..., None], pairs, 0)
    pairs[:, -1, 1] = 2
    return {
        "interaction": pairs.astype(np.int32),
        "label": correct[query].astype(np.int32),
        "school_id": df["school_id"].to_numpy()[query].astype(np.int64),
        "user_id": user[query].astype(np.int64),
        "order_id": df["order_id"].to_numpy()[query].astype(np.int64),
    }
