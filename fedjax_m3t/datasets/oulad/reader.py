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
"""The Open University Learning Analytics Dataset (OULAD): its format and a reader.

The real data (CC-BY 4.0) is seven comma-separated, UTF-8 files with a header row,
FILE_NAMES, whose columns are COLUMNS[name], in that order. A student registration
is keyed by (code_module, code_presentation, id_student): seven modules AAA..GGG,
presentations such as 2013J (February 'B' and October 'J' starts). `final_result`
is one of Pass, Fail, Withdrawn, Distinction. Missing values are empty or '?'
(imd_band, score, date_registration, date_unregistration, the exam `date`). Dates
are days relative to the presentation's start and can be negative. studentVle.csv
has about 10.6M rows (one per student, site and day); it is read in chunks.

`read_oulad` reads such a directory (real, or written by
`fedjax_m3t.datasets.oulad.writer`); see its docstring for how each quirk is handled.
It returns an `OuladData`: one row per registration and, per registration, weekly
arrays (clicks, submissions, scores) over WEEKS weeks.
"""

import csv
import dataclasses
import os
import pathlib
import re
import sys
import warnings

import numpy as np

from fedjax_m3t.datasets import common

pd = common.require("pandas")

FILE_NAMES = (
    "courses.csv",
    "assessments.csv",
    "vle.csv",
    "studentInfo.csv",
    "studentRegistration.csv",
    "studentAssessment.csv",
    "studentVle.csv",
)
ENCODING = "utf-8"
DOWNLOAD_PAGE = (
    "the Open University Learning Analytics Dataset page "
    "(https://analyse.kmi.open.ac.uk/open_dataset, CC-BY 4.0)"
)
COLUMNS = {
    "courses.csv": ("code_module", "code_presentation", "module_presentation_length"),
    "assessments.csv": (
        "code_module", "code_presentation", "id_assessment", "assessment_type", "date", "weight",
    ),
    "vle.csv": (
        "id_site", "code_module", "code_presentation", "activity_type", "week_from", "week_to",
    ),
    "studentInfo.csv": (
        "code_module", "code_presentation", "id_student", "gender", "region",
        "highest_education", "imd_band", "age_band", "num_of_prev_attempts", "studied_credits",
        "disability", "final_result",
    ),
    "studentRegistration.csv": (
        "code_module", "code_presentation", "id_student", "date_registration",
        "date_unregistration",
    ),
    "studentAssessment.csv": (
        "id_assessment", "id_student", "date_submitted", "is_banked", "score",
    ),
    "studentVle.csv": (
        "code_module", "code_presentation", "id_student", "id_site", "date", "sum_click",
    ),
}  # fmt: skip
CLASS_NAMES = ("Withdrawn", "Fail", "Pass", "Distinction")  # Label index = position.
WEEKS = 40  # Weeks kept per registration: 280 days cover the longest presentation (269).
MISSING = ("", "?")  # Both mean "missing" in the real files.

# Per file, the parsed type of each needed column: 'str' (non-empty text), 'str?'
# (text, MISSING -> None), 'int', 'int?' (MISSING -> NaN), 'float?', or a tuple of
# allowed values. Columns not listed are read but not checked.
_KINDS = {
    "courses.csv": {"code_module": "str", "code_presentation": "str",
                    "module_presentation_length": "int"},
    "assessments.csv": {"code_module": "str", "code_presentation": "str", "id_assessment": "int",
                        "assessment_type": "str", "date": "int?", "weight": "float?"},
    "studentInfo.csv": {"code_module": "str", "code_presentation": "str", "id_student": "int",
                        "gender": "str", "region": "str", "highest_education": "str",
                        "imd_band": "str?", "age_band": "str", "num_of_prev_attempts": "int",
                        "studied_credits": "int", "disability": "str",
                        "final_result": CLASS_NAMES},
    "studentRegistration.csv": {"code_module": "str", "code_presentation": "str",
                                "id_student": "int", "date_registration": "int?",
                                "date_unregistration": "int?"},
    "studentAssessment.csv": {"id_assessment": "int", "id_student": "int",
                              "date_submitted": "int", "is_banked": (0, 1), "score": "float?"},
    "studentVle.csv": {"code_module": "str", "code_presentation": "str", "id_student": "int",
                       "date": "int", "sum_click": "int"},
}  # fmt: skip
# Value ranges (inclusive) of numeric columns; outside them a row is malformed.
_RANGES = {
    "module_presentation_length": (1, 10_000),
    "num_of_prev_attempts": (0, 1_000),
    "studied_credits": (0, 10_000),
    "score": (0, 100),
    "sum_click": (0, 10**9),
}
_VLE_CHUNK_ROWS = 1_000_000


