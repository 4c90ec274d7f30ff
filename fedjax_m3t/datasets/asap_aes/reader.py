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
"""The ASAP-AES essay-scoring training file: its format and a reader.

The real file is `training_set_rel3.tsv` of the Hewlett Foundation "Automated
Student Assessment Prize" essay-scoring competition (https://www.kaggle.com/c/asap-aes).
It is ISO-8859-1, TAB-separated with a header row, one row per essay: 12,976 essays
of 8 essay sets (prompts) written by US students in grades 7-10. The columns are
COLUMNS, in that order; `domain1_score` (the resolved score) ranges per essay set as
in SCORE_RANGES. Named entities in the essays are anonymised as '@PERSON1',
'@CAPS2', '@LOCATION1', '@NUM3', ... Fields follow csv quoting (a field holding a
double quote is wrapped in double quotes, inner quotes doubled), the way the csv
module and pandas read the file with a TAB delimiter. The competition's terms allow
non-commercial research use only; the file is not redistributed.

`read_asap_aes` reads such a file (real, or written by
`fedjax_m3t.datasets.asap_aes.writer`); see its docstring for how each quirk is handled.
"""

import csv
import io
import os
import pathlib
import sys

import numpy as np

from fedjax_m3t.datasets import common

pd = common.require("pandas")

FILE_NAME = "training_set_rel3.tsv"
ENCODING = "ISO-8859-1"
DOWNLOAD_PAGE = (
    'the Kaggle page of the Hewlett Foundation "Automated Essay Scoring" competition '
    "(https://www.kaggle.com/c/asap-aes/data)"
)
COLUMNS = (
    "essay_id", "essay_set", "essay", "rater1_domain1", "rater2_domain1", "rater3_domain1",
    "domain1_score", "rater1_domain2", "rater2_domain2", "domain2_score",
    "rater1_trait1", "rater1_trait2", "rater1_trait3", "rater1_trait4", "rater1_trait5",
    "rater1_trait6", "rater2_trait1", "rater2_trait2", "rater2_trait3", "rater2_trait4",
    "rater2_trait5", "rater2_trait6", "rater3_trait1", "rater3_trait2", "rater3_trait3",
    "rater3_trait4", "rater3_trait5", "rater3_trait6",
)  # fmt: skip
# The columns the reader needs; every one must be in the header.
NEEDED_COLUMNS = ("essay_id", "essay_set", "essay", "domain1_score", "domain2_score")
# Official domain1_score range (lo, hi) of each essay set.
SCORE_RANGES = {1: (2, 12), 2: (1, 6), 3: (0, 3), 4: (0, 3), 5: (0, 4), 6: (0, 4), 7: (0, 30),
                8: (0, 60)}  # fmt: skip
DOMAIN2_RANGE = (1, 4)  # Set 2's language-conventions score.
ESSAY_SETS = tuple(SCORE_RANGES)


