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
"""The ScienceQA files: their format, a reader, and the text of a question.

The real data is the ScienceQA release of the lupantech/ScienceQA repository
(https://github.com/lupantech/ScienceQA, https://scienceqa.github.io; CC BY-NC-SA
4.0): 21,208 multiple-choice science questions of grades 1-12, about half with an
image. Its layout, reproduced by the generator:

  problems.json     one UTF-8 JSON object {pid: problem}, pids "1", "2", ...; a
                    problem has the fields COLUMNS, in that order: question (str),
                    choices (list of 2-5 str), answer (int index into choices), hint
                    (str, often ""), image ("image.png" or null), task, grade
                    ("grade1".."grade12"), subject (one of SUBJECTS), topic,
                    category, skill, lecture, solution (str) and split ("train",
                    "val" or "test").
  pid_splits.json   {"train": [pid, ...], "val": [...], "test": [...], "trainval",
                    "minitrain", "minival", "minitest": [...]}.
  images/{split}/{pid}/image.png   the image of an image question (RGB PNGs of
                    various sizes).

`read_scienceqa` reads a directory (real, or written by
`fedjax_m3t.datasets.scienceqa.writer`), see its docstring for how each quirk is
handled; `question_text` joins a question's parts into the text modality.
"""

import json
import os
import pathlib
import re
import sys

import numpy as np

from fedjax_m3t.datasets import common

pd = common.require("pandas")
Image = common.require("PIL.Image")

FILE_NAMES = ("problems.json", "pid_splits.json")
PROBLEMS_FILE, SPLITS_FILE = FILE_NAMES
IMAGE_PATH = "images/{split}/{pid}/{image}"
ENCODING = "utf-8"
DOWNLOAD_PAGE = (
    "the ScienceQA repository (https://github.com/lupantech/ScienceQA: data/scienceqa/"
    "problems.json and pid_splits.json, the images via its tools/download.sh; "
    "see https://scienceqa.github.io)"
)
COLUMNS = (
    "question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic",
    "category", "skill", "lecture", "solution", "split",
)  # fmt: skip
# The fields the reader needs; a field missing from every problem is an error.
NEEDED_COLUMNS = (
    "question", "choices", "answer", "hint", "image", "grade", "subject", "topic",
    "category", "skill", "lecture", "split",
)  # fmt: skip
SPLITS = ("train", "val", "test")
SUBJECTS = ("language science", "natural science", "social science")
GRADE_BANDS = ("grades1-4", "grades5-8", "grades9-12")
MIN_CHOICES, MAX_CHOICES = 2, 5
LETTERS = "ABCDE"


