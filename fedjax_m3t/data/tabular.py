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
"""A federation from a pandas DataFrame: one client per value of a client column.

`federation_from_dataframe` turns a flat table (one row per student, a school id
column) into a `Federation` with the single modality 'tabular':

  * clients are the distinct values of `client_column`, sorted; rows whose client
    id is missing are dropped and counted in `Table.drops`;
  * every client's rows are split into train and test by `fedjax_m3t.data.split`
    (each row a unit, or each student of a longitudinal table): a client with >= 2
    units keeps at least one in each split (when `test_fraction` > 0); a 1-unit
    client keeps it in train and has an empty test set; `test_fraction=0` puts
    every row in train. The Federation records each client's rows of the frame
    (`train_rows`, `test_rows`) and, with a group column, each client's group;
  * numeric features are standardised with the example-weighted mean and variance
    obtained from per-client sums over TRAIN rows (sum, sum of squares, count).
    These are the statistics a real federation can compute with one round of
    (secure) summation, and they equal the pooled train mean and population
    (ddof=0) variance. Missing values are imputed with that mean (so they are 0
    after standardising) and flagged by a '<col>_missing' indicator feature, which
    exists only when the column has a missing value;
  * categorical columns are one-hot ('<col>=<value>', values sorted, known from
    the data); a missing category is all zeros plus a '<col>_missing' indicator;
  * each target is a task: 'regression' (raw values, not standardised) or
    'classification' ('binary' with 2 classes, the second sorted class being 1,
    else 'multiclass' over the sorted classes). A missing target is masked for
    that task (label_mask False); the row is kept for the other tasks;
  * optional longitudinal records (`student_column` and `time_column`, both or
    neither): each row stays one example with its own targets and also gets the
    'interaction' modality, its student's earlier records at the same client as a
    sequence of (skill id, response) steps followed by a query step for the row
    (the mapping, the time order and the privacy rule are in
    fedjax_m3t.data.longitudinal). The split is then by student within each
    client: a student's records at a client are all train or all test, and a client
    with >= 2 students keeps at least one student in each split (the fractions
    above count students, not rows); rows without a student id split as single
    rows. Rows without a student id or time are kept without an interaction
    (present False) and counted in `Table.unlinked`.

Refused at load time, naming the column and rows (fedjax_m3t/data/columns.py):
inf or beyond-float32 values in numeric features and regression targets; a
classification target with more than `max_classes` classes (is it a regression
target?) or a numeric one with a non-integer value (a stray 0.5 in a 0/1 column).
"""

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from fedjax_m3t.data import columns as columns_lib
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import longitudinal
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import split as split_lib

TARGET_KINDS = ("regression", "classification")
MISSING_CLIENT = "missing_client"
MISSING_GROUP = "missing_group"
MAX_CLASSES = 50  # More distinct values than this is a regression target, unless asked.


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    """A DataFrame as a federation: the Federation and how the table was encoded.

    Attributes:
      federation: the clients' data (modalities ('tabular',), one task per target);
        its `groups` are each client's value of the group column (e.g. the local
        education authority of a school), as a string (() without a group column),
        its `train_rows` / `test_rows` the positions (iloc) of each client's rows in
        the input frame.
      feature_names: the F columns of inputs['tabular'], in order.
      drops: {reason: rows dropped} ('missing_client', 'missing_group'); only
        reasons that dropped a row appear.
      means: {numeric feature column: train mean used to standardise it}.
      stds: {numeric feature column: train std (ddof=0; 1.0 if constant) used}.
      target_means: {regression target: train mean subtracted from its labels}; empty
        unless built with standardize_targets=True.
      target_stds: {regression target: train std its labels were divided by}; a
        prediction p maps back to the raw scale as p * std + mean.
      time_values: longitudinal tables: the time points in order, as text; else ().
      unlinked: longitudinal tables: {reason: rows kept without an interaction}
        ('missing_student', 'missing_time'); only reasons with a row appear.
    """

    federation: federation_lib.Federation
    feature_names: tuple[str, ...]
    drops: dict[str, int]
    means: dict[str, float]
    stds: dict[str, float]
    target_means: dict[str, float] = dataclasses.field(default_factory=dict)
    target_stds: dict[str, float] = dataclasses.field(default_factory=dict)
    time_values: tuple[str, ...] = ()
    unlinked: dict[str, int] = dataclasses.field(default_factory=dict)


