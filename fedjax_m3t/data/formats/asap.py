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
"""The ASAP-AES essay-scoring training file: a generator and a reader.

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

`write_asap_aes` writes a file of the same layout from a seeded latent-writer model,
so the pipeline is tested end to end without the real data:

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

`read_asap_aes` reads such a file (real or generated); see its docstring for how
each quirk is handled.
"""

import csv
import io
import math
import os
import pathlib
import sys

import numpy as np
import pandas as pd

from fedjax_m3t.data.formats import report

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
    >>> df = read_asap_aes(path, verbose=False)
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
    for essay_set in ESSAY_SETS:
        mean = _SET_ABILITY_SD * rng.normal()
        size = essays_per_set * math.exp(_SIZE_SIGMA * rng.normal() - _SIZE_SIGMA**2 / 2)
        for i in range(max(4, round(size))):
            ability = mean + rng.normal()
            essay = _essay(rng, essay_set, ability)
            rows.append([FIRST_ESSAY_IDS[essay_set] + i, essay_set, essay,
                         *_scores(rng, essay_set, ability)])  # fmt: skip
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    with open(path, "w", encoding=ENCODING, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(row + [""] * (len(COLUMNS) - len(row)))
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
    """rater1_domain1 .. domain2_score (COLUMNS[3:10]) of one essay; '' = empty."""
    r1, r2 = (_rate(rng, ability, *RATER_RANGES[essay_set]) for _ in range(2))
    r3 = ""
    if essay_set in (1, 7, 8):
        score = r1 + r2
        if essay_set == 8 and abs(r1 - r2) > _THIRD_RATER_GAP:
            score = r3 = int(np.clip(round(r1 + r2 + 2 * rng.normal()), *SCORE_RANGES[8]))
    elif essay_set == 2:
        score = r1
    else:
        score = max(r1, r2)
    domain2 = ["", "", ""]
    if essay_set == 2:
        d1, d2 = (_rate(rng, ability, *DOMAIN2_RANGE) for _ in range(2))
        domain2 = [d1, d2, d1]
    return [r1, r2, r3, score, *domain2]


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
    if not report.is_int(get["essay_id"]):
        return f"essay_id {get['essay_id']!r} is not an integer"
    essay_id = int(get["essay_id"])
    essay_set = int(get["essay_set"]) if report.is_int(get["essay_set"]) else None
    if essay_set not in SCORE_RANGES:
        return f"essay_set {get['essay_set']!r} is not one of {ESSAY_SETS}"
    lo, hi = SCORE_RANGES[essay_set]
    score = get["domain1_score"]
    if not report.is_int(score) or not lo <= int(score) <= hi:
        return f"domain1_score {score!r} is not an integer in set {essay_set}'s range {lo}-{hi}"
    domain2 = get["domain2_score"]
    if domain2 and (
        not report.is_int(domain2) or not DOMAIN2_RANGE[0] <= int(domain2) <= DOMAIN2_RANGE[1]
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
        f"{df['essay_set'].nunique()} essay sets; dropped {report.malformed_summary(malformed)}",
        file=sys.stdout,
    )
    for line in report.malformed_details(malformed):
        print(line, file=sys.stdout)
