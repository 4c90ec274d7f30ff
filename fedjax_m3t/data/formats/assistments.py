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
"""The ASSISTments 2009-2010 skill builder file: a generator, a reader, and KT windows.

The real file is `skill_builder_data_corrected.csv` from the ASSISTments data page
("2009-2010 ASSISTment Data", https://sites.google.com/site/assistmentsdata/). It is
latin-1 (ISO-8859-1), comma-separated with a header row, one row per (problem
attempt, skill): a problem tagged with several skills repeats its row, with the same
`order_id`, once per skill. The columns are COLUMNS, in that order.

`write_assistments2009` writes a file of the same layout from a seeded latent-student
model, so the pipeline is tested end to end without the real data:

  Global: `num_skills` skills with scattered ids (as in the real file, not 1..K),
  names from SKILL_NAMES (one is 'Équations', so the encoding matters), and per skill k
  the Bayesian Knowledge Tracing parameters learn_k ~ U(0.1, 0.3),
  guess_k ~ U(0.1, 0.3), slip_k ~ U(0.05, 0.15) and a difficulty d_k ~ N(0, 1).
  School c: ability mean m_c ~ N(0, 0.7^2), a lognormal number of students
  (mean `students_per_school`, sigma 0.5, at least 2) and a curriculum, a random
  60% of the skills.
  Student i: ability a_i = m_c + N(0, 1). The student works through 3-8 skill
  builders (assignments) on curriculum skills, in random order. In each, problems
  come until three in a row are right or 10 were tried (the skill builder rule).
  Per skill the student starts mastered with probability sigmoid(a_i - d_k); an
  unmastered student answers right with probability guess_k, a mastered one with
  1 - slip_k, and after every problem an unmastered student learns the skill with
  probability learn_k (so mastery grows with practice).
  Quirks of the real file, reproduced: 10% of the problems are tagged with a second
  skill (a repeated row, same order_id, the first row carrying the skill that drove
  the response); 2% of the problems have no skill (empty skill_id and skill_name);
  answer texts may hold commas (quoted fields); rows are in order_id order, which
  interleaves the students.

`read_assistments2009` reads such a file (real or generated), see its docstring for
how each quirk is handled, and `sequences` cuts each student's history into
fixed-length knowledge-tracing windows.
"""

import csv
import math
import os
import pathlib
import sys

import numpy as np
import pandas as pd

from fedjax_m3t.data.formats import report

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
SKILL_NAMES = (
    "Équations", "Box and Whisker", "Circle Graph", "Histogram as Table or Graph",
    "Number Line", "Scatter Plot", "Stem and Leaf Plot", "Table", "Venn Diagram", "Mean",
    "Median", "Mode", "Range", "Counting Methods", "Probability of Two Distinct Events",
    "Probability of a Single Event", "Interior Angles Figures with More than 3 Sides",
    "Interior Angles Triangle", "Congruence", "Complementary and Supplementary Angles",
    "Angles on Parallel Lines Cut by a Transversal", "Pythagorean Theorem",
    "Nets of 3D Figures", "Unit Conversion Within a System", "Effect of Changing Dimensions",
    "Area Rectangle", "Area Trapezoid", "Area Triangle", "Area Circle",
    "Circumference", "Perimeter of a Polygon", "Reading a Ruler or Scale",
    "Calculations with Similar Figures", "Conversion of Fraction Decimals Percents",
    "Equivalent Fractions", "Ordering Fractions", "Division Fractions",
    "Multiplication Fractions", "Addition and Subtraction Fractions",
    "Ordering Integers", "Order of Operations All", "Absolute Value",
)  # fmt: skip