def week_of(day: np.ndarray, num_weeks: np.ndarray | int) -> np.ndarray:
    """0-based week of a day relative to the start, clipped into [0, num_weeks - 1].

    Negative days (before the start) fall into week 0; days past the last week into
    the last one.

    >>> week_of(np.array([-5, 0, 6, 7, 300]), 40).tolist()
    [0, 0, 0, 1, 39]
    """
    return np.clip(np.floor_divide(day, 7), 0, np.asarray(num_weeks) - 1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class OuladData:
    """What `read_oulad` returns: registrations and their weekly activity.

    Attributes:
      students: one row per registration (see `read_oulad` for the columns), index
        0..n-1, sorted by (code_module, code_presentation, id_student).
      weekly: {name: array [n, WEEKS]} aligned with `students`, week w holding days
        7w..7w+6 relative to the start (earlier days in week 0, later ones in the
        registration's last week, num_weeks - 1):
        'clicks' int64 total clicks; 'submitted_week' int32 per DUE week: -2 no
        assessment due that week, -1 one was due and none of those due was
        submitted, else the week of the earliest submission of one of them; per
        SUBMISSION week: 'submissions' int32 (submitted assessments), 'late' int32
        (submitted after the due day), 'scored' int32 (submissions with a score),
        'score_sum' float64 (sum of their scores).
      attrs: 'directory', 'rows' ({file: data rows read}), 'malformed' (a list of
        (file name, line number, reason), line 1 = the header), 'dropped' ({reason:
        rows dropped, besides malformed ones}), 'missing' ({column: missing values
        kept as missing}).
    """

    students: pd.DataFrame
    weekly: dict[str, np.ndarray]
    attrs: dict


def read_oulad(
    directory: str | os.PathLike, *, strict: bool = False, verbose: bool = True
) -> OuladData:
    """Reads the seven OULAD files, handling their quirks.

    What is done with each quirk (DATA.md; where a real file disagrees, trust it):
      * files are decoded as UTF-8 (a byte-order mark is ignored); fields may be
        quoted, but a row must sit on one line (line numbers count physical lines);
      * '?' and empty fields are missing: imd_band -> None, date_registration /
        date_unregistration / score / an assessment's date -> NaN (counted per
        column in attrs['missing']); an Exam with no date is due on the
        presentation's last day (module_presentation_length), other assessments
        with no date are never due;
      * dates are days relative to the start; they map to weeks with `week_of`
        (negative days into week 0), num_weeks = ceil(length / 7) capped at WEEKS;
      * studentVle.csv is read in chunks of 1M rows and summed per (registration,
        week), so its ~10.6M rows never sit in memory at once; id_site is not used;
      * rows that name no known registration (a studentVle or studentRegistration
        row whose key is not in studentInfo, a studentAssessment row whose
        (assessment's presentation, id_student) is not, or whose id_assessment is
        not in assessments.csv), registrations of a presentation missing from
        courses.csv, and repeated keys (the first kept) are dropped and counted in
        attrs['dropped'];
      * a registration with no studentRegistration row has NaN dates (counted as
        missing);
      * a malformed row (a field count that differs from the header's, a required
        field that is empty, a number that does not parse or is not integral where
        an integer is expected, a value out of range: final_result not in
        CLASS_NAMES, is_banked not 0/1, score outside [0, 100], a negative
        sum_click, credit or attempt count) is skipped; its file, physical line
        number and reason are kept in attrs['malformed'] and summarised on stdout;
        with strict=True the first one raises instead.

    Args:
      directory: the directory holding FILE_NAMES.
      strict: raise on the first malformed row instead of skipping it.
      verbose: print a one-line summary of what was dropped.

    Returns:
      An OuladData. `students` has the columns code_module, code_presentation,
      id_student (int64), gender, region, highest_education, imd_band (str or
      None), age_band, num_of_prev_attempts, studied_credits (int64), disability,
      final_result (str), label (int64 index in CLASS_NAMES), date_registration,
      date_unregistration (float64, NaN = missing), module_presentation_length,
      num_weeks (int64).

    Raises:
      FileNotFoundError: naming the missing file and where to download it.
      ValueError: naming the file and the column if a needed column is missing, the
        file and the encoding if a file is not UTF-8, or (strict=True) the file and
        line of the first malformed row.
    """
    directory = pathlib.Path(directory)
    for name in FILE_NAMES:
        if not (directory / name).is_file():
            raise FileNotFoundError(
                f"No OULAD file {name} in {directory}. Download the seven csv files "
                f"({', '.join(FILE_NAMES)}) from {DOWNLOAD_PAGE} and put them there "
                "(or in the manual directory)."
            )
    log = {"rows": {}, "malformed": [], "dropped": {}, "missing": {}}
    read = lambda name: _read_all(directory / name, strict, log)
    keys = ["code_module", "code_presentation"]
    courses = _dedupe(read("courses.csv"), keys, "courses", log)
    students = _students(read("studentInfo.csv"), read("studentRegistration.csv"), courses, log)
    weekly = _assessment_weeks(students, read("assessments.csv"), read("studentAssessment.csv"),
                               log)  # fmt: skip
    weekly["clicks"] = _click_weeks(students, _read_csv(directory / "studentVle.csv", strict, log),
                                    log)  # fmt: skip
    for name in FILE_NAMES:  # vle.csv is checked for its layout only.
        if name not in log["rows"]:
            list(_read_csv(directory / name, strict, log))
    log["malformed"].sort(key=lambda m: (FILE_NAMES.index(m[0]), m[1]))
    data = OuladData(students=students, weekly=weekly, attrs={"directory": str(directory), **log})
    if verbose:
        _print_summary(data)
    return data


def _read_all(path: pathlib.Path, strict: bool, log: dict) -> pd.DataFrame:
    """A whole (small) file, parsed: the needed columns of its good rows."""
    chunks = list(_read_csv(path, strict, log))
    return (
        pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=_KINDS[path.name])
    )


