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
"""A synthetic federation of schools whose students are seen through four modalities.

`make_education_federation(config)` draws, with NumPy only and from `config.seed`
alone, a `Federation` with the modalities 'text', 'image', 'interaction' and
'tabular' and three tasks: 'correct' (binary next-response correctness), 'score'
(a standardised grade) and 'outcome' (course outcome: fail / withdrawn / pass /
distinction). It is the test bed for multi-modal multi-task federated learning:
each modality carries a different latent trait, so fusing modalities helps, and
the knobs below make the federation as heterogeneous as wanted.

Generative story (a latent-student model):

  Global: every skill k has a difficulty d_k ~ N(0, 1). The token ids 1..V-1 are
  split into three equal word classes: function, basic and advanced words.
  School c (a client): ability mean m_c ~ N(0, client_ability_sd^2), engagement
  mean g_c ~ N(0, client_engagement_sd^2) and a curriculum, a random subset of
  `curriculum_fraction * num_skills` skills.
  Student i of school c: general ability a = m_c + z_a, writing skill
  w = rho z_a + sqrt(1 - rho^2) z_w (rho = writing_ability_corr) and engagement
  e = g_c + z_e, with z_a, z_w, z_e ~ N(0, 1) independent.

  interaction (reveals a and per-skill mastery): a history of L ~ U{T/2..T}
  (skill, response) pairs on curriculum skills, left-padded so that position T-1
  is always the query item (response 2 = unknown). The BKT-like response model is
      P(right) = guess + (1 - guess - slip) * sigmoid(a - d_k + learning * n_prev),
  n_prev = earlier practice of skill k in the history (mastery grows with practice).
  text (reveals w): L ~ U{T/2..T} tokens, right-padded with 0; each token is a
  function word with prob. 0.3, else an advanced word with prob. sigmoid(1.5 w - 0.5),
  else a basic word; ids are uniform within their class.
  image (reveals a): a 28x28 "scan of handwritten work" in [0, 1]: 10 candidate
  pen strokes (elongated Gaussians at random places and angles, sds 2.8 and 0.8
  pixels), each written with prob. sigmoid(a), plus N(0, 0.05^2) paper noise.
  The ink per patch counts the strokes.
  tabular (reveals e): log clicks, days active and on-time submissions, each
  (e + noise) scaled to unit variance, then N(0, 1) noise features.

  correct = Bernoulli(P(right)) of the query item (needs interaction).
  score = (0.7 a + 0.7 w + N(0, 0.5^2)) / sd, sd the population sd, so roughly
    mean 0, sd 1 (needs interaction or image for a, and text for w).
  outcome: 'withdrawn' if e + N(0, 0.5^2) < t_w; otherwise with
    p = a + 0.5 e + N(0, 0.5^2), 'fail' if p < t_f, 'distinction' if p > t_d, else
    'pass' (needs interaction and tabular). The thresholds are calibrated on a
    population sample so that the class shares are OUTCOME_SHARES (OULAD-like).

Heterogeneity knobs:

  quantity_skew: client sizes mean_examples * exp(sigma z - sigma^2 / 2), z ~ N(0, 1),
    rounded and clipped to [min_examples, max_examples]; sigma = 0 gives equal sizes.
  label_skew_alpha: school c draws outcome shares q_c ~ Dirichlet(alpha * OUTCOME_SHARES)
    (Hsu, Qi & Brown 2019, "Measuring the effects of non-identical data distribution
    for federated visual classification") and its class counts are n_c * q_c rounded
    by largest remainders. Students are then drawn from the school's population by
    rejection: candidate students (latents and outcome) are drawn in batches and the
    first ones of each class are kept until every class count is filled, so within a
    class the students are distributed as in the school (pure label shift). None or
    inf gives every school the population shares OUTCOME_SHARES (up to rounding):
    the limit of alpha -> inf, IID in the outcome label, while the inputs still
    shift with the school means.
  modality_missing_prob: each school lacks each modality with this probability
    (it keeps at least one); example_missing_prob: each example then lacks each of
    its school's modalities with this probability (it keeps at least one).
  task_missing_prob: each school lacks each task's labels entirely with this
    probability (it keeps at least one task).

Each school's examples are shuffled and split into train and test
(`test_fraction`, at least one example in each). Absent modalities hold zeros with
present=False; missing labels hold zeros with label_mask=False; padding rows (from
stacking clients of different sizes) have mask=False.

Randomness: `np.random.SeedSequence(seed)` is spawned into one stream for the
global draws and one per school, so school c's data depends only on (seed, c,
config) and not on `num_clients`.
"""

