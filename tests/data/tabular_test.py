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
"""Tests for building a federation from a DataFrame (fedjax_m3t.data.tabular).

The frames are small and made by hand, so every count below can be checked by eye.
"""

import contextlib
import io

import chex
import jax
import numpy as np
import pandas as pd
from absl.testing import absltest, parameterized

from fedjax_m3t.algorithms import base, local_training, registry
from fedjax_m3t.data import tabular
from fedjax_m3t.models import linear

NAN = float("nan")


def _frame() -> pd.DataFrame:
    """9 rows: schools 1 (4 rows), 2 (3 rows), 3 (1 row) and one row with no school.

    School 2 has no 'y' label at all; school 1's x has one missing value.
    """
    return pd.DataFrame(
        {
            "school": [1, 1, 1, 1, 2, 2, 2, 3, NAN],
            "lea": ["a", "a", "a", "a", "b", "b", "b", "a", "b"],
            "x": [1.0, NAN, 3.0, 5.0, 2.0, 4.0, 6.0, 7.0, 9.0],
            "z": [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
            "g": ["u", "v", "u", "w", "v", "v", "u", "w", "u"],
            "y": [1.0, 2.0, NAN, 4.0, NAN, NAN, NAN, 8.0, 9.0],
            "c": ["p", "q", "p", "q", "q", "p", "p", "q", "p"],
            "k": [0, 1, 2, 0, 1, 2, 0, 1, 2],
        }
    )


def _build(df=None, **kwargs) -> tabular.Table:
    args = dict(
        client_column="school",
        feature_columns=["x", "z", "g"],
        categorical_columns=["g"],
        targets={"y": "regression", "c": "classification", "k": "classification"},
        group_column="lea",
        verbose=False,
    )
    args.update(kwargs)
    return tabular.federation_from_dataframe(_frame() if df is None else df, **args)


class TabularTest(chex.TestCase, parameterized.TestCase):
    def test_every_row_lands_in_exactly_one_client(self):
        df = _frame()
        tab = _build(df)
        fed = tab.federation
        self.assertEqual(fed.client_names, ("1", "2", "3"))
        # The row without a school (position 8) is the only one dropped, and counted.
        self.assertEqual(tab.drops, {"missing_client": 1})
        rows = np.concatenate(tab.federation.train_rows + tab.federation.test_rows)
        np.testing.assert_array_equal(np.sort(rows), np.arange(8))
        for c, name in enumerate(fed.client_names):
            for row in np.concatenate([tab.federation.train_rows[c], tab.federation.test_rows[c]]):
                self.assertEqual(str(int(df.school[row])), name)
        total = int(fed.num_examples("train").sum() + fed.num_examples("test").sum())
        self.assertEqual(total, len(df) - sum(tab.drops.values()))  # 9 - 1.
        np.testing.assert_array_equal(
            fed.num_examples("train") + fed.num_examples("test"), [4, 3, 1]
        )

    def test_every_client_in_exactly_one_group(self):
        tab = _build()
        self.assertEqual(
            tab.federation.groups, ("a", "b", "a")
        )  # The dropped row's 'b' plays no part.

    def test_client_in_two_groups_raises(self):
        df = _frame()
        df.loc[0, "lea"] = "b"
        with self.assertRaisesRegex(ValueError, "Client '1' has several values.*'lea'"):
            _build(df)

    def test_split_keeps_a_test_row_and_one_row_client_trains(self):
        tab = _build(test_fraction=0.25)
        # School 1: round(0.25 * 4) = 1 test row; school 2: round(0.75) = 1; school 3
        # has one row, which stays in train, and an empty test set.
        np.testing.assert_array_equal(tab.federation.num_examples("test"), [1, 1, 0])
        np.testing.assert_array_equal(tab.federation.num_examples("train"), [3, 2, 1])
        self.assertEqual(tab.federation.train_rows[2].tolist(), [7])
        self.assertEqual(tab.federation.test_rows[2].tolist(), [])

    def test_split_is_seeded(self):
        first, again, other = _build(seed=0), _build(seed=0), _build(seed=1, test_fraction=0.5)
        for a, b in zip(first.federation.test_rows, again.federation.test_rows, strict=True):
            np.testing.assert_array_equal(a, b)
        # test_fraction=0.5 of 4 and 3 rows: 2 each (0.5 * 3 = 1.5 rounds to 2, clipped to 2).
        np.testing.assert_array_equal(other.federation.num_examples("test"), [2, 2, 0])

    def test_other_seed_other_split(self):
        rng = np.random.default_rng(0)
        df = pd.DataFrame({"school": rng.integers(0, 5, 200), "x": rng.normal(size=200)})
        df["y"] = df.x * 2.0

        def test_rows(seed):
            tab = tabular.federation_from_dataframe(
                df, client_column="school", feature_columns=["x"], targets={"y": "regression"},
                seed=seed, verbose=False,
            )  # fmt: skip
            return np.sort(np.concatenate(tab.federation.test_rows))

        # round(0.25 * n) test rows per school (all schools have more than 4 rows).
        sizes = df.school.value_counts().to_numpy()
        self.assertLen(test_rows(0), int(np.floor(0.25 * sizes + 0.5).sum()))
        np.testing.assert_array_equal(test_rows(0), test_rows(0))
        self.assertFalse(np.array_equal(test_rows(0), test_rows(1)))

    def test_zero_test_fraction_puts_everything_in_train(self):
        tab = _build(test_fraction=0.0)
        np.testing.assert_array_equal(tab.federation.num_examples("train"), [4, 3, 1])
        self.assertEqual(int(tab.federation.test["mask"].sum()), 0)

    def test_standardisation_equals_pooled_train_statistics(self):
        rng = np.random.default_rng(0)
        df = pd.DataFrame(
            {
                "school": rng.integers(0, 12, 300),
                "x": rng.normal(3.0, 2.0, 300),
                "y": rng.normal(size=300),
            }
        )
        tab = tabular.federation_from_dataframe(
            df, client_column="school", feature_columns=["x"], targets={"y": "regression"},
            test_fraction=0.3, verbose=False,
        )  # fmt: skip
        train = df.iloc[np.concatenate(tab.federation.train_rows)]
        self.assertLen(train, int(tab.federation.num_examples("train").sum()))
        np.testing.assert_allclose(tab.means["x"], train.x.mean(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(tab.stds["x"], train.x.std(ddof=0), rtol=1e-12, atol=0)
        # The stored features are (x - mean) / std, for train and test rows alike.
        fed = tab.federation
        for split, rows in (
            ("train", tab.federation.train_rows),
            ("test", tab.federation.test_rows),
        ):
            data = getattr(fed, split)
            for c, r in enumerate(rows):
                expected = (df.x.to_numpy()[r] - tab.means["x"]) / tab.stds["x"]
                got = data["inputs"]["tabular"][c, : len(r), 0]
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)

    def test_standardized_targets_use_labelled_train_rows(self):
        tab = _build(test_fraction=0.0, standardize_targets=True)
        # Labelled 'y' rows with a school: 1, 2, 4 (school 1) and 8 (school 3).
        labelled = np.array([1.0, 2.0, 4.0, 8.0])
        self.assertAlmostEqual(tab.target_means["y"], labelled.mean(), places=12)
        self.assertAlmostEqual(tab.target_stds["y"], labelled.std(), places=12)
        self.assertEqual(set(tab.target_means), {"y"})  # Only regression targets.
        fed = tab.federation
        keep = fed.train["mask"] & fed.train["label_mask"]["y"]
        scaled = fed.train["labels"]["y"][keep]
        np.testing.assert_allclose(scaled * tab.target_stds["y"] + tab.target_means["y"],
                                   labelled, rtol=0, atol=1e-5)  # fmt: skip
        self.assertEqual(_build().target_means, {})  # Raw labels by default.

    def test_nullable_dtypes(self):
        df = _frame().astype({"school": "Int64", "g": "string"})
        df.loc[1, "g"] = pd.NA
        tab = _build(df, test_fraction=0.0)
        self.assertEqual(tab.federation.client_names, ("1", "2", "3"))
        self.assertEqual(tab.drops, {"missing_client": 1})
        self.assertIn("g_missing", tab.feature_names)
        g = tab.federation.train["inputs"]["tabular"][0, 1, 3:]  # School 1's second row.
        np.testing.assert_array_equal(g, [0.0, 0.0, 0.0, 1.0])  # g=u, g=v, g=w, g_missing.

    def test_missing_numeric_is_imputed_and_flagged(self):
        tab = _build(test_fraction=0.0)
        # Train mean of x over the 7 non-missing rows with a school: (1+3+5+2+4+6+7)/7 = 4.
        self.assertAlmostEqual(tab.means["x"], 4.0, places=12)
        self.assertAlmostEqual(tab.stds["x"], np.std([1, 3, 5, 2, 4, 6, 7]), places=12)
        self.assertEqual(
            tab.feature_names, ("x", "x_missing", "z", "g=u", "g=v", "g=w")
        )  # No 'z_missing' (z is complete); categories sorted.
        x = tab.federation.train["inputs"]["tabular"]
        np.testing.assert_array_equal(x[0, 1], [0.0, 1.0, x[0, 1, 2], 0.0, 1.0, 0.0])
        np.testing.assert_array_equal(x[0, :4, 1], [0, 1, 0, 0])
        np.testing.assert_array_equal(x[0, :4, 3:].sum(axis=1), [1, 1, 1, 1])

    def test_targets_masked_not_dropped(self):
        tab = _build(test_fraction=0.0)
        fed = tab.federation
        kinds = {t.name: (t.kind, t.num_classes, t.class_names) for t in fed.spec.tasks}
        self.assertEqual(kinds["y"], ("regression", 1, ()))
        self.assertEqual(kinds["c"], ("binary", 1, ("p", "q")))
        self.assertEqual(kinds["k"], ("multiclass", 3, ("0", "1", "2")))
        # School 2 has no 'y' label: all masked, its rows kept for 'c' and 'k'.
        np.testing.assert_array_equal(fed.label_coverage()["y"], [3, 0, 1])
        np.testing.assert_array_equal(fed.label_coverage()["c"], [4, 3, 1])
        np.testing.assert_array_equal(fed.train["labels"]["c"][0, :4], [0, 1, 0, 1])
        np.testing.assert_array_equal(fed.train["labels"]["k"][1, :3], [1, 2, 0])

    def test_unlabelled_client_gives_its_task_head_zero_weight(self):
        fed = _build(test_fraction=0.0).federation
        model = linear.build_linear_model(fed.spec)
        algorithm = registry.build_algorithm(
            "fedavg",
            model,
            local=local_training.LocalTrainingConfig(local_steps=1, batch_size=None),
            client_learning_rate=0.1,
        )
        params = model.init(jax.random.key(0))
        school2 = jax.tree.map(lambda x: x[1], fed.train)
        state = algorithm.init_client_state(params)
        out = jax.jit(algorithm.client_update)(
            params, state, school2, base.make_context(jax.random.key(0))
        )
        for leaf in jax.tree.leaves(out.weight["heads"]["y"]):
            self.assertEqual(float(leaf), 0.0)
        for leaf in jax.tree.leaves(out.delta["heads"]["y"]):
            np.testing.assert_array_equal(leaf, 0.0)
        for leaf in jax.tree.leaves(out.weight["heads"]["c"]):
            self.assertEqual(float(leaf), 3.0)

    @parameterized.named_parameters(
        ("missing_column", dict(feature_columns=["x", "nope"]), "'nope'"),
        ("bad_kind", dict(targets={"y": "ordinal"}), "Target 'y': kind 'ordinal'"),
        ("text_regression", dict(targets={"c": "regression"}), "Regression target 'c'"),
        ("text_feature", dict(categorical_columns=[]), "Feature 'g' is not numeric"),
        ("missing_group", dict(group_column="district"), "'district'"),
    )
    def test_errors_name_the_column(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            _build(**kwargs)

    def test_all_missing_target_raises(self):
        df = _frame().assign(y=NAN)
        with self.assertRaisesRegex(ValueError, "Target 'y' is missing in every row"):
            _build(df)

    def test_empty_frame_raises(self):
        with self.assertRaisesRegex(ValueError, "empty"):
            _build(_frame().iloc[:0])

    def test_verbose_prints_summary_groups_and_drops(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _build(verbose=True)
        text = out.getvalue()
        self.assertIn("Federation: 3 clients", text)
        self.assertIn("groups (lea): 2", text)
        self.assertIn("missing_client: 1", text)


def _records() -> pd.DataFrame:
    """9 longitudinal records (years 2019-2021) of students at schools 1 and 2.

    Student 'a' has three records at school 1 (listed out of time order, the 2020
    one without 'y') and one at school 2 (a change of school); row 6 has no student
    id and row 7 no year.
    """
    return pd.DataFrame(
        {
            "school": [1, 1, 1, 1, 1, 2, 2, 2, 2],
            "sid": ["a", "a", "b", "a", "b", "a", None, "c", "c"],
            "year": [2021, 2019, 2019, 2020, 2020, 2021, 2019, NAN, 2020],
            "x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "y": [3.0, 1.0, 2.0, NAN, 4.0, 5.0, 6.0, 7.0, 8.0],
            "c": ["q", "p", "q", "q", "p", "p", "q", "p", "q"],
        }
    )


def _build_records(df=None, **kwargs) -> tabular.Table:
    args = dict(
        client_column="school",
        feature_columns=["x"],
        targets={"y": "regression", "c": "classification"},
        student_column="sid",
        time_column="year",
        test_fraction=0.0,
        interaction_length=5,
        verbose=False,
    )
    args.update(kwargs)
    return tabular.federation_from_dataframe(_records() if df is None else df, **args)


class LongitudinalTest(chex.TestCase, parameterized.TestCase):
    def test_sequences_equal_hand_built_ones(self):
        tab = _build_records()
        fed = tab.federation
        self.assertEqual(fed.spec.modalities, ("tabular", "interaction"))
        # K = 2 targets (y, c), T = 3 years, B = 4 levels: blocks of B + 1 = 5 ids;
        # skill(k, t, level) = 1 + (k * 3 + t) * 5 + level, query(t) = 1 + 2*3*5 + t.
        self.assertEqual((fed.spec.num_skills, fed.spec.interaction_length), (33, 5))
        self.assertEqual(tab.time_values, ("2019", "2020", "2021"))
        self.assertEqual(tab.unlinked, {"missing_student": 1, "missing_time": 1})
        # Standings within each year among the train labels (all rows train here):
        #   y 2019 ref [1, 2, 6]: row 1 (v=1) u=1/6 -> level 0, resp 0;
        #                         row 2 (v=2) u=3/6 -> level 2, resp 0 (not above).
        #   y 2020 ref [4, 8]: row 4 (v=4) u=1/4 -> level 1, resp 0; row 3 missing.
        #   c (p=0, q=1) 2019 ref [0, 1, 1]: row 1 (p) u=1/6 -> 0, 0; row 2 (q) u=4/6 -> 2, 1.
        #   c 2020 ref [1, 0, 1]: row 3 (q) u=4/6 -> level 2, resp 1; row 4 (p) -> 0, 0.
        a19 = [[1, 0], [16, 0]]  # y: 1 + 0 + 0;  c: 1 + 3*5 + 0.
        a20 = [[10, 2], [23, 1]]  # y missing: 1 + 5 + 4;  c: 1 + (3+1)*5 + 2.
        b19 = [[3, 0], [18, 1]]  # y: 1 + 0 + 2;  c: 1 + 15 + 2.
        pad = [[0, 0]]
        school1 = [
            a19 + a20 + [[33, 2]],  # row 0, a 2021: 2019 then 2020, then its query.
            pad * 4 + [[31, 2]],  # row 1, a 2019: no earlier record, only the query.
            pad * 4 + [[31, 2]],  # row 2, b 2019.
            pad * 2 + a19 + [[32, 2]],  # row 3, a 2020.
            pad * 2 + b19 + [[32, 2]],  # row 4, b 2020.
        ]
        school2 = [
            pad * 4 + [[33, 2]],  # row 5, a at school 2: school 1's records are not held.
            pad * 5,  # row 6: no student id, no interaction.
            pad * 5,  # row 7: no year, no interaction (and in nobody's history).
            pad * 4 + [[32, 2]],  # row 8, c 2020: its record without a year is skipped.
        ]
        x = fed.train["inputs"]["interaction"]
        np.testing.assert_array_equal(x[0, :5], school1)
        np.testing.assert_array_equal(x[1, :4], school2)
        np.testing.assert_array_equal(
            fed.train["present"]["interaction"], [[1, 1, 1, 1, 1], [1, 0, 0, 1, 0]]
        )
        np.testing.assert_array_equal(fed.train["present"]["tabular"][1], [1, 1, 1, 1, 0])
        # Each row keeps its own targets.
        np.testing.assert_array_equal(fed.train["labels"]["y"][0], [3, 1, 2, 0, 4])
        np.testing.assert_array_equal(fed.train["label_mask"]["y"][0], [1, 1, 1, 0, 1])

    def test_history_keeps_the_most_recent_records(self):
        # L = 3 leaves room for floor((3 - 1) / 2) = 1 earlier record: row 0 keeps 2020.
        x = _build_records(interaction_length=3).federation.train["inputs"]["interaction"]
        np.testing.assert_array_equal(x[0, 0], [[10, 2], [23, 1], [33, 2]])
        with self.assertRaisesRegex(ValueError, "interaction_length=2 .* must be >= 3"):
            _build_records(interaction_length=2)

    def test_students_stay_in_one_split(self):
        rng = np.random.default_rng(0)
        students = np.repeat(np.arange(40), 3)  # 40 students, 3 years each.
        df = pd.DataFrame(
            {
                "school": students % 4,
                "sid": students.astype(float),
                "year": np.tile([1, 2, 3], 40),
                "x": rng.normal(size=120),
                "y": rng.normal(size=120),
            }
        )
        df.loc[[0, 1], "sid"] = NAN  # Student 0's first two rows lose their id.
        tab = tabular.federation_from_dataframe(
            df, client_column="school", feature_columns=["x"], targets={"y": "regression"},
            student_column="sid", time_column="year", test_fraction=0.25, verbose=False,
        )  # fmt: skip
        self.assertEqual(tab.unlinked, {"missing_student": 2})
        train = np.concatenate(tab.federation.train_rows)
        test = np.concatenate(tab.federation.test_rows)
        in_train = set(df.sid[train].dropna())
        in_test = set(df.sid[test].dropna())
        self.assertEqual(in_train & in_test, set())  # No student in both splits.
        self.assertLen(in_train | in_test, 40)
        # School 0 has 10 students + student 0's 2 id-less rows as their own units:
        # 12 units -> round(3) = 3 test units; schools 1-3: 10 students -> round(2.5) = 3.
        units = [
            len(set(df.sid[r].dropna())) + int(df.sid[r].isna().sum())
            for r in tab.federation.test_rows
        ]
        self.assertEqual(units, [3, 3, 3, 3])

    def test_time_as_ordered_categorical_or_text(self):
        df = _records().assign(year=["2", "K", "K", "1", "1", "2", "K", None, "1"])
        self.assertEqual(_build_records(df).time_values, ("1", "2", "K"))  # Sorted as text.
        df["year"] = pd.Categorical(df.year, categories=["K", "1", "2"], ordered=True)
        tab = _build_records(df)
        self.assertEqual(tab.time_values, ("K", "1", "2"))
        # Same order as the years 2019 < 2020 < 2021, so the same sequences.
        np.testing.assert_array_equal(
            tab.federation.train["inputs"]["interaction"],
            _build_records().federation.train["inputs"]["interaction"],
        )

    @parameterized.named_parameters(
        ("student_only", dict(time_column=None), "student_column='sid' needs time_column"),
        ("time_only", dict(student_column=None), "time_column='year' needs student_column"),
        ("missing_student", dict(student_column="pupil"), "'pupil' \\(student_column\\)"),
        ("missing_time", dict(time_column="grade"), "'grade' \\(time_column\\)"),
    )
    def test_longitudinal_errors_name_the_column(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            _build_records(**kwargs)

    def test_without_student_column_nothing_changes(self):
        tab = _build_records(student_column=None, time_column=None)
        self.assertEqual(tab.federation.spec.modalities, ("tabular",))
        self.assertEqual((tab.time_values, tab.unlinked), ((), {}))

    def test_verbose_reports_rows_without_history(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _build_records(verbose=True)
        self.assertIn("time points 2019, 2020, 2021", out.getvalue())
        self.assertIn("missing_student: 1, missing_time: 1", out.getvalue())


if __name__ == "__main__":
    absltest.main()
