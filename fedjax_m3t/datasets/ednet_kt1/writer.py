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
"""Writes a seeded EdNet KT1 directory in the real layout.

`write_ednet_kt1` writes a directory of the layout of
`fedjax_m3t.datasets.ednet_kt1.reader` from a seeded latent-student model, so the
pipeline is tested end to end without the real data:

  Questions: for each part 1-7, `questions_per_part` questions in bundles (parts 1, 2
  and 5: one question per bundle; parts 3, 4, 6 and 7: 2-4), consecutive question ids
  within a bundle, bundle_id = explanation_id number. `num_tags` tags with scattered ids
  in 1..300 are dealt round-robin to the 7 parts; a question's FIRST tag is drawn from
  its part's tags (the skill), followed by 0-3 other tags. Each first tag k has BKT
  parameters learn_k ~ U(0.02, 0.1) (TOEIC skills are learned slowly), guess_k ~
  U(0.1, 0.3), slip_k ~ U(0.05, 0.15) and a difficulty d_k ~ N(0, 1). correct_answer
  is uniform over the part's choices (a-c for part 2, a-d otherwise).
  Centre c (a latent school or tutoring centre): ability mean m_c ~ N(0, 0.7^2), a
  lognormal number of students (mean `students_per_centre`, sigma 0.5, at least 2), a
  curriculum (a random 3-7 of the parts) and a start month M_c (distinct months between
  2017-05 and 2019-11): its students start at uniform times within M_c, so start cohorts
  are centres and the natural partition is non-IID.
  Student i: ability a_i = m_c + N(0, 1); 8-25 bundles, practised in sprints of 3-8
  bundles of one curriculum part. Per tag the student starts mastered with probability
  sigmoid(a_i - d_k); an unmastered student answers right with probability guess_k, a
  mastered one with 1 - slip_k, and after every question an unmastered student learns
  the tag with probability learn_k (mastery grows with practice). A wrong answer is a
  uniform wrong choice. Bundles are minutes apart (exponential, mean 5 min) or, with
  probability 0.1, 1-5 days; the questions of a bundle 0.3-1.5 s apart.
  Quirks, about 5% of the rows: 3% have an empty user_answer (a skipped question); 1%
  name a question_id that is not in questions.csv; 0.5% have an empty (bad) timestamp;
  and about 2% of the questions (at least one) have tags `-1` (no tag; answered right
  with probability 0.5).
"""

import csv
import math
import os
import pathlib

import numpy as np

from fedjax_m3t.datasets.ednet_kt1 import reader

# Generator constants (see the module docstring).
_SCHOOL_ABILITY_SD = 0.7
_SIZE_SIGMA = 0.5
_SINGLE_PARTS = (1, 2, 5)
_BUNDLES_PER_STUDENT = (8, 25)
_SPRINT = (3, 8)
_EMPTY_ANSWER, _UNKNOWN_QUESTION, _BAD_TIMESTAMP = 0.03, 0.01, 0.005
_NO_TAG_QUESTIONS = 0.02
_LEARN, _GUESS, _SLIP = (0.02, 0.1), (0.1, 0.3), (0.05, 0.15)
_FIRST_MONTH, _NUM_MONTHS = (2017, 5), 31  # 2017-05 .. 2019-11.


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def write_ednet_kt1(
    directory: str | os.PathLike,
    *,
    num_centres: int = 6,
    students_per_centre: int = 30,
    questions_per_part: int = 24,
    num_tags: int = 28,
    seed: int = 0,
) -> pathlib.Path:
    """Writes a synthetic EdNet KT1 directory (`KT1/u*.csv`, `contents/questions.csv`).

    See the module docstring for the generative model and the quirks reproduced.

    >>> import tempfile
    >>> root = write_ednet_kt1(tempfile.mkdtemp(), num_centres=2, students_per_centre=3)
    >>> sorted(p.name for p in root.iterdir())
    ['KT1', 'contents']
    >>> reader.read_ednet_kt1(root, verbose=False).columns.tolist()[:3]
    ['user_id', 'order_id', 'timestamp']

    Args:
      directory: the root to write into (created if missing).
      num_centres: latent centres, each with its own start month (at most 31).
      students_per_centre: mean students per centre (lognormal sizes, at least 2).
      questions_per_part: questions of each of the 7 parts (at least 4).
      num_tags: distinct tags (7 to 300).
      seed: the only source of randomness.

    Returns:
      `directory` as a Path.

    Raises:
      ValueError: for num_centres outside [1, 31], questions_per_part < 4 or num_tags
        outside [7, 300].
    """
    if not (1 <= num_centres <= _NUM_MONTHS and questions_per_part >= 4 and 7 <= num_tags <= 300):
        raise ValueError(
            f"Need 1 <= num_centres <= {_NUM_MONTHS}, questions_per_part >= 4 and "
            f"7 <= num_tags <= 300; got {num_centres}, {questions_per_part}, {num_tags}."
        )
    rng = np.random.default_rng(seed)
    root = pathlib.Path(directory)
    questions, tags = _draw_questions(rng, questions_per_part, num_tags)
    _write_csv(root / reader.QUESTIONS_FILE, reader.QUESTION_COLUMNS, questions["rows"])
    months = np.sort(rng.choice(_NUM_MONTHS, size=num_centres, replace=False))
    mean_log = math.log(students_per_centre) - _SIZE_SIGMA**2 / 2
    num_students = [max(2, round(rng.lognormal(mean_log, _SIZE_SIGMA))) for _ in range(num_centres)]
    user_ids = rng.choice(np.arange(1, 900_000), size=sum(num_students), replace=False)
    unknown = int(questions["max_id"]) + 1000  # Retired questions: ids above every real one.
    u = 0
    for c in range(num_centres):
        centre = {
            "ability": _SCHOOL_ABILITY_SD * rng.normal(),
            "parts": rng.choice(np.arange(1, 8), size=rng.integers(3, 8), replace=False),
            "month": months[c],
        }
        for _ in range(num_students[c]):
            rows = _student_rows(rng, questions, tags, centre, unknown)
            _write_csv(root / reader.KT1_DIR / f"u{user_ids[u]}.csv", reader.COLUMNS, rows)
            u += 1
    return root


