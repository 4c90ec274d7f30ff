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
"""Writes a seeded ScienceQA directory in the real layout.

`write_scienceqa` writes a directory of the layout of
`fedjax_m3t.datasets.scienceqa.reader` from a seeded latent model of question
difficulty and of signal (ScienceQA has no students):

  Skills: SKILLS, ScienceQA-like skills (subject, topic, category, skill, question)
  each with a FIXED ordered list of 2-5 options, as in many real skills ("Which tense
  does the sentence use?": past / present / future tense), and 1-2 cue words per
  option ('yesterday' -> past tense). A skill is taught in some grade bands
  (grades 1-4, 5-8, 9-12) and has a difficulty d_k ~ N(0, 0.5^2).
  Grade band b (the institutions): difficulty mean m_b = 0.4 (b - 1) + N(0, 0.7^2),
  a share of the questions ~ lognormal(0, 0.5) (normalised), an image fraction
  `image_fraction` + U(-0.15, 0.15) and a curriculum (its skills).
  Question: band b by share, grade uniform in the band, skill k uniform in the band's
  curriculum, answer uniform over the skill's options (so each index is equally
  likely given the number of choices), difficulty delta = m_b + d_k + N(0, 0.5^2),
  official split train / val / test with probabilities 0.6 / 0.2 / 0.2 (as in the
  real 12,726 / 4,241 / 4,241).
  Text signal: the hint names a cue word: of the correct option with probability
  sigmoid(1.5 - delta), else of a uniformly drawn option. An image question has
  such a cue only with probability 0.5 ("Look at the picture."), and hint "" else.
  Image signal (image questions): a bar chart of random size (160-320 x 120-240
  pixels, RGB, light background, an axis line) with five bar slots across the width; slots
  0..n-1 (n choices) hold bars, the one at slot `s` tallest, s = the answer with
  probability sigmoid(2.5 - delta), else uniform over the n slots.
  So text alone predicts the answer on text questions but often not on image
  questions, and a model using both modalities beats text-only.
  The lecture describes every option's cue words (no signal about the answer); the
  solution names the answer. One hint holds '°C', so the encoding matters.
"""

import json
import math
import os
import pathlib

import numpy as np

from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.scienceqa import reader

Image = common.require("PIL.Image")