def _read_csv(path: pathlib.Path, strict: bool, log: dict):
    """Yields parsed chunks of a file (the needed columns, typed); logs malformed rows.

    Every data row is either yielded or logged in log['malformed'] with its physical
    line. Lines with too many fields are reported by pandas (on_bad_lines='warn');
    too few leave the last fields empty, which a required column reports.
    """
    name = path.name
    kinds = _KINDS.get(name, {})
    header = _header(path)
    rows, skipped = 0, []  # skipped: (line, reason) of the lines pandas dropped.
    chunk_rows = _VLE_CHUNK_ROWS if name == "studentVle.csv" else 10**9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            reader = pd.read_csv(path, encoding=ENCODING, dtype=str, keep_default_na=False,
                                 skip_blank_lines=False, on_bad_lines="warn",
                                 chunksize=chunk_rows)  # fmt: skip
            for chunk in reader:
                new = _bad_lines(caught, len(header))
                caught.clear()
                skipped += new
                chunk.columns = header
                reasons = _parse_chunk(chunk, kinds)
                good = np.array([r is None for r in reasons], bool)
                lines = _physical_lines(chunk.index.to_numpy()[~good], skipped)
                bad = np.array(reasons, object)[~good]
                _log(path, [*zip(lines.tolist(), bad, strict=True), *new], strict, log)
                rows += len(chunk)
                yield chunk.loc[good, list(kinds)].reset_index(drop=True)
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{path} is not {ENCODING} text ({e}); is it the original file?"
            ) from e
        new = _bad_lines(caught, len(header))
    _log(path, new, strict, log)
    log["rows"][name] = rows + len(skipped) + len(new)


