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
"""Longitudinal records: a student's earlier records as an 'interaction' sequence.

A table with a student column and a time column holds records of students over
time (e.g. Tennessee STAR: one row per student and grade). Every row stays one
example with its own targets; `histories` gives it, in addition, the
'interaction' modality (int32 [L, 2], layout in fedjax_m3t.data.spec): the same
student's EARLIER records at the SAME client, then a query step for the row itself.

Time. The distinct non-missing values of the time column, in order, are the time
points (`time_values`): numbers sorted numerically; an ORDERED pandas Categorical
in its category order (STAR's grades K < 1 < 2 < 3 are one: text sorted as text
would put 'K' after '3'); any other values sorted (as text if their types mix).
A time point's bin is its rank, or floor(rank * MAX_TIME_BINS / T) when there are
more than MAX_TIME_BINS = 16 of them; order inside the history uses the rank.

Outcome of a record. For target k (in the order of `targets`; classification
targets as their sorted class index), the record's standing u in [0, 1] is the
mid-rank percentile of its value v among the LABELLED TRAIN values of that target
AT THE SAME TIME BIN (all time bins if that bin has none; pooled over clients: a
real federation would compute it from a secure histogram):
u = (#train values < v + #train values <= v) / (2 * #train values). Ranking within
the time point matters when scores grow with time (STAR's grade-3 scores are all
above the kindergarten ones): the standing says how a student did against peers
at that time. Its level is min(floor(u * B), B - 1) with B = `outcome_levels`
(default 4: train quartiles) and its response is 1 if u > 1/2 (above that train
median; for a binary target exactly the positive class when both classes occur in
that reference), else 0.

Steps. With K targets, T time bins and B levels, an earlier record at time bin t
gives K steps, one per target k, in target order:

  labelled target:  skill = 1 + (k * T + t) * (B + 1) + level,  response 0 or 1
  missing target:   skill = 1 + (k * T + t) * (B + 1) + B,      response 2

so both the above/below-median response and the finer level of every earlier
outcome are visible to the encoder. The query step (the row itself, whose targets
are to be predicted) is skill = 1 + K * T * (B + 1) + t_row with response 2.
num_skills = K * T * (B + 1) + T.

Sequence. Earlier records are those of the same student at the same client with a
strictly smaller time; the most recent floor((L - 1) / K) of them are kept, oldest
first, then the query step, left-padded with (0, 0) to length L
(`interaction_length`). A student seen at two clients (a change of school) has a
separate history at each: the other school's records are not held by this client,
and a federation does not pool them (privacy).

Rows without a student id or a time keep their tabular example but get no
interaction (present False, zeros) and are counted in `unlinked`
('missing_student', 'missing_time'); a record without a time is in nobody's
history. A row with a student id and a time always has the interaction modality,
with only the query step when it has no earlier record.

Split. `student_codes` gives `fedjax_m3t.data.split.units` the students, so that
a student's records at one client are one unit (a row without a student id is a
unit of its own) and the train/test split of tabular.federation_from_dataframe
keeps them in one split: no test example's history holds a train label of the same
student. A test example's history does
hold its student's earlier outcomes (test labels of earlier records, known before
this record's time, as in knowledge tracing), never its own; the level and
response thresholds come from train labels only.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

MAX_TIME_BINS = 16
MISSING_STUDENT = "missing_student"
MISSING_TIME = "missing_time"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Histories:
    """The 'interaction' modality of a longitudinal table.

    Attributes:
      interaction: int32 [N, L, 2] (skill id, response) sequences, left-padded.
      present: bool [N], True for rows with a student id and a time.
      num_skills: largest skill id (K * T * (B + 1) + T).
      time_values: the T time points, in order, as text.
      unlinked: {reason: rows without history} ('missing_student', 'missing_time');
        only reasons with a row appear.
    """

    interaction: np.ndarray
    present: np.ndarray
    num_skills: int
    time_values: tuple[str, ...]
    unlinked: dict[str, int]


def check_columns(df, student_column: str | None, time_column: str | None) -> bool:
    """Whether the table is longitudinal; ValueError naming a bad column.

    Args:
      df: the DataFrame.
      student_column: the student id column, or None.
      time_column: the time column, or None.

    Returns:
      True if both are given, False if neither is.

    Raises:
      ValueError: if only one is given (naming it), or a named column is not in `df`.
    """
    if (student_column is None) != (time_column is None):
        given, other = (
            ("student_column", "time_column")
            if time_column is None
            else ("time_column", "student_column")
        )
        name = student_column if time_column is None else time_column
        raise ValueError(
            f"{given}={name!r} needs {other} too: longitudinal records need both a student "
            "id and a time."
        )
    if student_column is None:
        return False
    for column, role in ((student_column, "student_column"), (time_column, "time_column")):
        if column not in df.columns:
            raise ValueError(
                f"Column {column!r} ({role}) is not in the DataFrame; its columns are "
                f"{list(df.columns)}."
            )
    return True


def student_codes(students) -> np.ndarray:
    """int64 [N] code of each row's student (equal ids, equal codes); -1 if it has none.

    Args:
      students: the student id column (a pandas Series) [N].
    """
    return _factorize(students)[0]


def time_ranks(series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each row's time point rank (-1 if missing) and the time points as text.

    Args:
      series: the time column [N]: numeric, an ordered Categorical, or sortable values.

    Returns:
      (int64 [N] rank in 0..T-1 or -1, the T time points in order).
    """
    import pandas as pd  # pandas comes with the DataFrame.

    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype) and series.cat.ordered:
        seen = set(series.dropna().unique())
        values = [c for c in series.cat.categories if c in seen]
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = sorted(set(series.dropna().astype(float)))
    else:
        values = list(series.dropna().unique())
        try:
            values = sorted(values)
        except TypeError:
            values = sorted(values, key=str)
    numeric = pd.api.types.is_numeric_dtype(series) and not isinstance(
        series.dtype, pd.CategoricalDtype
    )
    index = {v: i for i, v in enumerate(values)}
    keys = series.astype(float) if numeric else series
    rank = np.array([-1 if m else index[v] for v, m in zip(keys, missing, strict=True)])
    rank = rank.astype(np.int64)
    return rank, tuple(_text(v) for v in values)