def read_asap_aes(
    path: str | os.PathLike, *, strict: bool = False, verbose: bool = True
) -> pd.DataFrame:
    """Reads the ASAP-AES training file, handling its quirks.

    What is done with each quirk (DATA.md; where a real file disagrees, trust it):
      * the file is decoded as ISO-8859-1 (essays hold e.g. 'café'). Every byte
        decodes in ISO-8859-1, so a file re-saved in another encoding is caught by
        its bytes: a byte-order mark, NUL bytes (UTF-16), or non-ASCII text that is
        valid UTF-8 (a re-saved file) raise ValueError;
      * fields are TAB-separated; a field wrapped in double quotes (essays quoting
        someone) is unquoted and its doubled quotes undone (csv quoting);
      * anonymised entities ('@PERSON1', '@CAPS2', ...) are kept as written, and the
        essay's surrounding whitespace is stripped;
      * the trait and rater columns are not used; a row cut short before the end
        of the header, but after the last needed column, is accepted (only empty
        optional fields are missing);
      * an empty `domain2_score` (every set but 2) becomes -1;
      * a malformed row (more fields than the header, or too few to reach a needed
        column; a non-integer `essay_id`; an `essay_set` that is not one of 1..8; a
        `domain1_score` that is not an integer in the set's SCORE_RANGES; a
        non-empty `domain2_score` that is not an integer in 1..4; an empty essay;
        an `essay_id` seen before) is skipped; its physical line number (1 = the
        header) and reason are kept in attrs['malformed'] and summarised on
        stdout; with strict=True the first one raises instead;
      * the rows are sorted by essay_id.

    Args:
      path: the tsv file, or the directory holding it as FILE_NAME.
      strict: raise on the first malformed row instead of skipping it.
      verbose: print a one-line summary of what was dropped.

    Returns:
      A DataFrame with the columns NEEDED_COLUMNS: essay_id, essay_set (int64),
      essay (str), domain1_score, domain2_score (int64, -1 = empty), sorted by
      essay_id, index 0..n-1. attrs holds 'path', 'rows' (data rows read) and
      'malformed' (a list of (line number, reason)).

    Raises:
      FileNotFoundError: naming the expected file name and where to download it.
      ValueError: naming the file and the expected encoding if the file is not
        ISO-8859-1; naming the column and the file if a needed column is missing;
        (strict=True) naming the line of the first malformed row.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"No ASAP-AES file at {path}. Download {FILE_NAME} from {DOWNLOAD_PAGE} and "
            "pass its path (or put it in the manual directory)."
        )
    text = _decode(path)
    values = {c: [] for c in NEEDED_COLUMNS}
    malformed, rows, seen = [], 0, {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = next(reader, [])
    index = _column_index(header, path)
    for fields in reader:
        rows += 1
        reason = _parse_row(fields, len(header), index, values, seen, reader.line_num)
        if reason is None:
            continue
        if strict:
            raise ValueError(f"{path}, line {reader.line_num}: malformed row ({reason}).")
        malformed.append((reader.line_num, reason))
    df = pd.DataFrame(
        {c: np.array(values[c], object if c == "essay" else np.int64) for c in NEEDED_COLUMNS}
    )
    df = df.sort_values("essay_id", kind="stable").reset_index(drop=True)
    df.attrs = {"path": str(path), "rows": rows, "malformed": malformed}
    if verbose:
        _print_summary(df)
    return df


def _decode(path: pathlib.Path) -> str:
    """The file's text as ISO-8859-1; ValueError if its bytes say another encoding."""
    raw = path.read_bytes()
    problem = None
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        problem = "it starts with a Unicode byte-order mark"
    elif b"\x00" in raw:
        problem = "it holds NUL bytes (UTF-16?)"
    elif not raw.isascii():
        try:
            raw.decode("utf-8")
            problem = "its non-ASCII text is UTF-8"
        except UnicodeDecodeError:
            pass
    if problem:
        raise ValueError(
            f"{path}: not {ENCODING} text ({problem}); the ASAP-AES file {FILE_NAME} is "
            f"{ENCODING} (latin-1). Use the file as downloaded, or re-encode it to {ENCODING}."
        )
    return raw.decode(ENCODING)


def _column_index(header: list[str], path: pathlib.Path) -> dict[str, int]:
    """Positions of NEEDED_COLUMNS in the header; ValueError naming a missing one."""
    header = [h.strip() for h in header]
    for column in NEEDED_COLUMNS:
        if column not in header:
            raise ValueError(
                f"{path}: the header has no column {column!r} (needed: {NEEDED_COLUMNS}); "
                f"is this the ASAP-AES training file ({FILE_NAME})?"
            )
    return {c: header.index(c) for c in NEEDED_COLUMNS}


def _parse_row(
    fields: list[str], width: int, index: dict, values: dict, seen: dict, line: int
) -> str | None:
    """Appends one row's needed values to `values`; returns why it is malformed, or None.

    `seen` maps each kept essay_id to its line, to catch repeated ids.
    """
    if len(fields) > width or len(fields) <= max(index.values()):
        return f"{len(fields)} fields, the header has {width}"
    get = {c: fields[i].strip() for c, i in index.items()}
    if not common.is_int(get["essay_id"]):
        return f"essay_id {get['essay_id']!r} is not an integer"
    essay_id = int(get["essay_id"])
    essay_set = int(get["essay_set"]) if common.is_int(get["essay_set"]) else None
    if essay_set not in SCORE_RANGES:
        return f"essay_set {get['essay_set']!r} is not one of {ESSAY_SETS}"
    lo, hi = SCORE_RANGES[essay_set]
    score = get["domain1_score"]
    if not common.is_int(score) or not lo <= int(score) <= hi:
        return f"domain1_score {score!r} is not an integer in set {essay_set}'s range {lo}-{hi}"
    domain2 = get["domain2_score"]
    if domain2 and (
        not common.is_int(domain2) or not DOMAIN2_RANGE[0] <= int(domain2) <= DOMAIN2_RANGE[1]
    ):
        return f"domain2_score {domain2!r} is not empty or an integer in 1-4"
    if not get["essay"]:
        return "empty essay"
    if essay_id in seen:
        return f"essay_id {essay_id} repeats line {seen[essay_id]}"
    seen[essay_id] = line
    values["essay_id"].append(essay_id)
    values["essay_set"].append(essay_set)
    values["essay"].append(get["essay"])
    values["domain1_score"].append(int(score))
    values["domain2_score"].append(int(domain2) if domain2 else -1)
    return None


def _print_summary(df: pd.DataFrame) -> None:
    a = df.attrs
    malformed = a["malformed"]
    print(
        f"ASAP-AES: read {a['rows']} rows of {a['path']}; kept {len(df)} essays in "
        f"{df['essay_set'].nunique()} essay sets; dropped {common.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in common.malformed_details(malformed):
        print(line, file=sys.stdout)