def _header(path: pathlib.Path) -> list[str]:
    """The header's column names; ValueErrors for a wrong encoding or a missing column."""
    try:
        with open(path, encoding=ENCODING, newline="") as f:
            header = [h.strip().lstrip("\ufeff") for h in next(csv.reader(f), [])]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not {ENCODING} text ({e}); is it the original file?") from e
    for column in COLUMNS[path.name]:
        if column not in header:
            raise ValueError(
                f"{path}: the header has no column {column!r} (expected: "
                f"{COLUMNS[path.name]}); is this the OULAD file {path.name}?"
            )
    return header


def _bad_lines(caught, width: int) -> list[tuple[int, str]]:
    """(line, reason) of the lines pandas skipped, parsed from its ParserWarnings."""
    out = []
    for w in caught:
        for line, saw in re.findall(r"line (\d+): expected \d+ fields, saw (\d+)", str(w.message)):
            out.append((int(line), f"{saw} fields, the header has {width}"))
    return out


def _physical_lines(rows: np.ndarray, skipped: list[tuple[int, str]]) -> np.ndarray:
    """Line numbers (1 = header) of 0-based data rows, given the lines pandas skipped."""
    lines = rows.astype(np.int64) + 2
    for line in sorted(s for s, _ in skipped):
        lines = lines + (lines >= line)
    return lines


def _parse_chunk(chunk: pd.DataFrame, kinds: dict) -> list:
    """Converts the needed columns in place; per row, why it is malformed, or None."""
    reasons = [None] * len(chunk)

    def flag(bad: np.ndarray, column: str, raw: pd.Series, message: str) -> None:
        for i in np.flatnonzero(bad):
            if reasons[i] is None:
                reasons[i] = f"{column} {raw.iloc[i]!r} {message}"

    for column, kind in kinds.items():
        raw = chunk[column].fillna("")
        text = raw.str.strip()
        empty = text.isin(MISSING).to_numpy()
        required = kind == "str" or kind == "int" or isinstance(kind, tuple)
        flag(empty & required, column, raw, "is empty or missing")
        if kind in ("str", "str?"):
            chunk[column] = text.where(~empty, None)
            continue
        if isinstance(kind, tuple) and isinstance(kind[0], str):
            flag(~empty & ~text.isin(kind).to_numpy(), column, raw, f"is not one of {kind}")
            chunk[column] = text
            continue
        number = _to_float(text.where(~empty, None))
        flag(~empty & np.isnan(number), column, raw, "is not a number")
        if isinstance(kind, tuple):
            flag(~np.isnan(number) & ~np.isin(number, kind), column, raw, f"is not one of {kind}")
        elif kind.startswith("int"):
            flag(~np.isnan(number) & (number != np.round(number)), column, raw,
                 "is not an integer")  # fmt: skip
        low, high = _RANGES.get(column, (-np.inf, np.inf))
        flag((number < low) | (number > high), column, raw, f"is outside [{low}, {high}]")
        chunk[column] = number
    return reasons


