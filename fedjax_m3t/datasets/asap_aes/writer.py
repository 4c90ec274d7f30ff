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
"""Writes a seeded ASAP-AES training file in the real layout.

`write_asap_aes` writes a file of the layout of `fedjax_m3t.datasets.asap_aes.reader`
from a seeded latent-writer model, so the pipeline is tested end to end without the
real data:

  Essay set c (1..8, the institution): a prompt with 12 topic words (TOPICS[c]),
  a writer-ability mean m_c ~ N(0, 0.7^2) and a lognormal number of essays (mean
  `essays_per_set`, sigma 0.5, at least 4). Essay ids are increasing within a set,
  starting at the real file's first id of the set (FIRST_ESSAY_IDS).
  Writer (one per essay): ability a = m_c + N(0, 1) and s = sigmoid(a). The essay
  has round((30 + 120 s) * exp(N(0, 0.25^2))) words (at least 8), in sentences of
  6-14 words; each word is a topic word with probability 0.08 + 0.2 s, an advanced
  word (ADVANCED) with probability 0.01 + 0.15 s, else a common word (COMMON); a
  word is then misspelt with probability 0.3 (1 - s) (a common misspelling from
  MISSPELLINGS when there is one, else two adjacent letters swapped). Quirks:
  each word is an anonymised entity ('@PERSON1', '@CAPS2', '@LOCATION1', '@NUM3',
  ...) with probability 0.03 and a latin-1 word ('café', 'naïve', ...) with
  probability 0.01; 30% of the essays quote one sentence in double quotes. The
  text holds no tab and no newline.
  Raters: two raters score each essay on the set's rater scale RATER_RANGES[c]:
  r = clip(round(lo + (hi - lo) sigmoid(1.5 a + e)), lo, hi), e ~ N(0, 0.4^2)
  independent per rater. domain1_score (a simplification of the real resolution
  rules, kept within the real ranges): sets 1, 7 and 8, the sum r1 + r2; set 2, r1;
  sets 3-6, the higher of r1 and r2. In set 8, when |r1 - r2| > 6 a third rater
  (0-60) resolves the score: rater3_domain1 = domain1_score = r1 + r2 + a
  N(0, 2^2) draw, rounded and clipped. Only set 2 has the second domain (language
  conventions, 1-4): rater1_domain2, rater2_domain2 from the same model, and
  domain2_score = rater1_domain2; the other sets leave those three columns empty.
  Every trait column is written empty (the real file fills some for sets 7 and 8;
  the reader does not use them).
"""

import csv
import math
import os
import pathlib

import numpy as np

from fedjax_m3t.datasets.asap_aes import reader

# Generator constants (see the module docstring).
RATER_RANGES = {1: (1, 6), 2: (1, 6), 3: (0, 3), 4: (0, 3), 5: (0, 4), 6: (0, 4), 7: (0, 15),
                8: (0, 30)}  # fmt: skip