def federation_from_dataframe(
    df,
    *,
    client_column: str,
    feature_columns: Sequence[str],
    targets: Mapping[str, str],
    group_column: str | None = None,
    categorical_columns: Sequence[str] = (),
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize_targets: bool = False,
    student_column: str | None = None,
    time_column: str | None = None,
    interaction_length: int = 8,
    verbose: bool = True,
    max_classes: int = MAX_CLASSES,
) -> Table:
    """Builds a tabular federation with one client per value of `client_column`.

    See the module docstring for the encoding, the split and the standardisation.

    >>> import pandas as pd
    >>> df = pd.DataFrame({'school': [1, 1, 2, 2], 'x': [0.0, 1.0, 2.0, 3.0],
    ...                    'y': [0.5, None, 1.5, 2.0]})
    >>> tab = federation_from_dataframe(df, client_column='school', feature_columns=['x'],
    ...     targets={'y': 'regression'}, test_fraction=0.0, verbose=False)
    >>> tab.federation.client_names, tab.means
    (('1', '2'), {'x': 1.5})

    Args:
      df: a pandas DataFrame, one row per example.
      client_column: the column whose values are the clients (e.g. 'school').
      feature_columns: the input columns; numeric unless listed in `categorical_columns`.
      targets: {column: 'regression' | 'classification'}; each becomes a task of that name.
      group_column: optional column grouping clients (constant within a client).
      categorical_columns: the feature columns to one-hot encode.
      test_fraction: share of each client's rows in the test split, in [0, 1).
      seed: seed of the per-client train/test shuffle.
      standardize_targets: also standardise regression labels, with the same
        federated train statistics over labelled rows (default: raw values).
      student_column: optional student id column of longitudinal records (needs
        `time_column`).
      time_column: optional time column (numeric, ordered Categorical, or sortable
        values; needs `student_column`).
      interaction_length: L, length of the interaction sequences (earlier steps
        plus the query step) of a longitudinal table.
      verbose: print the federation's summary, the number of groups and the drops.
      max_classes: the most classes a classification target may have (more is
        refused as implausible: raise it to ask for them).

    Returns:
      The federation and its metadata; inputs['tabular'] is float32 [clients, n, F]
      and, for a longitudinal table, inputs['interaction'] int32 [clients, n, L, 2].

    Raises:
      ValueError: naming the column or value, for a missing column, an unknown target
        kind, a non-numeric regression target or numeric feature not listed as
        categorical, an all-missing target, a client in two groups, an empty frame,
        or a student column without a time column (or the reverse); naming the
        column and rows, for non-finite numbers and implausible class labels.
    """
    feature_columns, categorical_columns = list(feature_columns), list(categorical_columns)
    _check_columns(df, client_column, feature_columns, targets, group_column, categorical_columns)
    numeric = [c for c in feature_columns if c not in categorical_columns]
    columns_lib.check_finite(df, numeric, "Feature")
    regression = [c for c, kind in targets.items() if kind == "regression" and _is_numeric(df[c])]
    columns_lib.check_finite(df, regression, "Target")
    is_longitudinal = longitudinal.check_columns(df, student_column, time_column)
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    df, positions, drops = _drop_rows(df, client_column, group_column)
    client_values, client = np.unique(df[client_column].to_numpy(), return_inverse=True)
    num_clients = len(client_values)
    groups = _client_groups(df, group_column, client, client_values)
    students = longitudinal.student_codes(df[student_column]) if is_longitudinal else None
    train = split_lib.train_mask(
        client, split_lib.units(client, students), test_fraction=test_fraction, seed=seed
    )
    x, names, means, stds = _encode_features(
        df, feature_columns, categorical_columns, client, train
    )
    tasks, labels, label_mask = _encode_targets(df, targets, max_classes)
    history = None
    if is_longitudinal:
        outcomes = np.stack(
            [np.where(label_mask[t.name], labels[t.name], np.nan) for t in tasks], axis=1
        )
        history = longitudinal.histories(
            df[student_column], df[time_column], client, outcomes, train,
            length=interaction_length,
        )  # fmt: skip
    target_means, target_stds = {}, {}
    if standardize_targets:
        labels, target_means, target_stds = _standardize_targets(
            tasks, labels, label_mask, client, train
        )
    examples = {
        "inputs": {"tabular": x},
        "present": {"tabular": np.ones(len(df), bool)},
        "labels": labels,
        "label_mask": label_mask,
    }
    spec = spec_lib.DataSpec(modalities=("tabular",), tasks=tasks, tabular_features=len(names))
    if history is not None:
        examples["inputs"]["interaction"] = history.interaction
        examples["present"]["interaction"] = history.present
        spec = dataclasses.replace(
            spec,
            modalities=("tabular", "interaction"),
            num_skills=history.num_skills,
            interaction_length=interaction_length,
        )
    federation = federation_lib.from_rows(
        spec,
        tuple(_format(v) for v in client_values),
        *split_lib.client_rows(client, train, num_clients),
        examples,
        groups=groups,
        positions=positions,
    )
    result = Table(
        federation=federation,
        feature_names=names,
        drops=drops,
        means=means,
        stds=stds,
        target_means=target_means,
        target_stds=target_stds,
        time_values=history.time_values if history else (),
        unlinked=history.unlinked if history else {},
    )
    if verbose:
        print(describe(result, group_column), flush=True)
    return result


