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
"""EdNet KT1 (TOEIC question-solving logs): its format and a streaming reader.

The real data is EdNet-KT1 of the riiid/ednet repository (https://github.com/riiid/ednet,
CC BY-NC 4.0): a directory `KT1/` with one file `u{user_id}.csv` per user (784,309 of
them, 5.6 GB unzipped), and the contents table `contents/questions.csv`. Both are
comma-separated with a header row and ASCII (read as utf-8). A user file has the
columns COLUMNS: `timestamp` (Unix ms, shifted by a fixed offset in the release),
`solving_id` (1, 2, ... one per bundle solved), `question_id` (`q123`), `user_answer`
(`a`-`d`) and `elapsed_time` (ms, the same for every question of a bundle); rows are in
time order. questions.csv has QUESTION_COLUMNS: `part` is the TOEIC part 1-7 and `tags`
a `;`-separated list of integer tags. Questions come in bundles (1-5 questions sharing a
passage, picture or audio; `bundle_id`) that are solved together.

EdNet has NO school or class field. The institution of this library's natural partition
is the learner's start cohort: the calendar month (UTC) of the user's first timestamp,
"users who started in the same month" (`start_month`, YYYYMM; client names '2018-03').
The release shifts timestamps by a fixed offset, so months are cohorts of the shifted
clock: who started together, and the cohorts' order and spacing, are real; where the
month boundaries fall is not.

`read_ednet_kt1` reads such a directory (real, or written by
`fedjax_m3t.datasets.ednet_kt1.writer`) one user file at a time; see its docstring for
how each quirk is handled. Knowledge-tracing windows are cut by
`fedjax_m3t.datasets.assistments2009.reader.sequences` (see ednet_kt1/builder.py).
"""

import csv
import os
import pathlib
import re
import sys

import numpy as np

from fedjax_m3t.datasets import common

pd = common.require("pandas")

KT1_DIR = "KT1"
QUESTIONS_FILE = "contents/questions.csv"
FILE_NAMES = (QUESTIONS_FILE, KT1_DIR + "/u{user_id}.csv")
ENCODING = "utf-8"
DOWNLOAD_PAGE = (
    "the riiid/ednet repository (https://github.com/riiid/ednet): EdNet-KT1 from "
    "http://bit.ly/ednet-kt1 and the contents from http://bit.ly/ednet-content"
)
COLUMNS = ("timestamp", "solving_id", "question_id", "user_answer", "elapsed_time")
QUESTION_COLUMNS = (
    "question_id", "bundle_id", "explanation_id", "correct_answer", "part", "tags",
    "deployed_at",
)  # fmt: skip
FRAME_COLUMNS = (
    "user_id", "order_id", "timestamp", "question_id", "tag", "part", "correct", "start_month",
)  # fmt: skip
# The frame's dtypes: compact, as the full KT1 has 95 million rows.
_DTYPES = {
    "user_id": np.int64, "order_id": np.int32, "timestamp": np.int64, "question_id": np.int32,
    "tag": np.int32, "part": np.int8, "correct": np.int8, "start_month": np.int32,
}  # fmt: skip
_CHUNK = 4096
_USER_FILE = re.compile(r"u(\d+)\.csv")
_QUESTION = re.compile(r"q(\d+)")
_ANSWERS = {"": 0, "a": 1, "b": 2, "c": 3, "d": 4}  # 0 = empty (skipped).
_MAX_TIMESTAMP = 4_102_444_800_000  # 2100-01-01 in Unix ms; valid timestamps are in [1, this).
_NO_TAG = -1  # The tag of a question with none.


