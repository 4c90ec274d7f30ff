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
"""Writes the seven OULAD files, seeded, in the real layout.

`write_oulad` writes the seven files of `fedjax_m3t.datasets.oulad.reader` from a
seeded latent-student model, so the pipeline is tested end to end without the real
data:

  Module m (the institution): a difficulty d_m ~ N(0, 0.7^2) (a module's students'
  ability mean is -d_m), a lognormal number of students (mean
  `students_per_module`, sigma 0.5, at least 4) shared among 1-3 presentations
  drawn from PRESENTATIONS (J: 262-269 days, B: 234-241 days), and a curriculum:
  its assessment schedule, 4-6 TMAs (and, in 60% of the modules, 3-5 CMAs) due on
  distinct days of [14, length - 20), weights summing to 100 per kind, plus an Exam at the end whose
  `date` is left empty in half of the modules (a quirk of the real file: the exam
  is then on the last day), and 6-12 VLE sites of ACTIVITY_TYPES.
  Student: ability a = -d_m + N(0, 1), engagement e = 0.7 a + 0.7 N(0, 1). 10% of the
  students of a module reuse the id of a student of an earlier module (a student
  registered in several modules). Registration day -|N(60, 30)|, rounded; 1% empty.
  Withdrawal: with probability sigmoid(-1.1 - 1.2 a) the student withdraws on a
  uniformly drawn day of [-20, length): date_unregistration is that day; no clicks
  and no submissions follow.
  Clicks: every week before withdrawal is active with probability sigmoid(1 + e),
  and then holds lognormal(2.5 + 0.6 e, 0.6) clicks split over 1-3 (site, day)
  rows of studentVle; 30% of the students also click in the 2 weeks before the
  start (negative dates).
  Assessments: a student still registered on the due day submits with probability
  sigmoid(1.5 + a); late (1-10 days after the due day) with probability
  sigmoid(-1.5 - 0.7 a), else 0-5 days early; score = clip(round(60 + 12 a
  + N(0, 10)), 0, 100), written '?' with probability 2%; is_banked = 1 for 1%.
  Final result: Withdrawn if withdrawn; otherwise s = (c + x) / 2, c the weighted
  mean of the student's TMA/CMA scores (weights of assessments.csv, 0 for a missing
  submission) and x the exam score (0 if not sat), decides: Distinction if
  s >= 80, Pass if s >= 45, else Fail (scores written '?' still count).
  Demographics: gender, region (REGIONS), highest_education, imd_band (IMD_BANDS,
  note '10-20' without '%', as in the real file), age_band, disability are drawn
  with weak dependence on the ability (education and imd band shift with it);
  imd_band is '?' for 3% of the students. num_of_prev_attempts ~ Poisson(0.2),
  studied_credits in {30, 60, 90, 120}.
"""

import csv
import math
import os
import pathlib

import numpy as np

from fedjax_m3t.datasets.oulad import reader

MODULES = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG")
PRESENTATIONS = ("2013B", "2013J", "2014B", "2014J")
REGIONS = (
    "East Anglian Region", "East Midlands Region", "Ireland", "London Region", "North Region",
    "North Western Region", "Scotland", "South East Region", "South Region",
    "South West Region", "Wales", "West Midlands Region", "Yorkshire Region",
)  # fmt: skip
EDUCATION = (
    "No Formal quals", "Lower Than A Level", "A Level or Equivalent", "HE Qualification",
    "Post Graduate Qualification",
)  # fmt: skip
IMD_BANDS = ("0-10%", "10-20", "20-30%", "30-40%", "40-50%", "50-60%", "60-70%", "70-80%",
             "80-90%", "90-100%")  # fmt: skip
AGE_BANDS = ("0-35", "35-55", "55<=")
ACTIVITY_TYPES = ("resource", "oucontent", "forumng", "quiz", "url", "homepage", "subpage")