FIRST_ESSAY_IDS = {1: 1, 2: 2978, 3: 5978, 4: 8863, 5: 11827, 6: 14834, 7: 17834, 8: 20716}
TOPICS = {
    1: ("computers", "internet", "technology", "online", "websites", "family", "exercise",
        "nature", "friends", "games", "chat", "screen"),
    2: ("libraries", "censorship", "books", "offensive", "shelves", "music", "movies",
        "magazines", "readers", "removed", "freedom", "parents"),
    3: ("cyclist", "road", "desert", "water", "heat", "hills", "setting", "thirsty", "bike",
        "town", "rough", "journey"),
    4: ("hibiscus", "winter", "spring", "snow", "geese", "test", "ending", "plant", "saeng",
        "mother", "hope", "home"),
    5: ("narciso", "rodriguez", "memoir", "mood", "kitchen", "cuban", "gratitude", "culture",
        "parents", "love", "neighborhood", "warmth"),
    6: ("dirigibles", "mast", "building", "empire", "mooring", "wind", "helium", "builders",
        "obstacles", "roof", "airships", "safety"),
    7: ("patience", "patient", "waited", "line", "waiting", "calm", "mom", "store",
        "understanding", "hours", "tolerant", "complain"),
    8: ("laughter", "laughing", "laugh", "friends", "funny", "joke", "relationship", "smile",
        "story", "together", "humor", "happy"),
}  # fmt: skip
COMMON = (
    "the", "i", "and", "to", "a", "it", "is", "that", "they", "people", "think", "because",
    "this", "of", "in", "would", "be", "can", "my", "we", "you", "have", "when", "was", "not",
    "so", "will", "all", "do", "like", "get", "more", "there", "but", "what", "with", "for",
    "good", "thing", "really", "very", "also", "just", "lot", "some", "their", "believe",
    "don't", "it's", "went",
)  # fmt: skip
ADVANCED = (
    "consequently", "furthermore", "significant", "perspective", "essential", "moreover",
    "demonstrates", "nevertheless", "ultimately", "profound", "perceive", "substantial",
    "emphasize", "evident", "illustrates", "contemplate", "resilience", "determination",
    "inevitably", "whereas", "crucial", "convey", "vivid", "imagery",
)  # fmt: skip
MISSPELLINGS = {
    "because": "becuase", "really": "realy", "people": "poeple", "believe": "beleive",
    "their": "thier", "thing": "thang", "lot": "alot", "would": "wood", "think": "thinck",
    "when": "wen", "there": "ther", "went": "whent", "very": "vary", "also": "allso",
}  # fmt: skip
ENTITIES = ("@PERSON1", "@CAPS2", "@LOCATION1", "@NUM3", "@ORGANIZATION1", "@DATE1", "@CAPS1")
LATIN1_WORDS = ("café", "naïve", "résumé", "fiancé", "cliché", "piñata", "señor", "jalapeño")
_SET_ABILITY_SD = 0.7
_SIZE_SIGMA = 0.5
_WORDS_BASE, _WORDS_SLOPE, _WORDS_SIGMA = 30, 120, 0.25
_P_TOPIC, _P_ADVANCED, _P_MISSPELL = (0.08, 0.2), (0.01, 0.15), 0.3
_P_ENTITY, _P_LATIN1, _P_QUOTE = 0.03, 0.01, 0.3
_RATER_SLOPE, _RATER_NOISE = 1.5, 0.4
_THIRD_RATER_GAP = 6


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def write_asap_aes(
    directory: str | os.PathLike,
    *,
    essays_per_set: int = 40,
    seed: int = 0,
) -> pathlib.Path:
    """Writes a synthetic `training_set_rel3.tsv` in the real layout.

    See the module docstring for the generative model and the quirks reproduced.

    >>> import tempfile
    >>> path = write_asap_aes(tempfile.mkdtemp(), essays_per_set=4)
    >>> df = reader.read_asap_aes(path, verbose=False)
    >>> path.name, sorted(set(df.essay_set)), df.columns.tolist()[:3]
    ('training_set_rel3.tsv', [1, 2, 3, 4, 5, 6, 7, 8], ['essay_id', 'essay_set', 'essay'])

    Args:
      directory: where to write (created if missing).
      essays_per_set: mean essays per essay set (lognormal sizes, at least 4).
      seed: the only source of randomness.

    Returns:
      The path of the written file.

    Raises:
      ValueError: for essays_per_set < 1.
    """
    if essays_per_set < 1:
        raise ValueError(f"essays_per_set must be >= 1, got {essays_per_set}.")
    rng = np.random.default_rng(seed)
    rows = []
    for essay_set in reader.ESSAY_SETS:
        mean = _SET_ABILITY_SD * rng.normal()
        size = essays_per_set * math.exp(_SIZE_SIGMA * rng.normal() - _SIZE_SIGMA**2 / 2)
        for i in range(max(4, round(size))):
            ability = mean + rng.normal()
            essay = _essay(rng, essay_set, ability)
            rows.append([FIRST_ESSAY_IDS[essay_set] + i, essay_set, essay,
                         *_scores(rng, essay_set, ability)])  # fmt: skip
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / reader.FILE_NAME
    with open(path, "w", encoding=reader.ENCODING, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(reader.COLUMNS)
        for row in rows:
            writer.writerow(row + [""] * (len(reader.COLUMNS) - len(row)))
    return path


def _essay(rng: np.random.Generator, essay_set: int, ability: float) -> str:
    """One essay whose words agree with the writer's ability (module docstring)."""
    s = _sigmoid(ability)
    n = max(8, round((_WORDS_BASE + _WORDS_SLOPE * s) * math.exp(_WORDS_SIGMA * rng.normal())))
    p_topic = _P_TOPIC[0] + _P_TOPIC[1] * s
    p_advanced = _P_ADVANCED[0] + _P_ADVANCED[1] * s
    words = []
    for _ in range(n):
        u = rng.random()
        if u < _P_ENTITY:
            words.append(_pick(rng, ENTITIES))
            continue
        if u < _P_ENTITY + _P_LATIN1:
            words.append(_pick(rng, LATIN1_WORDS))
            continue
        u = rng.random()
        pool = (
            TOPICS[essay_set] if u < p_topic else ADVANCED if u < p_topic + p_advanced else COMMON
        )
        word = _pick(rng, pool)
        if rng.random() < _P_MISSPELL * (1 - s):
            word = MISSPELLINGS.get(word) or _swap(rng, word)
        words.append(word)
    sentences, start = [], 0
    while start < n:
        stop = min(n, start + int(rng.integers(6, 15)))
        sentence = " ".join(words[start:stop])
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        start = stop
    if rng.random() < _P_QUOTE:
        k = int(rng.integers(len(sentences)))
        sentences[k] = f'"{sentences[k][:-1]}," said {_pick(rng, ENTITIES[:2])}.'
    return " ".join(sentences)


def _pick(rng: np.random.Generator, pool: tuple[str, ...]) -> str:
    """A uniformly drawn element of `pool`."""
    return pool[int(rng.integers(len(pool)))]


def _swap(rng: np.random.Generator, word: str) -> str:
    """The word with two adjacent letters swapped (unchanged if shorter than 3)."""
    if len(word) < 3:
        return word
    i = int(rng.integers(len(word) - 1))
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _rate(rng: np.random.Generator, ability: float, lo: int, hi: int) -> int:
    """One rater's score on the scale lo..hi (module docstring)."""
    z = _RATER_SLOPE * ability + _RATER_NOISE * rng.normal()
    return int(np.clip(round(lo + (hi - lo) * _sigmoid(z)), lo, hi))


def _scores(rng: np.random.Generator, essay_set: int, ability: float) -> list:
    """rater1_domain1 .. domain2_score (reader.COLUMNS[3:10]) of one essay; '' = empty."""
    r1, r2 = (_rate(rng, ability, *RATER_RANGES[essay_set]) for _ in range(2))
    r3 = ""
    if essay_set in (1, 7, 8):
        score = r1 + r2
        if essay_set == 8 and abs(r1 - r2) > _THIRD_RATER_GAP:
            score = r3 = int(np.clip(round(r1 + r2 + 2 * rng.normal()), *reader.SCORE_RANGES[8]))
    elif essay_set == 2:
        score = r1
    else:
        score = max(r1, r2)
    domain2 = ["", "", ""]
    if essay_set == 2:
        d1, d2 = (_rate(rng, ability, *reader.DOMAIN2_RANGE) for _ in range(2))
        domain2 = [d1, d2, d1]
    return [r1, r2, r3, score, *domain2]
