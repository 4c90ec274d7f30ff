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
"""Writes a seeded ASSISTments 2009-2010 skill builder file in the real layout.

`write_assistments2009` writes a file of the layout of
`fedjax_m3t.datasets.assistments2009.reader` from a seeded latent-student model, so the
pipeline is tested end to end without the real data:

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
"""

import csv
import math
import os
import pathlib

import numpy as np

from fedjax_m3t.datasets.assistments2009 import reader

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
    >>> path.name, reader.read_assistments2009(path, verbose=False).columns.tolist()[:3]
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
    path = directory / reader.FILE_NAME
    with open(path, "w", encoding=reader.ENCODING, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(reader.COLUMNS)
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

    Each row holds the reader's COLUMNS after order_id; a problem has 1 row, or 2 when it is
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
