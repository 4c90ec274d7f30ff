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
"""The kind of each table column, and the values a table may not hold.

A column read from a file has no declared type: one stray text cell ('n/a ', '?',
'12,5') in a numeric column makes pandas read the whole column as text, and
one-hot encoding it then turns every distinct number into a category. So a
feature's kind is declared ('numeric' or 'categorical') or inferred robustly:

  * numeric dtype, or text whose every non-missing cell parses as a number: numeric;
  * text where at least `NUMERIC_SHARE` of the non-missing cells parse as numbers
    and the others do not: inconsistent, a ValueError naming the column, the rows
    and the values (fix the cells, or declare the column);
  * otherwise: categorical.

Non-finite values (inf, -inf, magnitudes beyond float32) are refused in numeric
features and regression targets, naming the column and the rows: they would
train to a NaN loss. A missing cell (empty, NA) stays missing: the tabular
encoding imputes features and masks targets (fedjax_m3t/data/tabular.py).

Rows are named by their 0-based position in the frame; in a CSV with one header
line, row r is line r + 2.
"""

from collections.abc import Mapping, Sequence

import numpy as np

KINDS = ("numeric", "categorical")
NUMERIC_SHARE = 0.9  # Text columns this numeric are numbers with stray cells.
FLOAT32_MAX = float(np.finfo(np.float32).max)
SHOWN = 5  # Offending rows named in a message.


def rows_text(positions: np.ndarray) -> str:
    """'rows 3, 7 (CSV lines 5, 9)' for the first SHOWN positions, and how many more.

    >>> rows_text(np.array([3, 7]))
    'rows 3, 7 (CSV lines 5, 9)'
    """
    shown = [int(p) for p in positions[:SHOWN]]
    more = f" and {len(positions) - SHOWN} more" if len(positions) > SHOWN else ""
    word = "row" if len(positions) == 1 else "rows"
    lines = ", ".join(str(p + 2) for p in shown)
    plural = "s" if len(shown) > 1 else ""
    return f"{word} {', '.join(map(str, shown))}{more} (CSV line{plural} {lines})"


def _parsed(series):
    import pandas as pd  # noqa: PLC0415 - pandas comes with the DataFrame.

    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(np.float64)
    text = series.astype("string").str.strip()
    return pd.to_numeric(text, errors="coerce")


def kinds(df, columns: Sequence[str], declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """{column: 'numeric' | 'categorical'} of feature columns (declared ones as given).

    >>> import pandas as pd
    >>> df = pd.DataFrame({'a': ['1', '2.5', None], 'b': ['x', 'y', 'x'], 'c': [1, 2, 3]})
    >>> kinds(df, ['a', 'b', 'c'])
    {'a': 'numeric', 'b': 'categorical', 'c': 'numeric'}

    Raises:
      ValueError: for an unknown declared kind, a declared numeric column with a
        cell that is not a number, or an inconsistent column (see module docstring).
    """
    declared = dict(declared or {})
    out = {}
    for column in columns:
        kind = declared.get(column)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"Column {column!r}: kind {kind!r} is not one of {KINDS}.")
        if kind == "categorical":
            out[column] = kind
            continue
        series = df[column]
        parsed = _parsed(series)
        if parsed is None:  # Booleans are categories.
            out[column] = "categorical"
            continue
        present = series.notna().to_numpy()
        bad = np.flatnonzero(present & parsed.isna().to_numpy())
        numbers = int(present.sum()) - len(bad)
        if not len(bad):
            out[column] = "numeric"
        elif kind == "numeric" or numbers >= NUMERIC_SHARE * max(int(present.sum()), 1):
            values = ", ".join(repr(str(series.iloc[p])) for p in bad[:SHOWN])
            raise ValueError(
                f"Column {column!r} is numeric but {rows_text(bad)}: {values} "
                f"{'is not a number' if len(bad) == 1 else 'are not numbers'}. Fix those cells "
                "(leave them empty if missing), or "
                f"declare it categorical (experiments.train: --column_kinds={column}:categorical)."
            )
        else:
            out[column] = "categorical"
    return out


def as_numbers(df, columns: Sequence[str]):
    """A copy of `df` with these (numeric-kind) columns as float64."""
    df = df.copy()
    for column in columns:
        df[column] = _parsed(df[column])
    return df


def check_finite(df, columns: Sequence[str], role: str = "Column") -> None:
    """Raises ValueError naming the column and rows of an inf or a value beyond float32.

    Missing values (NaN) are allowed: they are imputed (features) or masked (targets).
    """
    for column in columns:
        values = df[column].to_numpy(np.float64, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX))
        if len(bad):
            shown = ", ".join(str(values[p]) for p in bad[:SHOWN])
            raise ValueError(
                f"{role} {column!r} has non-finite or out-of-float32-range values at "
                f"{rows_text(bad)}: {shown}. Fix or empty those cells."
            )