def _write_csv(path: pathlib.Path, header: tuple[str, ...], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=reader.ENCODING, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _draw_questions(rng: np.random.Generator, per_part: int, num_tags: int) -> tuple[dict, dict]:
    """The questions table (rows, and per part the bundles) and the tags' BKT parameters."""
    tag_ids = np.sort(rng.choice(np.arange(1, 301), size=num_tags, replace=False))
    dealt = tag_ids[rng.permutation(num_tags)]
    part_tags = {p: dealt[p - 1 :: 7] for p in range(1, 8)}
    tags = {
        int(t): {
            "learn": rng.uniform(*_LEARN),
            "guess": rng.uniform(*_GUESS),
            "slip": rng.uniform(*_SLIP),
            "difficulty": rng.normal(),
        }
        for t in tag_ids
    }
    rows, bundles, qid, bid = [], {p: [] for p in range(1, 8)}, int(rng.integers(1, 500)), 1
    total = 7 * per_part
    no_tag = set(rng.choice(total, size=max(1, round(_NO_TAG_QUESTIONS * total)), replace=False))
    for p in range(1, 8):
        made = 0
        while made < per_part:
            size = 1 if p in _SINGLE_PARTS else int(min(rng.integers(2, 5), per_part - made))
            bundle = []
            for _ in range(size):
                first = int(rng.choice(part_tags[p]))
                others = rng.choice(
                    tag_ids[tag_ids != first], size=rng.integers(0, 4), replace=False
                )
                tag_text = ";".join(str(t) for t in [first, *others])
                if len(rows) in no_tag:
                    first, tag_text = None, "-1"
                answer = "abcd"[rng.integers(3 if p == 2 else 4)]
                deployed = 1_490_000_000_000 + int(rng.integers(0, 10**10))
                rows.append([f"q{qid}", f"b{bid}", f"e{bid}", answer, p, tag_text, deployed])
                bundle.append((qid, first, answer))
                qid += 1
            bundles[p].append(bundle)
            made += size
            qid, bid = qid + int(rng.integers(0, 3)), bid + int(rng.integers(1, 3))
    return {"rows": rows, "bundles": bundles, "max_id": qid}, tags


def _month_start_ms(month: int) -> tuple[int, int]:
    """(first ms, length in ms) of month number `month` after _FIRST_MONTH."""
    m = (_FIRST_MONTH[0] - 1970) * 12 + _FIRST_MONTH[1] - 1 + int(month)
    start = np.datetime64(m, "M").astype("datetime64[ms]").astype(np.int64)
    end = np.datetime64(m + 1, "M").astype("datetime64[ms]").astype(np.int64)
    return int(start), int(end - start)


def _student_rows(
    rng: np.random.Generator, questions: dict, tags: dict, centre: dict, unknown: int
) -> list[list]:
    """One student's KT1 rows, in time order, quirks included."""
    ability = centre["ability"] + rng.normal()
    start, length = _month_start_ms(centre["month"])
    time = start + int(rng.integers(0, length))
    mastered, rows, solving_id = {}, [], 0
    left = int(rng.integers(*_BUNDLES_PER_STUDENT, endpoint=True))
    while left > 0:
        part = int(rng.choice(centre["parts"]))
        for _ in range(min(left, int(rng.integers(*_SPRINT, endpoint=True)))):
            bundle = questions["bundles"][part][rng.integers(len(questions["bundles"][part]))]
            solving_id += 1
            left -= 1
            elapsed = 1000 * int(rng.integers(10, 30) * len(bundle))
            for qid, tag, answer in bundle:
                rows.append(_answer_row(rng, tags, mastered, ability, tag, answer, part))
                rows[-1][:3] = [time, solving_id, f"q{qid}"]
                rows[-1][4] = elapsed
                time += int(rng.integers(300, 1500))
            gap = rng.uniform(1, 5) * 86_400_000 if rng.random() < 0.1 else rng.exponential(3e5)
            time += int(gap)
    for row in rows:  # Quirks.
        r = rng.random()
        if r < _EMPTY_ANSWER:
            row[3] = ""
        elif r < _EMPTY_ANSWER + _UNKNOWN_QUESTION:
            row[2] = f"q{unknown + int(rng.integers(100))}"
        elif r < _EMPTY_ANSWER + _UNKNOWN_QUESTION + _BAD_TIMESTAMP:
            row[0] = ""
    return rows


def _answer_row(
    rng: np.random.Generator,
    tags: dict,
    mastered: dict,
    ability: float,
    tag: int | None,
    answer: str,
    part: int,
) -> list:
    """[timestamp, solving_id, question_id, user_answer, elapsed_time] with the answer set.

    Updates the student's mastery of `tag` (BKT); a question with no tag is a coin flip.
    """
    if tag is None:
        right = rng.random() < 0.5
    else:
        bkt = tags[tag]
        if tag not in mastered:
            mastered[tag] = rng.random() < _sigmoid(ability - bkt["difficulty"])
        right = rng.random() < (1 - bkt["slip"] if mastered[tag] else bkt["guess"])
        mastered[tag] = mastered[tag] or rng.random() < bkt["learn"]
    choices = "abc" if part == 2 else "abcd"
    given = answer if right else rng.choice([c for c in choices if c != answer])
    return [None, None, None, str(given), None]