# Generator constants (see the module docstring).
_SCHOOL_ABILITY_SD = 0.7
_SIZE_SIGMA = 0.5
_CURRICULUM_FRACTION = 0.6
_BUILDERS_PER_STUDENT = (3, 8)
_MAX_PROBLEMS, _STREAK = 10, 3
_SECOND_SKILL_PROB, _NO_SKILL_PROB = 0.1, 0.02
_FIRST_ORDER_ID, _FIRST_USER_ID = 33_000_000, 70_000


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def write_assistments2009(
    directory: str | os.PathLike,
    *,
    num_schools: int = 6,
    students_per_school: int = 40,
    num_skills: int = 24,
    seed: int = 0,
) -> pathlib.Path:
    """Writes a synthetic `skill_builder_data_corrected.csv` in the real layout.

    See the module docstring for the generative model and the quirks reproduced.

    >>> import tempfile
    >>> path = write_assistments2009(tempfile.mkdtemp(), num_schools=2, students_per_school=3)
    >>> path.name, read_assistments2009(path, verbose=False).columns.tolist()[:3]
    ('skill_builder_data_corrected.csv', ['order_id', 'user_id', 'school_id'])

    Args:
      directory: where to write (created if missing).
      num_schools: schools (school_id values).
      students_per_school: mean students per school (lognormal sizes, at least 2).
      num_skills: skills, at most len(SKILL_NAMES).
      seed: the only source of randomness.

    Returns:
      The path of the written file.

    Raises:
      ValueError: for num_skills out of [2, len(SKILL_NAMES)] or num_schools < 1.
    """
    if not 2 <= num_skills <= len(SKILL_NAMES) or num_schools < 1:
        raise ValueError(
            f"Need 2 <= num_skills <= {len(SKILL_NAMES)} and num_schools >= 1; "
            f"got num_skills={num_skills}, num_schools={num_schools}."
        )
    rng = np.random.default_rng(seed)
    skills = _draw_skills(rng, num_skills)
    attempts = []  # (time, row fields without order_id) per problem.
    user_id = _FIRST_USER_ID
    for c in range(num_schools):
        school = {
            "school_id": 5000 + 17 * c,
            "teacher_id": 20000 + 100 * c,
            "ability": _SCHOOL_ABILITY_SD * rng.normal(),
            "curriculum": rng.choice(
                num_skills, size=max(2, round(_CURRICULUM_FRACTION * num_skills)), replace=False
            ),
        }
        size = students_per_school * math.exp(_SIZE_SIGMA * rng.normal() - _SIZE_SIGMA**2 / 2)
        for _ in range(max(2, round(size))):
            attempts.extend(_student_attempts(rng, skills, school, user_id))
            user_id += 1
    # Problems are logged in time order across students; order_id follows time.
    attempts.sort(key=lambda a: a[0])
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    with open(path, "w", encoding=ENCODING, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for order, (_, rows) in enumerate(attempts):
            for row in rows:
                writer.writerow([_FIRST_ORDER_ID + 3 * order, *row])
    return path


def _draw_skills(rng: np.random.Generator, num_skills: int) -> dict[str, np.ndarray]:
    """Per-skill ids (scattered, like the real ones), names and BKT parameters."""
    return {
        "id": np.sort(rng.choice(np.arange(1, 400), size=num_skills, replace=False)),
        "name": np.array(SKILL_NAMES[:num_skills], dtype=object)[rng.permutation(num_skills)],
        "learn": rng.uniform(0.1, 0.3, num_skills),
        "guess": rng.uniform(0.1, 0.3, num_skills),
        "slip": rng.uniform(0.05, 0.15, num_skills),
        "difficulty": rng.normal(size=num_skills),
    }


def _student_attempts(
    rng: np.random.Generator, skills: dict, school: dict, user_id: int
) -> list[tuple[float, list[list]]]:
    """One student's problems: (time, [rows without order_id]) in the student's order.

    Each row holds the COLUMNS after order_id; a problem has 1 row, or 2 when it is
    tagged with a second skill.
    """
    ability = school["ability"] + rng.normal()
    curriculum = school["curriculum"]
    num_builders = min(len(curriculum), rng.integers(*_BUILDERS_PER_STUDENT, endpoint=True))
    time = rng.uniform(0, 1000)
    class_id = 10000 + school["school_id"] + int(rng.integers(3))
    out, opportunity = [], {}
    for k in rng.choice(curriculum, size=num_builders, replace=False):
        mastered = rng.random() < _sigmoid(ability - skills["difficulty"][k])
        streak = 0
        for position in range(1, _MAX_PROBLEMS + 1):
            untagged = rng.random() < _NO_SKILL_PROB
            p_right = 1 - skills["slip"][k] if mastered else skills["guess"][k]
            right = int(rng.random() < (0.5 if untagged else p_right))
            if not untagged:
                mastered = mastered or rng.random() < skills["learn"][k]
                streak = streak + 1 if right else 0
            time += rng.exponential(2.0)
            tags = [None] if untagged else [k]
            if not untagged and rng.random() < _SECOND_SKILL_PROB:
                tags.append(rng.choice(curriculum[curriculum != k]))
            base = _row(rng, skills, school, user_id, class_id, k, right, position)
            rows = []
            for tag in tags:
                opportunity[tag] = opportunity.get(tag, 0) + 1
                skill = ("", "") if tag is None else (int(skills["id"][tag]), skills["name"][tag])
                count = "" if tag is None else opportunity[tag]
                rows.append(base[:15] + list(skill) + base[15:26] + [opportunity[tag], count])
            out.append((time, rows))
            if streak >= _STREAK:
                break
    return out


def _row(
    rng: np.random.Generator,
    skills: dict,
    school: dict,
    user_id: int,
    class_id: int,
    builder: int,
    right: int,
    position: int,
) -> list:
    """The COLUMNS after order_id of one problem attempt, except the skill and opportunity.

    The caller inserts (skill_id, skill_name) after the first 15 values and appends
    (opportunity, opportunity_original), once per skill the problem is tagged with.
    """
    sequence_id = 5000 + int(skills["id"][builder])
    problem_id = 80000 + 100 * int(skills["id"][builder]) + int(rng.integers(100))
    attempts = 1 if right else int(rng.integers(1, 4))
    hints = 0 if right else int(rng.integers(0, 3))
    choose = rng.random() < 0.4
    answer = f"{rng.integers(1, 20)},{rng.integers(1, 20)}" if rng.random() < 0.1 else ""
    answer = answer or str(int(rng.integers(1, 100)))
    return [
        40000 + class_id + sequence_id,  # assignment_id
        user_id,
        problem_id // 2,  # assistment_id
        problem_id,
        1,  # original
        right,
        attempts,
        int(rng.lognormal(9.5, 0.8)),  # ms_first_response
        "tutor",
        "choose_1" if choose else "algebra",
        sequence_id,
        class_id,
        position,
        "MasterySection",
        sequence_id,  # base_sequence_id
        school["teacher_id"],
        school["school_id"],
        hints,
        3,  # hint_total
        int(rng.integers(1000, 60000)),  # overlap_time
        30000 + int(skills["id"][builder]),  # template_id
        int(rng.integers(100000, 200000)) if choose else "",  # answer_id
        answer,
        int(hints > 0 and attempts == 1),  # first_action
        "" if hints == 0 else int(hints == 3),  # bottom_hint
    ]


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
        if not report.is_int(text):
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
    if skill and not report.is_int(skill):
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
        f"kept), {report.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in report.malformed_details(malformed):
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