def read_ednet_kt1(
    path: str | os.PathLike,
    *,
    max_users: int | None = None,
    strict: bool = False,
    verbose: bool = True,
    progress_every: int = 10_000,
) -> pd.DataFrame:
    """Reads an EdNet KT1 directory one user file at a time, handling its quirks.

    Streaming: the user files are read one by one into compact arrays (34 bytes per
    kept row, merged every few thousand users). The full KT1, about 95 million rows,
    needs about 3.5 GB; at the 8 us per row measured on generated files that is
    roughly 15-20 minutes of one core, plus the file system's time for 784,309 files.
    To build a subset, pass `max_users=N`: the first N user files in sorted FILE-NAME
    order (string order: 'u1.csv' < 'u10.csv' < 'u2.csv').

    What is done with each quirk (DATA.md; where the real files disagree, trust them):
      * an empty `user_answer` (a question of a bundle submitted without a response)
        is kept and counted WRONG, as `user_answer == correct_answer` says: the
        learner saw the question and did not answer it right (attrs['empty_answers']);
      * a question whose `tags` is `-1` or empty has no skill: its rows are dropped
        and counted (attrs['no_tag_rows']);
      * the skill (column `tag`) is the FIRST of a question's tags;
      * a malformed user-file row (a field count that differs from the header's, a
        `timestamp` that is not an integer in [1, 2100-01-01 in ms), a non-integer
        `solving_id` or `elapsed_time`, a `question_id` not of the form q<integer> or
        NOT IN questions.csv, a `user_answer` other than a-d or empty) and a malformed
        questions.csv row (field count, question_id, a `correct_answer` other than a-d,
        a `part` outside 1-7, `tags` that are not `;`-separated integers, a repeated
        question_id) are skipped; (file relative to the root, physical line number
        (1 = the header), reason) is kept in attrs['malformed'] and summarised on
        stdout; with strict=True the first one raises instead;
      * each user's rows are put in (timestamp, line) order; `order_id` is the rank
        in that order (0, 1, ...);
      * `start_month` (the start cohort, EdNet having no school field) is the UTC
        calendar month, as YYYYMM, of the user's earliest timestamp among the user's
        well-formed rows (no-tag rows included).

    Args:
      path: the root directory holding `KT1/` and `contents/questions.csv`.
      max_users: read only the first this many user files (file-name order); None = all.
      strict: raise on the first malformed row instead of skipping it.
      verbose: print progress every `progress_every` user files and a summary.
      progress_every: user files between progress lines.

    Returns:
      A DataFrame with FRAME_COLUMNS: user_id (int64, from the file name), order_id
      (int32), timestamp (int64, ms), question_id (int32, the integer of q<integer>),
      tag (int32, the question's first tag), part (int8, 1-7), correct (int8, 0/1),
      start_month (int32, YYYYMM); users in file-name order (not re-sorted, to
      stream), each user's rows by order_id; index 0..n-1. attrs holds 'path',
      'user_files' (read), 'rows' (data rows read from them), 'empty_answers',
      'no_tag_rows' and 'malformed' (a list of (file, line, reason)).

    Raises:
      FileNotFoundError: naming the expected file (or directory) and the download page.
      ValueError: naming the column and the file if a column is missing; naming the
        file and ENCODING if a file is not utf-8; (strict=True) naming the file and
        line of the first malformed row; for max_users < 1.
    """
    root = pathlib.Path(path)
    if max_users is not None and max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}.")
    lookup, malformed = _read_questions(root, strict)
    names = _user_files(root, max_users)
    state = {"rows": 0, "empty_answers": 0, "no_tag_rows": 0, "malformed": malformed}
    chunks, pending = [], []  # Per-user arrays are merged every _CHUNK users.
    for i, name in enumerate(names, 1):
        pending.append(_read_user(root, name, lookup, strict, state))
        if len(pending) == _CHUNK:
            chunks.append(_concat(pending))
            pending = []
        if verbose and i % progress_every == 0:
            print(f"EdNet KT1: {i}/{len(names)} user files read, {state['rows']} rows")
    df = pd.DataFrame(_concat(chunks + pending))
    df.attrs = {"path": str(root), "user_files": len(names), **state}
    if verbose:
        _print_summary(df)
    return df


def _concat(parts: list[dict]) -> dict:
    return {c: np.concatenate([p[c] for p in parts]).astype(dtype) for c, dtype in _DTYPES.items()}


def _missing(root: pathlib.Path, name: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"No EdNet file {name} under {root}. Get the files from {DOWNLOAD_PAGE}; unzip "
        f"them so that the root holds {FILE_NAMES[1]} (one file per user) and "
        f"{QUESTIONS_FILE}, and pass the root (or use it as the manual directory)."
    )


def _user_files(root: pathlib.Path, max_users: int | None) -> list[str]:
    """The user file names in sorted order, the first max_users of them."""
    kt1 = root / KT1_DIR
    if not kt1.is_dir():
        raise _missing(root, FILE_NAMES[1])
    with os.scandir(kt1) as entries:
        names = sorted(e.name for e in entries if _USER_FILE.fullmatch(e.name))
    if not names:
        raise _missing(root, FILE_NAMES[1])
    return names[:max_users]


def _records(path: pathlib.Path, root: pathlib.Path, columns: tuple[str, ...]):
    """Yields ({column: index}, header width) of a file, then (line number, fields) per row.

    Errors name the file: a missing column, or bytes that are not ENCODING anywhere in it.
    """
    try:
        with open(path, encoding=ENCODING, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            for column in columns:
                if column not in header:
                    raise ValueError(
                        f"{path}: the header has no column {column!r} (needed: {columns}); "
                        f"is this an EdNet file ({path.relative_to(root)})?"
                    )
            yield {c: header.index(c) for c in columns}, len(header)
            for fields in reader:
                yield reader.line_num, fields
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not {ENCODING} ({e.reason} at byte {e.start} of a block); EdNet files "
            f"are {ENCODING} (ASCII). Was the file re-encoded?"
        ) from e


def _skip(state_malformed: list, where: str, line: int, reason: str, strict: bool) -> None:
    if strict:
        raise ValueError(f"{where}, line {line}: malformed row ({reason}).")
    state_malformed.append((where, line, reason))