def question_text(
    question: str, hint: str, choices: list[str] | tuple[str, ...], lecture: str = ""
) -> str:
    """The text modality of a question: its parts behind markers, choices lettered.

    An empty hint (or lecture) is left out.

    >>> question_text('Which is a gas?', '', ['steam', 'rock'])
    'question: Which is a gas? options: (A) steam (B) rock'
    >>> question_text('Q?', 'Read.', ['x', 'y'], lecture='L.')
    'question: Q? context: Read. options: (A) x (B) y lecture: L.'
    """
    parts = [f"question: {question}"]
    if hint:
        parts.append(f"context: {hint}")
    parts.append("options: " + " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)))
    if lecture:
        parts.append(f"lecture: {lecture}")
    return " ".join(parts)


def read_scienceqa(
    path: str | os.PathLike,
    *,
    image_size: int = 28,
    strict: bool = False,
    verbose: bool = True,
) -> pd.DataFrame:
    """Reads a ScienceQA directory (or its problems.json), handling its quirks.

    What is done with each quirk (DATA.md; where the real files disagree, trust them):
      * problems.json is decoded as UTF-8; a field that is missing from EVERY problem
        is an error, one missing from some problems makes those malformed;
      * a malformed problem (not an object, a missing needed field, choices not a
        list of 2-5 strings, an answer that is not an integer index into the choices,
        a grade not 'grade1'..'grade12', a subject not in SUBJECTS, a split not in
        SPLITS, a non-string question / hint / lecture / topic / category / skill,
        or a split that pid_splits.json contradicts) is skipped; the physical line
        number of its pid in problems.json (1 = the opening brace) and the reason are
        kept in attrs['malformed'] and summarised on stdout; with strict=True the
        first one raises instead;
      * a null hint or lecture is read as "";
      * pid_splits.json is optional (the split field is authoritative); when present,
        each problem's split must list its pid;
      * an image question's PNG (images/{split}/{pid}/image.png) is read with PIL:
        transparency is flattened onto white (some real images are RGBA or
        palette PNGs), converted to grey-scale and resized (bilinear) to
        image_size x image_size. A missing or unreadable image keeps the question
        without its image (has_image False); it is counted in attrs['missing_images']
        as (pid, reason) and summarised;
      * the problems are sorted by pid (numerically: pids are "1", "2", ...).

    Args:
      path: the directory holding problems.json (and pid_splits.json, images/), or
        the path of problems.json.
      image_size: S, the side of the grey-scale images.
      strict: raise on the first malformed problem instead of skipping it.
      verbose: print a one-line summary of what was dropped.

    Returns:
      A DataFrame, one row per kept problem, with the columns pid (str), question,
      choices (tuple of str), num_choices, answer, hint, lecture, grade (int64,
      1..12), subject, topic, category, skill, split, has_image (bool) and pixels
      (uint8 [S, S] arrays, zeros without an image), index 0..n-1. attrs holds
      'path', 'problems' (read), 'malformed' (a list of (line, reason)),
      'missing_images' (a list of (pid, reason)) and 'image_size'.

    Raises:
      FileNotFoundError: naming problems.json and where to download it.
      ValueError: naming the file and the encoding if it is not UTF-8; naming the file
        and the line if it is not a JSON object; naming the field and the file if a
        needed field is missing from every problem; (strict=True) naming the line of
        the first malformed problem.
    """
    path = pathlib.Path(path)
    directory = path.parent if path.name == PROBLEMS_FILE else path
    problems_path = directory / PROBLEMS_FILE
    if not problems_path.is_file():
        raise FileNotFoundError(
            f"No ScienceQA {PROBLEMS_FILE} at {problems_path}. Download {PROBLEMS_FILE} and "
            f"{SPLITS_FILE} (and the images) from {DOWNLOAD_PAGE} and pass their directory "
            "(or put them in the manual directory)."
        )
    entries = _json_entries(_read_text(problems_path), problems_path)
    _check_fields(entries, problems_path)
    listed = _pid_splits(directory)
    rows, malformed, missing = [], [], []
    for line, pid, problem in entries:
        reason = _check_problem(problem, listed.get(pid))
        if reason is not None:
            if strict:
                raise ValueError(f"{problems_path}, line {line}: malformed problem {pid!r} "
                                 f"({reason}).")  # fmt: skip
            malformed.append((line, f"problem {pid!r}: {reason}"))
            continue
        pixels, why = _image(directory, pid, problem, image_size)
        if why is not None:
            missing.append((pid, why))
        rows.append(_row(pid, problem, pixels, image_size))
    df = pd.DataFrame(rows, columns=_OUT_COLUMNS)
    order = sorted(range(len(df)), key=lambda i: _pid_key(df["pid"].iloc[i]))
    df = df.iloc[order].reset_index(drop=True)
    df = df.astype({"num_choices": np.int64, "answer": np.int64, "grade": np.int64})
    df["has_image"] = df["has_image"].astype(bool)
    df.attrs = {
        "path": str(problems_path),
        "problems": len(entries),
        "malformed": malformed,
        "missing_images": missing,
        "image_size": image_size,
    }
    if verbose:
        _print_summary(df)
    return df


_OUT_COLUMNS = (
    "pid", "question", "choices", "num_choices", "answer", "hint", "lecture", "grade",
    "subject", "topic", "category", "skill", "split", "has_image", "pixels",
)  # fmt: skip
_STRING_FIELDS = ("question", "topic", "category", "skill")
_GRADE = re.compile(r"grade([1-9]|1[0-2])")
_SPACE = re.compile(r"\s*")


def _read_text(path: pathlib.Path) -> str:
    try:
        return path.read_bytes().decode(ENCODING)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not {ENCODING}-encoded ({e.reason} at byte {e.start}); ScienceQA's "
            f"{path.name} is {ENCODING} JSON."
        ) from e


def _json_entries(text: str, path: pathlib.Path) -> list[tuple[int, str, object]]:
    """(line of the pid, pid, value) of each top-level key of a JSON object, in file order."""
    decoder = json.JSONDecoder()
    entries, line, counted = [], 1, 0

    def fail(pos: int, what: str):
        at = text.count("\n", 0, pos) + 1
        raise ValueError(f"{path}, line {at}: {what}; expected one JSON object {{pid: problem}}.")

    try:
        pos = _SPACE.match(text, 0).end()
        if text[pos : pos + 1] != "{":
            fail(pos, "not a JSON object")
        pos = _SPACE.match(text, pos + 1).end()
        while text[pos : pos + 1] != "}":
            line += text.count("\n", counted, pos)
            counted = pos
            key, pos = decoder.raw_decode(text, pos)
            pos = _SPACE.match(text, pos).end()
            if not isinstance(key, str) or text[pos : pos + 1] != ":":
                fail(pos, "a key is not a string followed by ':'")
            value, pos = decoder.raw_decode(text, _SPACE.match(text, pos + 1).end())
            entries.append((line, key, value))
            pos = _SPACE.match(text, pos).end()
            if text[pos : pos + 1] == ",":
                pos = _SPACE.match(text, pos + 1).end()
            elif text[pos : pos + 1] != "}":
                fail(pos, "expected ',' or '}'")
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from e
    return entries