# (subject, topic, category, skill, grade bands, question, ((option, cue words), ...)).
SKILLS = (
    ("language science", "verbs", "Verb tense", "Identify past, present, and future tense",
     (0, 1), "Which tense does the sentence use?",
     (("past tense", ("yesterday", "ago")), ("present tense", ("today", "now")),
      ("future tense", ("tomorrow", "soon")))),
    ("language science", "grammar", "Sentence types", "Identify the sentence type",
     (1, 2), "What kind of sentence is this?",
     (("declarative", ("statement", "fact")), ("interrogative", ("question", "wonder")),
      ("imperative", ("command", "please")), ("exclamatory", ("wow", "amazing")))),
    ("language science", "figurative-language", "Figures of speech",
     "Identify the figure of speech", (2,), "Which figure of speech is used in this text?",
     (("simile", ("like",)), ("metaphor", ("became",)), ("hyperbole", ("million",)),
      ("onomatopoeia", ("buzz",)), ("alliteration", ("sally",)))),
    ("natural science", "physics", "States of matter", "Identify solids, liquids, and gases",
     (0, 1), "Which state of matter is this?",
     (("a solid", ("rock", "ice")), ("a liquid", ("juice", "milk")),
      ("a gas", ("steam", "air")))),
    ("natural science", "biology", "Classification", "Classify animals into groups",
     (0, 1), "Select the animal group that this animal belongs to.",
     (("a mammal", ("fur", "whiskers")), ("a bird", ("feathers", "beak")),
      ("a fish", ("gills", "fins")), ("a reptile", ("scales", "shell")),
      ("an amphibian", ("tadpole", "moist")))),
    ("natural science", "physics", "Magnets", "Predict if magnets will attract or repel",
     (1,), "Will these magnets attract or repel each other?",
     (("attract", ("opposite", "different")), ("repel", ("same", "matching")))),
    ("natural science", "chemistry", "Physical and chemical change",
     "Identify physical and chemical changes", (1, 2), "What kind of change is this?",
     (("a physical change", ("melting", "cutting")),
      ("a chemical change", ("burning", "rusting")))),
    ("natural science", "biology", "Genes to traits", "Identify genotype and phenotype",
     (2,), "Is this a genotype or a phenotype?",
     (("a genotype", ("alleles", "bb")), ("a phenotype", ("color", "appearance")))),
    ("natural science", "earth-science", "Weather and climate",
     "Distinguish weather and climate", (0, 1, 2), "Does this passage describe the weather "
     "or the climate?", (("weather", ("storm", "afternoon")), ("climate", ("usually", "decades")))),
    ("social science", "geography", "Geography", "Read a map: cardinal directions",
     (0,), "Which direction is the ocean from the city?",
     (("north", ("arctic", "polar")), ("south", ("equator", "tropical")),
      ("east", ("sunrise", "atlantic")), ("west", ("sunset", "pacific")))),
    ("social science", "economics", "Goods and services", "Identify goods and services",
     (0, 1), "Is this a good or a service?",
     (("a good", ("toy", "sweater")), ("a service", ("haircut", "repair")))),
    ("social science", "economics", "Supply and demand", "Identify a surplus or a shortage",
     (2,), "Will there be a surplus or a shortage?",
     (("a surplus", ("plenty", "extra")), ("a shortage", ("scarce", "few")))),
    ("social science", "civics", "Government", "Identify the branches of government",
     (1, 2), "Which branch of government is described?",
     (("legislative", ("congress", "laws")), ("executive", ("president", "veto")),
      ("judicial", ("court", "judges")))),
)  # fmt: skip
_FILLER = (
    "the", "class", "students", "read", "passage", "notes", "about", "a", "small", "town",
    "and", "their", "teacher", "looked", "at", "it", "carefully", "during", "lesson",
)  # fmt: skip