def standing(values: np.ndarray, train: np.ndarray, bins: np.ndarray | None = None) -> np.ndarray:
    """Mid-rank percentile of each value among the train values (see module docstring).

    Args:
      values: float [N] one target's values, NaN where missing.
      train: bool [N] train rows.
      bins: optional int [N] time bins: each value is then ranked among the train
        values of its own bin (of all bins if its bin has none; -1 = all bins).

    Returns:
      float64 [N] u in [0, 1]; NaN where the value is missing or no train row has one.
    """
    labelled = train & ~np.isnan(values)
    u = _percentile(values, values[labelled])
    if bins is not None:
        for b in np.unique(bins[bins >= 0]):
            reference = values[labelled & (bins == b)]
            if len(reference):
                u = np.where(bins == b, _percentile(values, reference), u)
    return np.where(np.isnan(values), np.nan, u)


def _percentile(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(#reference < v + #reference <= v) / (2 #reference), NaN if no reference."""
    if len(reference) == 0:
        return np.full(len(values), np.nan)
    reference = np.sort(reference)
    below = np.searchsorted(reference, values, side="left")
    upto = np.searchsorted(reference, values, side="right")
    return (below + upto) / (2.0 * len(reference))


def histories(
    students,
    times,
    client: np.ndarray,
    outcomes: np.ndarray,
    train: np.ndarray,
    *,
    length: int = 8,
    outcome_levels: int = 4,
) -> Histories:
    """Every row's interaction sequence: earlier records of its student, then itself.

    Args:
      students: the student id column (pandas Series) [N].
      times: the time column (pandas Series) [N].
      client: int [N] client index of each row.
      outcomes: float [N, K] the targets (classification: class index), NaN = missing.
      train: bool [N] train rows (the percentiles use labelled train values only).
      length: L, the sequence length (earlier steps + the query step).
      outcome_levels: B, outcome levels per target (quantiles of the train values).

    Returns:
      The sequences int32 [N, L, 2], presence bool [N] and the vocabulary size.

    Raises:
      ValueError: if L - 1 < K (no room for one earlier record) or B < 2.
    """
    num_rows, num_targets = outcomes.shape
    if length - 1 < num_targets:
        raise ValueError(
            f"interaction_length={length} leaves no room for one earlier record of "
            f"{num_targets} targets: it must be >= {num_targets + 1}."
        )
    if outcome_levels < 2:
        raise ValueError(f"outcome_levels must be >= 2, got {outcome_levels}.")
    student, _ = _factorize(students)
    rank, time_values = time_ranks(times)
    bins = _bins(rank, len(time_values))
    num_bins = int(bins.max()) + 1 if (rank >= 0).any() else 1
    steps = _record_steps(outcomes, train, bins, num_bins, outcome_levels)
    query_base = 1 + num_targets * num_bins * (outcome_levels + 1)
    has_student = student >= 0
    present = has_student & (rank >= 0)
    interaction = np.zeros((num_rows, length, 2), np.int32)
    interaction[present, -1, 0] = query_base + bins[present]
    interaction[present, -1, 1] = 2
    keep = (length - 1) // num_targets
    order = np.lexsort((np.arange(num_rows), rank, student, client))
    order = order[present[order]]
    boundaries = np.flatnonzero(np.diff(client[order]) | np.diff(student[order])) + 1
    for group in np.split(order, boundaries):
        group_ranks = rank[group]  # Sorted: the group is in time order.
        for row in group:
            earlier = group[: np.searchsorted(group_ranks, rank[row], side="left")][-keep:]
            if len(earlier):
                history = steps[earlier].reshape(-1, 2)
                interaction[row, length - 1 - len(history) : length - 1] = history
    unlinked = {
        MISSING_STUDENT: int((~has_student).sum()),
        MISSING_TIME: int((has_student & (rank < 0)).sum()),
    }
    return Histories(
        interaction=interaction,
        present=present,
        num_skills=query_base + num_bins - 1,
        time_values=time_values,
        unlinked={k: v for k, v in unlinked.items() if v},
    )


def _record_steps(outcomes, train, bins, num_bins, levels) -> np.ndarray:
    """int32 [N, K, 2]: the K (skill, response) steps each record gives as history."""
    num_rows, num_targets = outcomes.shape
    steps = np.zeros((num_rows, num_targets, 2), np.int32)
    for k in range(num_targets):
        u = standing(outcomes[:, k].astype(np.float64), train, bins)
        missing = np.isnan(u)
        level = np.minimum(np.floor(np.nan_to_num(u) * levels), levels - 1)
        level = np.where(missing, levels, level)
        response = np.where(missing, 2, np.nan_to_num(u) > 0.5)
        steps[:, k, 0] = 1 + (k * num_bins + np.maximum(bins, 0)) * (levels + 1) + level
        steps[:, k, 1] = response
    return steps


def _bins(rank: np.ndarray, num_values: int) -> np.ndarray:
    """Time bin of each rank (-1 stays -1): the rank, or its share of MAX_TIME_BINS."""
    if num_values <= MAX_TIME_BINS:
        return rank
    return np.where(rank >= 0, rank * MAX_TIME_BINS // num_values, -1)


def _factorize(series) -> tuple[np.ndarray, Sequence]:
    """(int64 [N] codes, -1 for missing; the distinct values)."""
    import pandas as pd  # pandas comes with the DataFrame.

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int64), uniques


def _text(value) -> str:
    """A time point as text; integral floats without '.0'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