def _read_questions(root: pathlib.Path, strict: bool) -> tuple[dict, list]:
    """({question number: (first tag or _NO_TAG, part, answer code)}, malformed rows)."""
    path = root / QUESTIONS_FILE
    if not path.is_file():
        raise _missing(root, QUESTIONS_FILE)
    lookup, malformed = {}, []
    records = _records(path, root, QUESTION_COLUMNS)
    index, width = next(records)
    for line, fields in records:
        reason, value = _parse_question(fields, width, index, lookup)
        if reason is None:
            lookup[value[0]] = value[1:]
        else:
            _skip(malformed, QUESTIONS_FILE, line, reason, strict)
    return lookup, malformed


def _parse_question(fields: list[str], width: int, index: dict, lookup: dict):
    """(None, (number, tag, part, answer)) for a good questions.csv row, else (reason, None)."""
    if len(fields) != width:
        return f"{len(fields)} fields, the header has {width}", None
    get = lambda c: fields[index[c]].strip()
    match = _QUESTION.fullmatch(get("question_id"))
    if not match:
        return f"question_id {get('question_id')!r} is not q<integer>", None
    number = int(match.group(1))
    if number in lookup:
        return f"question_id {get('question_id')!r} is repeated", None
    if get("correct_answer") not in ("a", "b", "c", "d"):
        return f"correct_answer {get('correct_answer')!r} is not a-d", None
    if get("part") not in ("1", "2", "3", "4", "5", "6", "7"):
        return f"part {get('part')!r} is not 1-7", None
    tags = get("tags").split(";")
    if not all(common.is_int(t.strip()) for t in tags) and get("tags") != "":
        return f"tags {get('tags')!r} are not ';'-separated integers", None
    first = int(tags[0]) if get("tags") else _NO_TAG
    first = _NO_TAG if first < 0 else first
    return None, (number, first, int(get("part")), _ANSWERS[get("correct_answer")])


def _read_user(root: pathlib.Path, name: str, lookup: dict, strict: bool, state: dict) -> dict:
    """One user file as compact arrays of FRAME_COLUMNS (rows with a tag, in time order)."""
    where = f"{KT1_DIR}/{name}"
    values = []  # (timestamp, line, question number, answer code) of well-formed rows.
    records = _records(root / where, root, COLUMNS)
    index, width = next(records)
    for line, fields in records:
        state["rows"] += 1
        reason = _parse_interaction(fields, width, index, lookup, values, line)
        if reason is not None:
            _skip(state["malformed"], where, line, reason, strict)
    user = int(_USER_FILE.fullmatch(name).group(1))
    if not values:
        return {c: np.zeros(0, dtype) for c, dtype in _DTYPES.items()}
    ts, line, question, answer = (np.array(v, np.int64) for v in zip(*values, strict=True))
    tag, part, key = (np.array([lookup[q][j] for q in question], np.int64) for j in range(3))
    state["empty_answers"] += int(np.sum((answer == 0) & (tag >= 0)))
    state["no_tag_rows"] += int(np.sum(tag < 0))
    month = ts.min().astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    order = np.lexsort((line, ts))
    order = order[tag[order] >= 0]
    return {
        "user_id": np.full(len(order), user),
        "order_id": np.arange(len(order)),
        "timestamp": ts[order],
        "question_id": question[order],
        "tag": tag[order],
        "part": part[order],
        "correct": (answer[order] == key[order]).astype(np.int8),
        "start_month": np.full(len(order), (month // 12 + 1970) * 100 + month % 12 + 1),
    }


def _parse_interaction(
    fields: list[str], width: int, index: dict, lookup: dict, values: list, line: int
) -> str | None:
    """Appends one user-file row's values to `values`; returns why it is malformed, or None."""
    if len(fields) != width:
        return f"{len(fields)} fields, the header has {width}"
    ts = fields[index["timestamp"]].strip()
    if not ts.isdigit():
        return f"timestamp {ts!r} is not an integer"
    if not 1 <= int(ts) < _MAX_TIMESTAMP:
        return f"timestamp {ts} is out of range (before 1970 or after 2100)"
    for column in ("solving_id", "elapsed_time"):
        if not common.is_int(fields[index[column]].strip()):
            return f"{column} {fields[index[column]].strip()!r} is not an integer"
    question = fields[index["question_id"]].strip()
    match = _QUESTION.fullmatch(question)
    if not match:
        return f"question_id {question!r} is not q<integer>"
    if int(match.group(1)) not in lookup:
        return f"question_id {question!r} is not in {QUESTIONS_FILE}"
    answer = fields[index["user_answer"]].strip()
    if answer not in _ANSWERS:
        return f"user_answer {answer!r} is not a-d or empty"
    values.append((int(ts), line, int(match.group(1)), _ANSWERS[answer]))
    return None


def _print_summary(df: pd.DataFrame) -> None:
    a = df.attrs
    malformed = a["malformed"]
    print(
        f"EdNet KT1: read {a['rows']} rows of {a['user_files']} user files in {a['path']}; "
        f"kept {len(df)} interactions of {df['user_id'].nunique()} users in "
        f"{df['start_month'].nunique()} start months; {a['empty_answers']} empty answers "
        f"counted wrong; dropped {a['no_tag_rows']} rows of questions with no tag, "
        f"{common.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in common.malformed_details(malformed):
        print(line, file=sys.stdout)