# Generator constants (see the module docstring).
_BAND_DIFFICULTY_SD, _BAND_TREND, _SKILL_DIFFICULTY_SD, _QUESTION_SD = 0.7, 0.4, 0.5, 0.5
_SIZE_SIGMA = 0.5
_SPLIT_PROBS = (0.6, 0.2, 0.2)
_TEXT_CUE_BIAS, _IMAGE_BIAS, _IMAGE_CUE_PROB = 1.5, 2.5, 0.5
_SLOTS = 5


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def write_scienceqa(
    directory: str | os.PathLike,
    *,
    num_questions: int = 300,
    image_fraction: float = 0.5,
    seed: int = 0,
) -> pathlib.Path:
    """Writes a synthetic ScienceQA directory in the real layout.

    See the module docstring for the generative model.

    >>> import tempfile
    >>> path = write_scienceqa(tempfile.mkdtemp(), num_questions=8)
    >>> path.name, len(reader.read_scienceqa(path, verbose=False))
    ('problems.json', 8)

    Args:
      directory: where to write problems.json, pid_splits.json and images/ (created
        if missing).
      num_questions: questions (pids "1".."num_questions").
      image_fraction: mean share of image questions, in [0, 1].
      seed: the only source of randomness.

    Returns:
      The path of problems.json.

    Raises:
      ValueError: for num_questions < 1 or image_fraction outside [0, 1].
    """
    if num_questions < 1 or not 0.0 <= image_fraction <= 1.0:
        raise ValueError(
            f"Need num_questions >= 1 and 0 <= image_fraction <= 1; got {num_questions}, "
            f"{image_fraction}."
        )
    rng = np.random.default_rng(seed)
    skill_difficulty = _SKILL_DIFFICULTY_SD * rng.normal(size=len(SKILLS))
    bands = []
    for b in range(len(reader.GRADE_BANDS)):
        bands.append({
            "difficulty": _BAND_TREND * (b - 1) + _BAND_DIFFICULTY_SD * rng.normal(),
            "share": math.exp(_SIZE_SIGMA * rng.normal()),
            "image": float(np.clip(image_fraction + rng.uniform(-0.15, 0.15), 0, 1)),
            "skills": [k for k, s in enumerate(SKILLS) if b in s[4]],
        })  # fmt: skip
    share = np.array([b["share"] for b in bands])
    directory = pathlib.Path(directory)
    problems, splits = {}, {s: [] for s in reader.SPLITS}
    for i in range(num_questions):
        pid = str(i + 1)
        b = int(rng.choice(len(bands), p=share / share.sum()))
        band = bands[b]
        k = int(rng.choice(band["skills"]))
        delta = band["difficulty"] + skill_difficulty[k] + _QUESTION_SD * rng.normal()
        has_image = bool(rng.random() < band["image"])
        problem = _problem(rng, k, b, delta, has_image)
        problems[pid] = problem
        splits[problem["split"]].append(pid)
        if has_image:
            answer, n = problem["answer"], len(problem["choices"])
            right = rng.random() < _sigmoid(_IMAGE_BIAS - delta)
            slot = answer if right else int(rng.integers(n))
            path = directory / reader.IMAGE_PATH.format(
                split=problem["split"], pid=pid, image="image.png"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            _bar_chart(rng, n, slot).save(path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / reader.PROBLEMS_FILE
    path.write_text(json.dumps(problems, indent=4, ensure_ascii=False), encoding=reader.ENCODING)
    quarter = {s: pids[: max(1, len(pids) // 4)] if pids else [] for s, pids in splits.items()}
    pid_splits = {
        **splits,
        "trainval": splits["train"] + splits["val"],
        **{f"mini{s}": quarter[s] for s in reader.SPLITS},
    }
    (directory / reader.SPLITS_FILE).write_text(json.dumps(pid_splits), encoding=reader.ENCODING)
    return path


def _problem(rng: np.random.Generator, k: int, b: int, delta: float, has_image: bool) -> dict:
    """One problem's fields (reader.COLUMNS, in order) for skill k in grade band b."""
    subject, topic, category, skill, _, question, options = SKILLS[k]
    n = len(options)
    answer = int(rng.integers(n))
    hint = ""
    if not has_image or rng.random() < _IMAGE_CUE_PROB:
        cued = answer if rng.random() < _sigmoid(_TEXT_CUE_BIAS - delta) else int(rng.integers(n))
        cue = str(rng.choice(options[cued][1]))
        filler = " ".join(rng.choice(_FILLER, size=int(rng.integers(2, 7))))
        hint = f"Read the text. {filler.capitalize()}: {cue}."
        if rng.random() < 0.05:
            hint += " It was 5 °C outside."
    if has_image:
        question = f"Look at the picture. {question}"
    lecture = " ".join(f"Words like {', '.join(cues)} suggest {o}." for o, cues in options)
    return {
        "question": question,
        "choices": [o for o, _ in options],
        "answer": answer,
        "hint": hint,
        "image": "image.png" if has_image else None,
        "task": "closed choice",
        "grade": f"grade{int(rng.integers(4 * b + 1, 4 * b + 5))}",
        "subject": subject,
        "topic": topic,
        "category": category,
        "skill": skill,
        "lecture": lecture,
        "solution": f"The answer is {options[answer][0]}.",
        "split": str(rng.choice(reader.SPLITS, p=_SPLIT_PROBS)),
    }


def _bar_chart(rng: np.random.Generator, n: int, slot: int) -> Image.Image:
    """An RGB bar chart of random size: bars in slots 0..n-1 of 5, slot `slot` tallest."""
    width, height = int(rng.integers(160, 321)), int(rng.integers(120, 241))
    pixels = np.broadcast_to(rng.integers(200, 256, size=3), (height, width, 3)).copy()
    pixels[int(rng.uniform(0.9, 0.97) * height), :] = 60  # The axis.
    step = width / _SLOTS
    for j in range(n):
        top = rng.uniform(0.1, 0.2) if j == slot else rng.uniform(0.55, 0.85)
        left, right = int((j + 0.2) * step), int((j + 0.8) * step)
        pixels[int(top * height) :, left:right] = rng.integers(0, 110, size=3)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")