import dataclasses
import math

import numpy as np

from fedjax_m3t.data import federation
from fedjax_m3t.data import spec as spec_lib

OUTCOME_CLASSES = ("fail", "withdrawn", "pass", "distinction")
OUTCOME_SHARES = (0.25, 0.2, 0.4, 0.15)  # Population shares of OUTCOME_CLASSES.

TASKS = (
    spec_lib.TaskSpec(name="correct", kind="binary"),
    spec_lib.TaskSpec(name="score", kind="regression"),
    spec_lib.TaskSpec(
        name="outcome", kind="multiclass", num_classes=4, class_names=OUTCOME_CLASSES
    ),
)

# Response model (BKT-like): guess and slip probabilities, log-odds gain per practice.
_GUESS, _SLIP, _LEARNING = 0.1, 0.1, 0.3
_FUNCTION_WORD_PROB = 0.3
_NUM_STROKES = 10
_ENGAGEMENT_LOADINGS = ((1.0, 0.6), (1.0, 0.8), (0.8, 1.0))  # (loading, noise sd) per feature.
_CALIBRATION_SIZE = 20_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """Size, heterogeneity and shapes of a synthetic education federation.

    Attributes:
      num_clients: schools.
      mean_examples: mean students per school (train + test).
      quantity_skew: sigma of the lognormal on school sizes; 0 = equal sizes.
      min_examples: smallest school (>= 2: one train and one test example).
      max_examples: largest school; None = 8 * mean_examples.
      label_skew_alpha: Dirichlet concentration of the per-school outcome shares
        (times OUTCOME_SHARES); None or inf = every school has OUTCOME_SHARES.
      modality_missing_prob: probability that a school lacks a modality.
      example_missing_prob: probability that an example lacks one of its school's
        modalities.
      task_missing_prob: probability that a school lacks a task's labels.
      test_fraction: share of each school's examples in its test split.
      seed: seed of every draw.
      client_ability_sd: sd of the school ability means.
      client_engagement_sd: sd of the school engagement means.
      writing_ability_corr: correlation of writing skill and (within-school) ability.
      curriculum_fraction: share of the skills in a school's curriculum.
      text_vocab_size: token ids 0..V-1, 0 = padding.
      text_length: tokens per text.
      image_size: image height and width.
      num_skills: skill ids 1..num_skills.
      interaction_length: (skill, response) pairs per history, the query included.
      tabular_features: tabular columns (the first 3 carry engagement).

    Raises:
      ValueError: naming every field out of range.
    """

    num_clients: int = 16
    mean_examples: int = 96
    quantity_skew: float = 0.5
    min_examples: int = 8
    max_examples: int | None = None
    label_skew_alpha: float | None = None
    modality_missing_prob: float = 0.0
    example_missing_prob: float = 0.0
    task_missing_prob: float = 0.0
    test_fraction: float = 0.25
    seed: int = 0
    client_ability_sd: float = 0.5
    client_engagement_sd: float = 0.3
    writing_ability_corr: float = 0.3
    curriculum_fraction: float = 0.5
    text_vocab_size: int = 256
    text_length: int = 16
    image_size: int = 28
    num_skills: int = 32
    interaction_length: int = 16
    tabular_features: int = 8

    def __post_init__(self):
        checks = {
            "num_clients >= 1": self.num_clients >= 1,
            "min_examples >= 2": self.min_examples >= 2,
            "min_examples <= mean_examples <= max_examples": (
                self.min_examples <= self.mean_examples <= self.largest_client
            ),
            "quantity_skew >= 0": self.quantity_skew >= 0,
            "label_skew_alpha > 0": self.label_skew_alpha is None or self.label_skew_alpha > 0,
            "0 <= modality_missing_prob <= 1": 0 <= self.modality_missing_prob <= 1,
            "0 <= example_missing_prob <= 1": 0 <= self.example_missing_prob <= 1,
            "0 <= task_missing_prob <= 1": 0 <= self.task_missing_prob <= 1,
            "0 < test_fraction < 1": 0 < self.test_fraction < 1,
            "-1 < writing_ability_corr < 1": -1 < self.writing_ability_corr < 1,
            "0 < curriculum_fraction <= 1": 0 < self.curriculum_fraction <= 1,
            "text_vocab_size >= 4": self.text_vocab_size >= 4,
            "text_length >= 2": self.text_length >= 2,
            "image_size >= 8": self.image_size >= 8,
            "num_skills >= 2": self.num_skills >= 2,
            "interaction_length >= 2": self.interaction_length >= 2,
            "tabular_features >= 3": self.tabular_features >= 3,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"SyntheticConfig needs {', '.join(failed)}; got {self}.")

    @property
    def largest_client(self) -> int:
        """max_examples, or its default 8 * mean_examples."""
        return 8 * self.mean_examples if self.max_examples is None else self.max_examples

    def spec(self) -> spec_lib.DataSpec:
        """All four modalities, the tasks 'correct', 'score', 'outcome', and the sizes."""
        return spec_lib.DataSpec(
            modalities=spec_lib.MODALITIES,
            tasks=TASKS,
            text_vocab_size=self.text_vocab_size,
            text_length=self.text_length,
            image_size=self.image_size,
            num_skills=self.num_skills,
            interaction_length=self.interaction_length,
            tabular_features=self.tabular_features,
        )