def describe(tab: Table, group_column: str | None = None) -> str:
    """The federation's summary, its groups and the dropped rows, as text."""
    lines = [tab.federation.summary()]
    if tab.federation.groups:
        label = f" ({group_column})" if group_column else ""
        lines.append(f"  groups{label}: {len(set(tab.federation.groups))}")
    dropped = ", ".join(f"{k}: {v}" for k, v in tab.drops.items()) or "none"
    lines.append(f"  rows dropped: {dropped}")
    lines.append(f"  features ({len(tab.feature_names)}): {', '.join(tab.feature_names)}")
    for task in tab.federation.spec.tasks:
        if task.kind != "regression":
            classes = task.num_classes if task.kind == "multiclass" else 2
            names = ", ".join(task.class_names)
            lines.append(f"  task {task.name}: {task.kind}, {classes} classes ({names})")
    if tab.time_values:
        unlinked = ", ".join(f"{k}: {v}" for k, v in tab.unlinked.items()) or "none"
        lines.append(
            f"  longitudinal: time points {', '.join(tab.time_values)}; rows without "
            f"history (kept): {unlinked}"
        )
    return "\n".join(lines)


def _check_columns(df, client_column, feature_columns, targets, group_column, categorical):
    """ValueErrors naming the offending column (see federation_from_dataframe)."""
    if len(df) == 0:
        raise ValueError("The DataFrame is empty: it has no rows.")
    roles = {client_column: "client_column", **{c: "feature" for c in feature_columns}}
    roles.update({c: "target" for c in targets})
    roles.update({c: "categorical" for c in categorical})
    if group_column is not None:
        roles.setdefault(group_column, "group_column")
    for column, role in roles.items():
        if column not in df.columns:
            raise ValueError(
                f"Column {column!r} ({role}) is not in the DataFrame; its columns are "
                f"{list(df.columns)}."
            )
    for column in categorical:
        if column not in feature_columns:
            raise ValueError(f"Categorical column {column!r} is not one of the feature_columns.")
    for column, kind in targets.items():
        if kind not in TARGET_KINDS:
            raise ValueError(f"Target {column!r}: kind {kind!r} is not one of {TARGET_KINDS}.")
        if column in feature_columns or column == client_column:
            raise ValueError(f"Target {column!r} is also a feature or the client column.")
    if client_column in feature_columns:
        # Its ids would be read as one number per school (or one-hot: a school's
        # intercept), silently; a school-level feature belongs in its own column.
        raise ValueError(
            f"The client column {client_column!r} is also in feature_columns; drop it there "
            "(copy it to another column to use the school id as a feature on purpose)."
        )
    for column in feature_columns:
        if column not in categorical and not _is_numeric(df[column]):
            raise ValueError(
                f"Feature {column!r} is not numeric (dtype {df[column].dtype}); list it in "
                "categorical_columns to one-hot encode it."
            )


