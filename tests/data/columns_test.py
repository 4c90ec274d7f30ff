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
"""Column kinds and values refused at load time (issue #18, 1.3 and 1.4)."""

import numpy as np
import pytest

from fedjax_m3t.data import columns, tabular

pd = pytest.importorskip("pandas")


def _frame(x, y=None, n=None):
    n = len(x)
    return pd.DataFrame(
        {"school": [i % 2 for i in range(n)], "x": x, "y": y if y is not None else [0.0] * n}
    )


def test_kinds_are_inferred_robustly():
    df = pd.DataFrame(
        {
            "num": [1.0, 2.0, 3.0, 4.0],
            "num_text": [" 1", "2.5", None, "-3e2"],  # Numbers read as text: numeric.
            "cat": ["a", "b", "a", "c"],
            "mostly_text": ["a", "b", "1", "c"],  # 1 of 4 numbers: categorical.
            "flag": [True, False, True, True],  # Booleans are categories.
        }
    )
    assert columns.kinds(df, list(df.columns)) == {
        "num": "numeric",
        "num_text": "numeric",
        "cat": "categorical",
        "mostly_text": "categorical",
        "flag": "categorical",
    }
    assert columns.kinds(df, ["num"], {"num": "categorical"}) == {"num": "categorical"}
    np.testing.assert_allclose(
        columns.as_numbers(df, ["num_text"])["num_text"], [1.0, 2.5, np.nan, -300.0]
    )


def test_a_numeric_column_with_stray_text_names_column_row_and_value():
    values = [str(i) for i in range(30)]
    values[17] = "12,5"  # A decimal comma: pandas reads the whole column as text.
    with pytest.raises(
        ValueError, match=r"Column 'x' is numeric but row 17 \(CSV line 19\): '12,5'"
    ):
        columns.kinds(pd.DataFrame({"x": values}), ["x"])
    values[3] = "?"
    with pytest.raises(ValueError, match=r"rows 3, 17 \(CSV lines 5, 19\): '\?', '12,5'"):
        columns.kinds(pd.DataFrame({"x": values}), ["x"])
    # Declared numeric: any text cell is an error, however many there are.
    with pytest.raises(ValueError, match=r"rows 0, 1 \(CSV lines 2, 3\): 'a', 'b' are not numbers"):
        columns.kinds(pd.DataFrame({"x": ["a", "b"]}), ["x"], {"x": "numeric"})
    with pytest.raises(ValueError, match="kind 'number' is not one of"):
        columns.kinds(pd.DataFrame({"x": [1]}), ["x"], {"x": "number"})


def test_non_finite_values_are_refused_with_rows():
    for bad, shown in ((np.inf, "inf"), (-np.inf, "-inf"), (1e39, r"1e\+39")):
        x = [0.5, 1.0, bad, 2.0, 3.0, bad]
        with pytest.raises(ValueError, match=rf"Feature 'x' .* rows 2, 5 .*: {shown}"):
            tabular.federation_from_dataframe(
                _frame(x), client_column="school", feature_columns=["x"],
                targets={"y": "regression"}, verbose=False,
            )  # fmt: skip
    with pytest.raises(ValueError, match=r"Target 'y' .* row 1 "):
        tabular.federation_from_dataframe(
            _frame([1.0, 2.0, 3.0], y=[0.0, np.inf, 1.0]), client_column="school",
            feature_columns=["x"], targets={"y": "regression"}, verbose=False,
        )  # fmt: skip
    # NaN is a missing value: imputed (feature) or masked (target), not refused.
    tab = tabular.federation_from_dataframe(
        _frame([1.0, np.nan, 3.0, 4.0], y=[0.0, 1.0, np.nan, 2.0]), client_column="school",
        feature_columns=["x"], targets={"y": "regression"}, test_fraction=0.0, verbose=False,
    )  # fmt: skip
    assert tab.feature_names == ("x", "x_missing")
    assert int(tab.federation.train["label_mask"]["y"].sum()) == 3


def test_implausible_classification_targets_are_refused_unless_asked(capsys):
    n = 120
    x = list(np.linspace(0, 1, n))
    many = [float(i) for i in range(n)]  # 120 distinct values: a regression target.
    kwargs = dict(client_column="school", feature_columns=["x"], verbose=False)
    with pytest.raises(ValueError, match="'y' has 120 distinct values, more than max_classes=50"):
        tabular.federation_from_dataframe(
            _frame(x, many), targets={"y": "classification"}, **kwargs
        )
    tab = tabular.federation_from_dataframe(
        _frame(x, many), targets={"y": "classification"}, max_classes=200, **kwargs
    )
    assert tab.federation.spec.task("y").num_classes == 120
    stray = [float(i % 2) for i in range(n)]
    stray[41] = 0.5
    with pytest.raises(ValueError, match=r"non-integer values at row 41 \(CSV line 43\): 0.5"):
        tabular.federation_from_dataframe(
            _frame(x, stray), targets={"y": "classification"}, **kwargs
        )
    # The summary prints the class count of every classification task.
    tabular.federation_from_dataframe(
        _frame(x, [["lo", "mid", "hi"][i % 3] for i in range(n)]),
        targets={"y": "classification"}, client_column="school", feature_columns=["x"],
    )  # fmt: skip
    assert "task y: multiclass, 3 classes (hi, lo, mid)" in capsys.readouterr().out