def make_education_federation(config: SyntheticConfig) -> federation.Federation:
    """Draws a federation of schools (see the module docstring for the model).

    Args:
      config: sizes, heterogeneity and seed.

    Returns:
      A Federation with client names 'school_00', ...; train and test leaves are
      [num_clients, max examples of a split, ...] in the layout of
      `fedjax_m3t.data.spec`.

    >>> fed = make_education_federation(SyntheticConfig(num_clients=4, mean_examples=16))
    >>> fed.num_clients, fed.train['inputs']['image'].shape[2:]
    (4, (28, 28))
    """
    global_seq, *client_seqs = np.random.SeedSequence(config.seed).spawn(config.num_clients + 1)
    global_rng = np.random.default_rng(global_seq)
    difficulty = global_rng.normal(size=config.num_skills)
    thresholds, score_sd = _calibrate(global_rng, config)
    trains, tests = [], []
    for seq in client_seqs:
        train, test = _make_client(
            np.random.default_rng(seq), config, difficulty, thresholds, score_sd
        )
        trains.append(train)
        tests.append(test)
    width = max(2, len(str(config.num_clients - 1)))
    return federation.Federation(
        spec=config.spec(),
        client_names=tuple(f"school_{c:0{width}d}" for c in range(config.num_clients)),
        train=federation.stack_clients(trains),
        test=federation.stack_clients(tests),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_latents(
    rng: np.random.Generator,
    n: int,
    ability_mean: float | np.ndarray,
    engagement_mean: float | np.ndarray,
    config: SyntheticConfig,
    thresholds: tuple[float, float, float] | None,
) -> dict[str, np.ndarray]:
    """Draws n students' latents and outcome (see the module docstring).

    Args:
      rng: the stream to draw from.
      n: students.
      ability_mean: the school ability mean, scalar or [n].
      engagement_mean: the school engagement mean, scalar or [n].
      config: for writing_ability_corr.
      thresholds: (t_w, t_f, t_d); None for the raw outcome variables only.

    Returns:
      {'a', 'w', 'e': float64 [n], 'withdraw', 'performance': float64 [n] (the
      outcome variables before thresholding), 'outcome': int32 [n] if thresholds}.
    """
    z = rng.normal(size=(5, n))
    rho = config.writing_ability_corr
    a = ability_mean + z[0]
    w = rho * z[0] + math.sqrt(1 - rho**2) * z[1]
    e = engagement_mean + z[2]
    latents = {
        "a": a,
        "w": w,
        "e": e,
        "withdraw": e + 0.5 * z[3],
        "performance": a + 0.5 * e + 0.5 * z[4],
    }
    if thresholds is not None:
        t_w, t_f, t_d = thresholds
        outcome = np.where(latents["performance"] < t_f, 0, 2)
        outcome = np.where(latents["performance"] > t_d, 3, outcome)
        latents["outcome"] = np.where(latents["withdraw"] < t_w, 1, outcome).astype(np.int32)
    return latents


def _calibrate(
    rng: np.random.Generator, config: SyntheticConfig
) -> tuple[tuple[float, float, float], float]:
    """Outcome thresholds giving OUTCOME_SHARES in the population, and the score sd.

    The population is a sample of _CALIBRATION_SIZE students, each from a fresh
    school. The score sd is exact: Var(0.7 a + 0.7 w) + 0.5^2.
    """
    size = _CALIBRATION_SIZE
    ability_mean = config.client_ability_sd * rng.normal(size=size)
    engagement_mean = config.client_engagement_sd * rng.normal(size=size)
    lat = _draw_latents(rng, size, ability_mean, engagement_mean, config, thresholds=None)
    fail, withdrawn, _, distinction = OUTCOME_SHARES
    t_w = np.quantile(lat["withdraw"], withdrawn)
    stays = lat["performance"][lat["withdraw"] >= t_w]
    t_f, t_d = np.quantile(stays, [fail / (1 - withdrawn), 1 - distinction / (1 - withdrawn)])
    var_a = config.client_ability_sd**2 + 1
    var_raw = 0.49 * (var_a + 1 + 2 * config.writing_ability_corr) + 0.25
    return (float(t_w), float(t_f), float(t_d)), math.sqrt(var_raw)


def _largest_remainder(n: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to n, as close to n * shares as rounding allows."""
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _sample_students(
    rng: np.random.Generator,
    config: SyntheticConfig,
    n: int,
    school: tuple[float, float],
    thresholds: tuple[float, float, float],
) -> dict[str, np.ndarray]:
    """Draws a school's n students with given (or Dirichlet) outcome shares.

    Args:
      rng: the school's stream.
      config: for label_skew_alpha.
      n: students.
      school: (ability mean, engagement mean).
      thresholds: outcome thresholds from _calibrate.

    Returns:
      Latents as in _draw_latents, [n] each, in random order.
    """
    alpha = config.label_skew_alpha
    shares = np.asarray(OUTCOME_SHARES)
    if alpha is not None and not math.isinf(alpha):
        shares = rng.dirichlet(alpha * shares)
    need = _largest_remainder(n, shares)
    kept = []
    batch = max(1024, 8 * n)
    # Rejection: keep the first candidates of each class until its count is filled.
    for _ in range(100):
        cand = _draw_latents(rng, batch, *school, config, thresholds)
        for k in range(len(OUTCOME_CLASSES)):
            take = np.flatnonzero(cand["outcome"] == k)[: need[k]]
            need[k] -= take.size
            kept.append({key: v[take] for key, v in cand.items()})
        if need.sum() == 0:
            break
    else:
        # A class too rare in this school to fill: top up without conditioning.
        kept.append(_draw_latents(rng, int(need.sum()), *school, config, thresholds))
    order = rng.permutation(n)
    return {key: np.concatenate([k[key] for k in kept])[order] for key in kept[0]}


def _interaction(
    rng: np.random.Generator,
    config: SyntheticConfig,
    ability: np.ndarray,
    curriculum: np.ndarray,
    difficulty: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Practice histories ending in a query item, and whether the query is answered right.

    Args:
      rng: the school's stream.
      config: sizes.
      ability: a, [n].
      curriculum: the school's skill ids (1-based), [num_curriculum].
      difficulty: d_k of skill id k + 1, [num_skills].

    Returns:
      (int32 [n, interaction_length, 2] (skill, response) pairs, left-padded with
      (0, 0), the query at the last position with response 2; float32 [n] 0/1 label).
    """
    n, length = ability.shape[0], config.interaction_length
    lengths = rng.integers(max(2, length // 2), length + 1, size=n)
    real = np.arange(length)[None, :] >= length - lengths[:, None]
    skills = np.where(real, rng.choice(curriculum, size=(n, length)), 0)
    # practice[i, t]: earlier positions s < t of student i with the same skill.
    same = (skills[:, :, None] == skills[:, None, :]) & real[:, None, :]
    practice = (same & np.tri(length, k=-1, dtype=bool)[None]).sum(-1)
    logit = ability[:, None] - difficulty[skills - 1] + _LEARNING * practice
    p_right = _GUESS + (1 - _GUESS - _SLIP) * _sigmoid(logit)
    right = rng.random((n, length)) < p_right
    responses = np.where(real, right, 0)
    responses[:, -1] = 2
    pairs = np.stack([skills, responses], axis=-1).astype(np.int32)
    return pairs, right[:, -1].astype(np.float32)


def _word_class_bounds(vocab_size: int) -> np.ndarray:
    """First ids of the function, basic and advanced words, and vocab_size: int64 [4]."""
    return 1 + np.round((vocab_size - 1) * np.arange(4) / 3).astype(np.int64)


def _text(rng: np.random.Generator, config: SyntheticConfig, writing: np.ndarray) -> np.ndarray:
    """Token sequences whose share of advanced words rises with w.

    Args:
      rng: the school's stream.
      config: sizes.
      writing: w, [n].

    Returns:
      int32 [n, text_length], right-padded with 0.
    """
    n, length = writing.shape[0], config.text_length
    lengths = rng.integers(max(1, length // 2), length + 1, size=n)
    advanced = rng.random((n, length)) < _sigmoid(1.5 * writing - 0.5)[:, None]
    word_class = np.where(rng.random((n, length)) < _FUNCTION_WORD_PROB, 0, 1 + advanced)
    bounds = _word_class_bounds(config.text_vocab_size)
    low, high = bounds[word_class], bounds[word_class + 1]
    tokens = low + np.floor(rng.random((n, length)) * (high - low)).astype(np.int64)
    return np.where(np.arange(length)[None, :] < lengths[:, None], tokens, 0).astype(np.int32)


def _image(rng: np.random.Generator, config: SyntheticConfig, ability: np.ndarray) -> np.ndarray:
    """Scans of handwritten work: the more able the student, the more pen strokes.

    Args:
      rng: the school's stream.
      config: sizes.
      ability: a, [n].

    Returns:
      float32 [n, image_size, image_size] in [0, 1].
    """
    n, size = ability.shape[0], config.image_size
    length, width = size / 10, 0.8  # Gaussian sds along and across a stroke, in pixels.
    shape = (n, _NUM_STROKES)
    written = rng.random(shape) < _sigmoid(ability)[:, None]
    pressure = rng.uniform(0.6, 1.0, size=shape).astype(np.float32)
    center = rng.uniform(3, size - 4, size=(2,) + shape).astype(np.float32)
    angle = rng.uniform(0, np.pi, size=shape).astype(np.float32)
    noise = 0.05 * rng.standard_normal(size=(n, size, size), dtype=np.float32)
    # Draw only the written strokes, each in a window of +-2.5 sds (ink < 0.05 outside)
    # around its centre, and add them up on a canvas padded by that much: 3x faster than
    # drawing every stroke on the full image.
    student, stroke = np.nonzero(written)
    half = math.ceil(2.5 * length)
    offset = np.arange(-half, half + 1, dtype=np.float32)
    cy, cx = center[0, student, stroke, None], center[1, student, stroke, None]  # [m, 1]
    rows, cols = np.rint(cy) + offset, np.rint(cx) + offset  # Pixels in the window, [m, w].
    dy, dx = (rows - cy)[:, :, None], (cols - cx)[:, None, :]  # [m, w, 1], [m, 1, w]
    cos = np.cos(angle[student, stroke])[:, None, None]
    sin = np.sin(angle[student, stroke])[:, None, None]
    along, across = (dx * cos + dy * sin) / length, (dy * cos - dx * sin) / width
    ink = pressure[student, stroke, None, None] * np.exp(-0.5 * (along**2 + across**2))
    padded = size + 2 * half
    rows, cols = rows.astype(np.int64) + half, cols.astype(np.int64) + half
    flat = (student[:, None, None] * padded + rows[:, :, None]) * padded + cols[:, None, :]
    canvas = np.bincount(flat.ravel(), weights=ink.ravel(), minlength=n * padded**2)
    canvas = canvas.reshape(n, padded, padded)[:, half : half + size, half : half + size]
    return np.clip(canvas + noise, 0.0, 1.0).astype(np.float32)


def _tabular(
    rng: np.random.Generator, config: SyntheticConfig, engagement: np.ndarray
) -> np.ndarray:
    """Engagement features (log clicks, days active, on-time submissions) and noise.

    Args:
      rng: the school's stream.
      config: sizes and client_engagement_sd.
      engagement: e, [n].

    Returns:
      float32 [n, tabular_features], each column of mean 0 and variance 1 over the
      population of schools.
    """
    n = engagement.shape[0]
    var_e = config.client_engagement_sd**2 + 1
    columns = [
        (load * engagement + noise * rng.normal(size=n)) / math.sqrt(load**2 * var_e + noise**2)
        for load, noise in _ENGAGEMENT_LOADINGS
    ]
    rest = rng.normal(size=(n, config.tabular_features - len(columns)))
    return np.concatenate([np.stack(columns, axis=1), rest], axis=1).astype(np.float32)


def _keep_at_least_one(
    rng: np.random.Generator, keep: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """Turns on one random allowed entry in every row of `keep` that has none.

    Args:
      rng: the school's stream.
      keep: bool [rows, items].
      allowed: bool [items], at least one True: where a row may be turned on.

    Returns:
      bool [rows, items].
    """
    keep = keep.copy()
    empty = np.flatnonzero(~keep.any(axis=1))
    keep[empty, rng.choice(np.flatnonzero(allowed), size=empty.size)] = True
    return keep


def _client_size(rng: np.random.Generator, config: SyntheticConfig) -> int:
    """Lognormal with mean mean_examples, clipped to [min_examples, largest_client]."""
    sigma = config.quantity_skew
    size = config.mean_examples * math.exp(sigma * rng.normal() - sigma**2 / 2)
    return int(np.clip(round(size), config.min_examples, config.largest_client))


def _presence(
    rng: np.random.Generator, config: SyntheticConfig, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which modalities each example has and which tasks the school labels.

    Returns:
      (bool [n, len(MODALITIES)], every row with at least one of the school's
      modalities; bool [len(TASKS)], at least one True).
    """
    num_modalities, num_tasks = len(spec_lib.MODALITIES), len(TASKS)
    has_modality = rng.random((1, num_modalities)) >= config.modality_missing_prob
    has_modality = _keep_at_least_one(rng, has_modality, np.ones(num_modalities, bool))[0]
    has_task = rng.random((1, num_tasks)) >= config.task_missing_prob
    has_task = _keep_at_least_one(rng, has_task, np.ones(num_tasks, bool))[0]
    present = has_modality & (rng.random((n, num_modalities)) >= config.example_missing_prob)
    return _keep_at_least_one(rng, present, has_modality), has_task


def _make_client(
    rng: np.random.Generator,
    config: SyntheticConfig,
    difficulty: np.ndarray,
    thresholds: tuple[float, float, float],
    score_sd: float,
) -> tuple[dict, dict]:
    """One school's train and test examples (layout in fedjax_m3t.data.spec)."""
    n = _client_size(rng, config)
    school = (
        config.client_ability_sd * rng.normal(),
        config.client_engagement_sd * rng.normal(),
    )
    num_curriculum = round(config.curriculum_fraction * config.num_skills)
    num_curriculum = min(config.num_skills, max(2, num_curriculum))
    curriculum = 1 + rng.choice(config.num_skills, size=num_curriculum, replace=False)
    present, has_task = _presence(rng, config, n)

    lat = _sample_students(rng, config, n, school, thresholds)
    interaction, correct = _interaction(rng, config, lat["a"], curriculum, difficulty)
    inputs = {
        "text": _text(rng, config, lat["w"]),
        "image": _image(rng, config, lat["a"]),
        "interaction": interaction,
        "tabular": _tabular(rng, config, lat["e"]),
    }
    score = 0.7 * lat["a"] + 0.7 * lat["w"] + 0.5 * rng.normal(size=n)
    labels = {
        "correct": correct,
        "score": (score / score_sd).astype(np.float32),
        "outcome": lat["outcome"],
    }
    examples = {"inputs": {}, "present": {}, "labels": {}, "label_mask": {}}
    for i, m in enumerate(spec_lib.MODALITIES):
        keep = present[:, i].reshape((n,) + (1,) * (inputs[m].ndim - 1))
        examples["inputs"][m] = np.where(keep, inputs[m], np.zeros_like(inputs[m]))
        examples["present"][m] = present[:, i]
    for j, task in enumerate(TASKS):
        y = labels[task.name]
        examples["labels"][task.name] = np.where(has_task[j], y, np.zeros_like(y))
        examples["label_mask"][task.name] = np.full(n, has_task[j])
    examples["mask"] = np.ones(n, bool)
    # Students come in random order, so the first num_test form a random test split.
    num_test = int(np.clip(round(config.test_fraction * n), 1, n - 1))
    return _take(examples, slice(num_test, n)), _take(examples, slice(0, num_test))


def _take(examples: dict, rows: slice) -> dict:
    """The rows of every leaf."""
    return {
        key: _take(value, rows) if isinstance(value, dict) else value[rows]
        for key, value in examples.items()
    }