def _to_float(text: pd.Series) -> np.ndarray:
    """float64 values of numeric text, NaN where missing or unparsable."""
    try:  # Fast path: every value parses (pd.to_numeric is several times slower).
        return text.astype(np.float64).to_numpy(np.float64)
    except (ValueError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(np.float64)


def _log(path: pathlib.Path, entries: list, strict: bool, log: dict) -> None:
    """Records malformed (line, reason) entries in line order; strict raises at the first."""
    for line, reason in sorted(entries):
        if strict:
            raise ValueError(f"{path}, line {line}: malformed row ({reason}).")
        log["malformed"].append((path.name, int(line), reason))


def _count(log: dict, key: str, reason: str, n: int) -> None:
    if n:
        log[key][reason] = log[key].get(reason, 0) + int(n)


def _dedupe(df: pd.DataFrame, keys: list[str], what: str, log: dict) -> pd.DataFrame:
    repeated = df.duplicated(keys, keep="first").to_numpy()
    _count(log, "dropped", f"repeated {what} rows", repeated.sum())
    return df[~repeated]


def _students(info, registration, courses, log) -> pd.DataFrame:
    """studentInfo joined with studentRegistration and courses; see read_oulad."""
    keys = ["code_module", "code_presentation", "id_student"]
    info = _dedupe(info, keys, "studentInfo", log)
    registration = _dedupe(registration, keys, "studentRegistration", log)
    df = info.merge(courses, on=keys[:2], how="left")
    unknown = df["module_presentation_length"].isna().to_numpy()
    _count(log, "dropped", "studentInfo rows of a presentation not in courses.csv", unknown.sum())
    df = df[~unknown].merge(registration, on=keys, how="left")
    orphans = ~registration.set_index(keys).index.isin(df.set_index(keys).index)
    _count(log, "dropped", "studentRegistration rows of no registration", orphans.sum())
    df = df.sort_values(keys, kind="stable").reset_index(drop=True)
    for column in ("id_student", "num_of_prev_attempts", "studied_credits",
                   "module_presentation_length"):  # fmt: skip
        df[column] = df[column].astype(np.int64)
    df["label"] = df["final_result"].map({c: i for i, c in enumerate(CLASS_NAMES)}).astype(np.int64)
    df["num_weeks"] = np.clip(np.ceil(df["module_presentation_length"] / 7), 1, WEEKS).astype(
        np.int64
    )
    for column in ("imd_band", "date_registration", "date_unregistration"):
        _count(log, "missing", column, df[column].isna().sum())
    columns = [*COLUMNS["studentInfo.csv"], "label", "date_registration", "date_unregistration",
               "module_presentation_length", "num_weeks"]  # fmt: skip
    return df[columns]


def _row_of(students: pd.DataFrame, module, presentation, student) -> np.ndarray:
    """Row of `students` of each (module, presentation, id_student); -1 if none."""
    index = pd.MultiIndex.from_frame(students[["code_module", "code_presentation", "id_student"]])
    keys = pd.MultiIndex.from_arrays([module, presentation, np.asarray(student, np.int64)])
    return index.get_indexer(keys)


def _assessment_weeks(students, assessments, submissions, log) -> dict[str, np.ndarray]:
    """The per-week assessment arrays of OuladData.weekly (all but 'clicks')."""
    n = len(students)
    assessments = _dedupe(assessments, ["id_assessment"], "assessments", log)
    lengths = students.drop_duplicates(["code_module", "code_presentation"])
    assessments = assessments.merge(
        lengths[["code_module", "code_presentation", "module_presentation_length", "num_weeks"]],
        on=["code_module", "code_presentation"],
        how="inner",
    )
    exam = assessments["assessment_type"].eq("Exam").to_numpy()
    date = assessments["date"].to_numpy(np.float64)
    _count(log, "missing", "date", np.isnan(date).sum())
    date = np.where(np.isnan(date) & exam, assessments["module_presentation_length"], date)
    assessments = assessments.assign(due=date)
    subs = _dedupe(submissions, ["id_assessment", "id_student"], "studentAssessment", log)
    subs = subs.merge(assessments, on="id_assessment", how="left")
    row = _row_of(students, subs["code_module"], subs["code_presentation"], subs["id_student"])
    _count(log, "dropped", "studentAssessment rows of no registration", (row < 0).sum())
    subs, row = subs[row >= 0], row[row >= 0]
    _count(log, "missing", "score", subs["score"].isna().sum())
    weeks = students["num_weeks"].to_numpy()
    week = week_of(subs["date_submitted"].to_numpy(np.int64), weeks[row])
    due = subs["due"].to_numpy(np.float64)
    score = subs["score"].to_numpy(np.float64)
    flat = lambda values: np.bincount(row * WEEKS + week, values, n * WEEKS).reshape(n, WEEKS)
    out = {
        "submissions": flat(np.ones(len(row))).astype(np.int32),
        "late": flat(subs["date_submitted"].to_numpy() > due).astype(np.int32),
        "scored": flat(~np.isnan(score)).astype(np.int32),
        "score_sum": flat(np.nan_to_num(score)),
    }
    out["submitted_week"] = _submitted_weeks(students, assessments, subs, row, week)
    return out


def _submitted_weeks(students, assessments, subs, row, week) -> np.ndarray:
    """int32 [n, WEEKS]: -2 nothing due, -1 due and not submitted, else submission week."""
    n = len(students)
    out = np.full((n, WEEKS), -2, np.int32)
    due = assessments[~np.isnan(assessments["due"].to_numpy(np.float64))]
    # Every registration of the assessment's presentation has it due.
    pairs = students.reset_index()[["index", "code_module", "code_presentation", "num_weeks"]]
    pairs = pairs.merge(due, on=["code_module", "code_presentation", "num_weeks"])
    due_week = week_of(pairs["due"].to_numpy(np.int64), pairs["num_weeks"].to_numpy())
    out[pairs["index"].to_numpy(), due_week] = -1
    # The earliest submission week per (registration, due week).
    due = subs["due"].to_numpy(np.float64)
    has_due = ~np.isnan(due)
    row, week = row[has_due], week[has_due]
    due_week = week_of(due[has_due].astype(np.int64), students["num_weeks"].to_numpy()[row])
    earliest = np.full((n, WEEKS), WEEKS, np.int32)
    np.minimum.at(earliest, (row, due_week), week.astype(np.int32))
    return np.where(earliest < WEEKS, earliest, out).astype(np.int32)


def _click_weeks(students, chunks, log) -> np.ndarray:
    """int64 [n, WEEKS] clicks per registration and week, summed chunk by chunk."""
    n = len(students)
    weeks = students["num_weeks"].to_numpy()
    clicks = np.zeros(n * WEEKS, np.int64)
    orphans = 0
    for chunk in chunks:
        row = _row_of(students, chunk["code_module"], chunk["code_presentation"],
                      chunk["id_student"])  # fmt: skip
        ok = row >= 0
        orphans += int((~ok).sum())
        week = week_of(chunk["date"].to_numpy(np.int64)[ok], weeks[row[ok]])
        value = chunk["sum_click"].to_numpy(np.int64)[ok]
        clicks += np.bincount(row[ok] * WEEKS + week, value, n * WEEKS).astype(np.int64)
    _count(log, "dropped", "studentVle rows of no registration", orphans)
    return clicks.reshape(n, WEEKS)


def _print_summary(data: OuladData) -> None:
    a, df = data.attrs, data.students
    malformed = a["malformed"]
    dropped = ", ".join(f"{v} {k}" for k, v in a["dropped"].items()) or "no other rows"
    missing = ", ".join(f"{k}: {v}" for k, v in a["missing"].items()) or "none"
    print(
        f"OULAD: read {sum(a['rows'].values())} rows of {a['directory']}; kept {len(df)} "
        f"registrations of {df['id_student'].nunique()} students in "
        f"{df['code_module'].nunique()} modules; dropped {dropped}, "
        f"{common.malformed_summary(malformed)}; missing {missing}",
        file=sys.stdout,
    )
    for line in common.malformed_details(malformed):
        print(line, file=sys.stdout)