# Generator constants (see the module docstring).
_MODULE_SD, _SIZE_SIGMA, _SHARED_ID_PROB = 0.7, 0.5, 0.1
_WITHDRAW_BIAS, _WITHDRAW_SLOPE = -1.1, -1.2
_DISTINCTION, _PASS = 80.0, 45.0
_FIRST_STUDENT_ID, _FIRST_ASSESSMENT_ID, _FIRST_SITE_ID = 11_000, 1_750, 526_000


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def write_oulad(
    directory: str | os.PathLike,
    *,
    num_modules: int = 7,
    students_per_module: int = 40,
    seed: int = 0,
) -> pathlib.Path:
    """Writes the seven OULAD csv files in the real layout from a latent-student model.

    See the module docstring for the generative model and the quirks reproduced.

    >>> import tempfile
    >>> path = write_oulad(tempfile.mkdtemp(), num_modules=2, students_per_module=5)
    >>> sorted(p.name for p in path.iterdir()) == sorted(reader.FILE_NAMES)
    True

    Args:
      directory: where to write (created if missing).
      num_modules: modules, the first of MODULES (1 to 7).
      students_per_module: mean registrations per module (lognormal, at least 4).
      seed: the only source of randomness.

    Returns:
      The directory.

    Raises:
      ValueError: for num_modules outside [1, 7] or students_per_module < 1.
    """
    if not 1 <= num_modules <= len(MODULES) or students_per_module < 1:
        raise ValueError(
            f"Need 1 <= num_modules <= {len(MODULES)} and students_per_module >= 1; "
            f"got num_modules={num_modules}, students_per_module={students_per_module}."
        )
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in reader.FILE_NAMES}
    ids = {"student": _FIRST_STUDENT_ID, "assessment": _FIRST_ASSESSMENT_ID,
           "site": _FIRST_SITE_ID, "seen": []}  # fmt: skip
    for module in MODULES[:num_modules]:
        _write_module(rng, module, students_per_module, rows, ids)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in reader.FILE_NAMES:
        with open(directory / name, "w", encoding=reader.ENCODING, newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(reader.COLUMNS[name])
            writer.writerows(rows[name])
    return directory


def _write_module(rng, module: str, size_mean: int, rows: dict, ids: dict) -> None:
    """Appends one module's rows (all its presentations) to `rows`."""
    difficulty = _MODULE_SD * rng.normal()
    has_cma = rng.random() < 0.6
    exam_date_missing = rng.random() < 0.5
    size = size_mean * math.exp(_SIZE_SIGMA * rng.normal() - _SIZE_SIGMA**2 / 2)
    size = max(4, round(size))
    k = int(rng.integers(1, 4))
    presentations = sorted(rng.choice(PRESENTATIONS, size=k, replace=False))
    counts = np.bincount(rng.integers(k, size=size), minlength=k)
    module_ids = []
    for presentation, count in zip(presentations, counts, strict=True):
        short = presentation.endswith("B")
        length = int(rng.integers(234, 242) if short else rng.integers(262, 270))
        rows["courses.csv"].append([module, presentation, length])
        schedule = _schedule(rng, module, presentation, length, has_cma, exam_date_missing, ids)
        rows["assessments.csv"].extend(schedule["rows"])
        sites = ids["site"] + np.arange(int(rng.integers(6, 13)))
        ids["site"] += len(sites)
        for site in sites:
            week_from = int(rng.integers(0, 30)) if rng.random() < 0.15 else ""
            week_to = week_from if week_from == "" else week_from + int(rng.integers(0, 3))
            rows["vle.csv"].append(
                [int(site), module, presentation, rng.choice(ACTIVITY_TYPES), week_from, week_to]
            )
        presentation_ids = set()
        for _ in range(int(count)):
            student = _new_student_id(rng, ids, presentation_ids)
            ability = -difficulty + rng.normal()
            _write_student(rng, module, presentation, length, student, ability, schedule, sites,
                           rows)  # fmt: skip
        module_ids.extend(sorted(presentation_ids))
    ids["seen"].extend(module_ids)


def _new_student_id(rng, ids: dict, taken: set) -> int:
    """A fresh id, or (10%) the id of a student of an earlier module, unique per presentation."""
    shared = ids["seen"] and rng.random() < _SHARED_ID_PROB
    student = int(ids["seen"][rng.integers(len(ids["seen"]))]) if shared else None
    if student is None or student in taken:
        student = ids["student"] + int(rng.integers(1, 300))
        ids["student"] = student
    taken.add(student)
    return student


def _schedule(rng, module, presentation, length, has_cma, exam_date_missing, ids) -> dict:
    """The presentation's assessments: rows of assessments.csv and (id, kind, day, weight)."""
    kinds = [("TMA", int(rng.integers(4, 7)))] + ([("CMA", int(rng.integers(3, 6)))] * has_cma)
    items = []
    for kind, n in kinds:
        days = np.sort(rng.choice(np.arange(14, length - 20), size=n, replace=False))
        weights = np.full(n, 100.0 / n).round(1)
        items += [(kind, int(d), float(w)) for d, w in zip(days, weights, strict=True)]
    items.append(("Exam", length, 100.0))
    out = {"rows": [], "items": []}
    for kind, day, weight in sorted(items, key=lambda x: x[1]):
        ids["assessment"] += 1
        written_day = "" if kind == "Exam" and exam_date_missing else day
        out["rows"].append([module, presentation, ids["assessment"], kind, written_day, weight])
        out["items"].append((ids["assessment"], kind, day, weight))
    return out


def _write_student(rng, module, presentation, length, student, ability, schedule, sites, rows):
    """Appends one registration's rows to studentInfo/Registration/Assessment/Vle."""
    engagement = 0.7 * ability + 0.7 * rng.normal()
    registered = -round(abs(rng.normal(60, 30)))
    withdraws = rng.random() < _sigmoid(_WITHDRAW_BIAS + _WITHDRAW_SLOPE * ability)
    leave = int(rng.integers(-20, length)) if withdraws else None
    end = length if leave is None else leave  # Last active day (exclusive).
    # Clicks: per active week, lognormal clicks over 1-3 (site, day) rows.
    first_week = -2 if rng.random() < 0.3 else 0
    for week in range(first_week, math.ceil(length / 7)):
        if 7 * week >= end or rng.random() >= _sigmoid(1.0 + engagement):
            continue
        total = max(1, round(rng.lognormal(2.5 + 0.6 * engagement, 0.6)))
        num_rows = int(rng.integers(1, 4))
        parts = rng.multinomial(total, [1.0 / num_rows] * num_rows)
        for part in parts[parts > 0]:
            day = min(7 * week + int(rng.integers(7)), end - 1)
            site = int(sites[rng.integers(len(sites))])
            rows["studentVle.csv"].append([module, presentation, student, site, day, int(part)])
    # Assessments.
    weighted, total_weight, exam = 0.0, 0.0, 0.0
    for assessment, kind, day, weight in schedule["items"]:
        score = float(np.clip(round(60 + 12 * ability + 10 * rng.normal()), 0, 100))
        still = leave is None or day < leave
        submits = still and rng.random() < _sigmoid(1.5 + ability)
        if kind == "Exam":
            exam = score * submits
        else:
            weighted += weight * score * submits
            total_weight += weight
        if not submits:
            continue
        late = rng.random() < _sigmoid(-1.5 - 0.7 * ability)
        submitted = day + int(rng.integers(1, 11)) if late else day - int(rng.integers(0, 6))
        banked = int(rng.random() < 0.01)
        written = "?" if rng.random() < 0.02 else int(score)
        rows["studentAssessment.csv"].append([assessment, student, submitted, banked, written])
    mean_score = (weighted / max(total_weight, 1.0) + exam) / 2
    if withdraws:
        result = "Withdrawn"
    else:
        result = "Distinction" if mean_score >= _DISTINCTION else "Pass"
        result = result if mean_score >= _PASS else "Fail"
    rows["studentInfo.csv"].append(_info_row(rng, module, presentation, student, ability, result))
    date_registration = "" if rng.random() < 0.01 else registered
    rows["studentRegistration.csv"].append(
        [module, presentation, student, date_registration, "" if leave is None else leave]
    )


def _info_row(rng, module, presentation, student, ability, result) -> list:
    """The studentInfo.csv row: demographics weakly tied to the ability."""
    education = int(np.clip(round(2 + 0.6 * ability + rng.normal()), 0, len(EDUCATION) - 1))
    imd = int(np.clip(round(4.5 + 1.5 * ability + 2.5 * rng.normal()), 0, len(IMD_BANDS) - 1))
    return [
        module,
        presentation,
        student,
        rng.choice(["M", "F"]),
        rng.choice(REGIONS),
        EDUCATION[education],
        "?" if rng.random() < 0.03 else IMD_BANDS[imd],
        rng.choice(AGE_BANDS, p=[0.7, 0.28, 0.02]),
        int(min(rng.poisson(0.2), 6)),
        int(rng.choice([30, 60, 90, 120], p=[0.2, 0.5, 0.2, 0.1])),
        "Y" if rng.random() < 0.1 else "N",
        result,
    ]