def _check_fields(entries: list, path: pathlib.Path) -> None:
    """ValueError naming a needed field that no problem has."""
    seen = set()
    for _, _, problem in entries:
        if isinstance(problem, dict):
            seen.update(problem)
    for column in NEEDED_COLUMNS:
        if entries and column not in seen:
            raise ValueError(
                f"{path}: no problem has the field {column!r} (needed: {NEEDED_COLUMNS}); "
                f"is this ScienceQA's {PROBLEMS_FILE}?"
            )


def _pid_splits(directory: pathlib.Path) -> dict[str, set[str]]:
    """pid -> the splits of SPLITS that pid_splits.json lists it under ({} if no file)."""
    path = directory / SPLITS_FILE
    if not path.is_file():
        return {}
    try:
        lists = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from e
    listed = {}
    for split in SPLITS:
        for pid in lists.get(split, []) if isinstance(lists, dict) else []:
            listed.setdefault(str(pid), set()).add(split)
    return listed


def _check_problem(problem: object, listed: set[str] | None) -> str | None:
    """Why a problem is malformed, or None."""
    if not isinstance(problem, dict):
        return f"a {type(problem).__name__}, not an object"
    for column in NEEDED_COLUMNS:
        if column not in problem:
            return f"no field {column!r}"
    choices, answer = problem["choices"], problem["answer"]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        return "choices is not a list of strings"
    if not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
        return f"{len(choices)} choices, not {MIN_CHOICES}-{MAX_CHOICES}"
    if isinstance(answer, bool) or not isinstance(answer, int):
        return f"answer {answer!r} is not an integer"
    if not 0 <= answer < len(choices):
        return f"answer {answer} is out of range for {len(choices)} choices"
    if not isinstance(problem["grade"], str) or not _GRADE.fullmatch(problem["grade"]):
        return f"grade {problem['grade']!r} is not grade1..grade12"
    if problem["subject"] not in SUBJECTS:
        return f"subject {problem['subject']!r} is not one of {SUBJECTS}"
    if problem["split"] not in SPLITS:
        return f"split {problem['split']!r} is not one of {SPLITS}"
    for column in _STRING_FIELDS:
        if not isinstance(problem[column], str):
            return f"{column} is not a string"
    for column in ("hint", "lecture"):
        if problem[column] is not None and not isinstance(problem[column], str):
            return f"{column} is not a string"
    if listed is not None and problem["split"] not in listed:
        return f"split {problem['split']!r}, but {SPLITS_FILE} lists it under {sorted(listed)}"
    return None


def _image(
    directory: pathlib.Path, pid: str, problem: dict, size: int
) -> tuple[np.ndarray | None, str | None]:
    """(uint8 [size, size] grey pixels or None, why an expected image is missing or None)."""
    name = problem["image"]
    if not name:
        return None, None
    path = directory / IMAGE_PATH.format(split=problem["split"], pid=pid, image=name)
    if not path.is_file():
        return None, f"no file {path}"
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(white, image.convert("RGBA"))
            grey = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(grey, np.uint8), None
    except (OSError, ValueError) as e:
        return None, f"unreadable image {path} ({e})"


def _row(pid: str, problem: dict, pixels: np.ndarray | None, size: int) -> tuple:
    """One output row, in _OUT_COLUMNS order; zero pixels without an image."""
    return (
        pid,
        problem["question"],
        tuple(problem["choices"]),
        len(problem["choices"]),
        problem["answer"],
        problem["hint"] or "",
        problem["lecture"] or "",
        int(problem["grade"][len("grade") :]),
        problem["subject"],
        problem["topic"],
        problem["category"],
        problem["skill"],
        problem["split"],
        pixels is not None,
        np.zeros((size, size), np.uint8) if pixels is None else pixels,
    )


def _pid_key(pid: str) -> tuple:
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def _print_summary(df: pd.DataFrame) -> None:
    a = df.attrs
    malformed, missing = a["malformed"], a["missing_images"]
    print(
        f"ScienceQA: read {a['problems']} problems of {a['path']}; kept {len(df)} "
        f"({int(df['has_image'].sum())} with an image); {len(missing)} image questions "
        f"kept without their missing image; dropped {common.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in common.malformed_details(malformed):
        print(line, file=sys.stdout)
    for pid, reason in missing[:5]:
        print(f"  problem {pid!r}: {reason}", file=sys.stdout)