def _is_numeric(series) -> bool:
    import pandas as pd  # pandas comes with the DataFrame.

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _drop_rows(df, client_column, group_column):
    """Drops rows without a client id (or group); returns (df, iloc positions, drops)."""
    keep = df[client_column].notna().to_numpy()
    drops = {MISSING_CLIENT: int((~keep).sum())}
    if group_column is not None:
        has_group = df[group_column].notna().to_numpy()
        drops[MISSING_GROUP] = int((keep & ~has_group).sum())
        keep = keep & has_group
    drops = {k: v for k, v in drops.items() if v}
    if not keep.any():
        raise ValueError(f"No row has a client id in column {client_column!r}: nothing is left.")
    positions = np.flatnonzero(keep)
    return df.iloc[positions].reset_index(drop=True), positions, drops


def _client_groups(df, group_column, client, client_values) -> tuple[str, ...]:
    """Per client, its group value as a string; ValueError if a client has two."""
    if group_column is None:
        return ()
    group_values, group = np.unique(df[group_column].to_numpy(), return_inverse=True)
    pairs = np.unique(np.stack([client, group], axis=1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=len(client_values))
    if (counts > 1).any():
        c = int(np.flatnonzero(counts > 1)[0])
        seen = [_format(group_values[g]) for g in pairs[pairs[:, 0] == c, 1]]
        raise ValueError(
            f"Client {_format(client_values[c])!r} has several values of the group column "
            f"{group_column!r}: {seen}."
        )
    return tuple(_format(group_values[g]) for g in pairs[:, 1])


def federated_mean_std(
    values: np.ndarray, client: np.ndarray, train: np.ndarray, num_clients: int
) -> tuple[float, float]:
    """The example-weighted mean and std (ddof=0) from per-client sums over train rows.

    Each client reports (sum, sum of squares, count) of its non-missing train values;
    the server adds them up. This equals the pooled train statistics.

    Args:
      values: float [N] values of one column (NaN = missing).
      client: int [N] client index of each row.
      train: bool [N] train rows.
      num_clients: number of clients.

    Returns:
      (mean, std); std is 1.0 for a constant column.

    Raises:
      ValueError: if no train row has a value.
    """
    ok = train & ~np.isnan(values)
    v, c = values[ok], client[ok]
    sums = np.bincount(c, weights=v, minlength=num_clients)
    squares = np.bincount(c, weights=v * v, minlength=num_clients)
    counts = np.bincount(c, minlength=num_clients)
    total = counts.sum()
    if total == 0:
        raise ValueError("No train row has a value.")
    mean = sums.sum() / total
    var = max(squares.sum() / total - mean * mean, 0.0)
    std = float(np.sqrt(var)) if var > 1e-12 * max(1.0, mean * mean) else 1.0
    return float(mean), std


def _encode_features(df, feature_columns, categorical, client, train):
    """float32 [N, F] features, their names, and the numeric means and stds."""
    num_clients = int(client.max()) + 1
    blocks, names, means, stds = [], [], {}, {}
    for column in feature_columns:
        series = df[column]
        missing = series.isna().to_numpy()
        if column in categorical:
            for category in _sorted_unique(series):
                blocks.append(series.eq(category).to_numpy(dtype=bool, na_value=False))
                names.append(f"{column}={_format(category)}")
        else:
            values = series.to_numpy(np.float64, na_value=np.nan)
            try:
                mean, std = federated_mean_std(values, client, train, num_clients)
            except ValueError:
                raise ValueError(f"Feature {column!r} has no value in any train row.") from None
            means[column], stds[column] = mean, std
            blocks.append((np.where(missing, mean, values) - mean) / std)
            names.append(column)
        if missing.any():
            blocks.append(missing)
            names.append(f"{column}_missing")
    x = np.stack(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    return x.astype(np.float32), tuple(names), means, stds


def _check_classes(column, series, classes, max_classes):
    """ValueError for an implausible classification target (see the module docstring)."""
    if len(classes) > max_classes:
        raise ValueError(
            f"Classification target {column!r} has {len(classes)} distinct values, more than "
            f"max_classes={max_classes}: if it is a number to predict, make it "
            f"{column}:regression; if it really has that many classes, raise max_classes "
            "(--max_classes)."
        )
    if _is_numeric(series):
        values = series.to_numpy(np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isnan(values) & (values != np.round(values)))
        if len(bad):
            shown = ", ".join(str(values[p]) for p in bad[: columns_lib.SHOWN])
            raise ValueError(
                f"Classification target {column!r} has non-integer values at "
                f"{columns_lib.rows_text(bad)}: {shown}. Class labels are integers or text; "
                f"fix those cells, or make it {column}:regression."
            )


def _encode_targets(df, targets, max_classes=MAX_CLASSES):
    """(TaskSpecs, {task: labels [N]}, {task: bool label_mask [N]})."""
    tasks, labels, masks = [], {}, {}
    for column, kind in targets.items():
        series = df[column]
        present = series.notna().to_numpy()
        if not present.any():
            raise ValueError(f"Target {column!r} is missing in every row.")
        if kind == "regression":
            if not _is_numeric(series):
                raise ValueError(
                    f"Regression target {column!r} is not numeric (dtype {series.dtype})."
                )
            values = series.to_numpy(np.float64, na_value=0.0).astype(np.float32)
            tasks.append(spec_lib.TaskSpec(name=column, kind="regression"))
        else:
            classes = _sorted_unique(series)
            if len(classes) < 2:
                raise ValueError(f"Classification target {column!r} has only one class.")
            _check_classes(column, series, classes, max_classes)
            index = {c: i for i, c in enumerate(classes)}
            ids = np.array([index[v] if p else 0 for v, p in zip(series, present, strict=True)])
            names = tuple(_format(c) for c in classes)
            if len(classes) == 2:
                values = ids.astype(np.float32)
                tasks.append(spec_lib.TaskSpec(name=column, kind="binary", class_names=names))
            else:
                values = ids.astype(np.int32)
                tasks.append(
                    spec_lib.TaskSpec(
                        name=column, kind="multiclass", num_classes=len(classes), class_names=names
                    )
                )
        labels[column], masks[column] = np.where(present, values, 0).astype(values.dtype), present
    return tuple(tasks), labels, masks


def _standardize_targets(tasks, labels, label_mask, client, train):
    """Regression labels standardised with federated train statistics (see module doc)."""
    labels, means, stds = dict(labels), {}, {}
    num_clients = int(client.max()) + 1
    for task in tasks:
        if task.kind != "regression":
            continue
        present = label_mask[task.name]
        values = np.where(present, labels[task.name].astype(np.float64), np.nan)
        try:
            mean, std = federated_mean_std(values, client, train, num_clients)
        except ValueError:
            raise ValueError(f"Target {task.name!r} has no label in any train row.") from None
        means[task.name], stds[task.name] = mean, std
        scaled = np.where(present, (values - mean) / std, 0.0)
        labels[task.name] = scaled.astype(np.float32)
    return labels, means, stds


def _sorted_unique(series) -> list:
    """The distinct non-missing values, sorted (by their text if types are mixed)."""
    values = list(series.dropna().unique())
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _format(value) -> str:
    """A value as display text; integral floats without '.0' (ids read as floats)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
