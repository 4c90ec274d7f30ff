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
"""Tests of the EdNet KT1 pipeline: file format, streaming reader, TFDS builder, federation.

A small KT1 directory is generated once (6 latent centres, about 30 learners each),
built with the TFDS builder into a temporary data_dir, and read back without
TensorFlow. The expected counts are recomputed from the csv files with plain pandas,
independently of the reader.
"""

import contextlib
import io
import pathlib
import re
import shutil
import tempfile
import time
from unittest import mock

import numpy as np
import pandas as pd
from absl.testing import absltest

from fedjax_m3t.data import split as split_lib
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.ednet_kt1 import builder as ednet_kt1_builder
from fedjax_m3t.datasets.ednet_kt1 import reader, writer
from tests import helpers

_L = ednet_kt1_builder.INTERACTION_LENGTH
_MAX = ednet_kt1_builder.MAX_WINDOWS_PER_STUDENT


def _quiet(fn, *args, **kwargs):
    """Calls fn with stdout captured; returns (result, printed text)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        return fn(*args, **kwargs), out.getvalue()


def _raw(root: pathlib.Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every user-file row with user_id, file and line; questions.csv), as strings."""
    frames = []
    for path in sorted((root / "KT1").iterdir()):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(frame.assign(user_id=int(path.stem[1:]), file=f"KT1/{path.name}",
                                   line=np.arange(2, len(frame) + 2)))  # fmt: skip
    questions = pd.read_csv(root / "contents" / "questions.csv", dtype=str)
    return pd.concat(frames, ignore_index=True), questions


def _expected(root: pathlib.Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept interactions, malformed rows) per the documented rules, with pandas only."""
    raw, questions = _raw(root)
    raw["ts"] = pd.to_numeric(raw.timestamp, errors="coerce")
    bad = raw.ts.isna() | ~raw.question_id.isin(questions.question_id)
    good = raw[~bad].merge(questions, on="question_id", how="left")
    months = pd.to_datetime(good.groupby("user_id").ts.min(), unit="ms").dt.strftime("%Y%m")
    good["start_month"] = good.user_id.map(months.astype(int))
    good["tag"] = good.tags.str.split(";").str[0].astype(int)
    good["correct"] = (good.user_answer == good.correct_answer).astype(int)
    kept = good[good.tag >= 0].sort_values(["user_id", "ts", "line"], kind="stable")
    return kept.reset_index(drop=True), raw[bad]


class EdnetTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = pathlib.Path(tempfile.mkdtemp())
        cls.manual = writer.write_ednet_kt1(cls.tmp / "manual", students_per_centre=30, seed=0)
        cls.builder = ednet_kt1_builder.EdnetKt1(data_dir=str(cls.tmp / "tfds"))
        _quiet(common.prepare, cls.builder, manual_dir=cls.manual)
        cls.source = cls.builder.as_data_source(split="train")
        cls.data = common.read_all(cls.builder)
        cls.kept, cls.bad = _expected(cls.manual)
        cls.fed = ednet_kt1_builder.federation_from_builder(cls.builder)  # Natural, seed 0.

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        super().tearDownClass()

    def _copy(self) -> pathlib.Path:
        root = pathlib.Path(tempfile.mkdtemp(dir=self.tmp)) / "copy"
        shutil.copytree(self.manual, root)
        return root

    def test_files_have_the_real_layout(self):
        raw, questions = _raw(self.manual)
        self.assertEqual(tuple(questions.columns), reader.QUESTION_COLUMNS)
        self.assertEqual(tuple(raw.columns[:5]), reader.COLUMNS)
        self.assertTrue(raw.question_id.str.fullmatch(r"q\d+").all())
        self.assertTrue(questions.bundle_id.str.fullmatch(r"b\d+").all())
        self.assertTrue(set(questions.part.astype(int)) <= set(range(1, 8)))
        self.assertEqual(set(raw.user_answer), {"", "a", "b", "c", "d"})
        self.assertIn("-1", set(questions.tags))
        # The quirks are about 5% of the rows.
        quirky = (raw.user_answer == "").sum() + len(self.bad)
        self.assertBetween(quirky / len(raw), 0.03, 0.07)
        # A bundle's questions share solving_id and elapsed_time; rows are in time order.
        per_bundle = raw.groupby(["user_id", "solving_id"]).elapsed_time.nunique()
        self.assertEqual(per_bundle.max(), 1)
        self.assertGreater(raw.groupby(["user_id", "solving_id"]).size().max(), 1)
        ts = pd.to_numeric(raw.timestamp, errors="coerce")
        ok = ts.notna()
        self.assertTrue((ts[ok].groupby(raw.user_id[ok]).diff().dropna() > 0).all())

    def test_reader_counts_drops_like_pandas(self):
        df, printed = _quiet(reader.read_ednet_kt1, self.manual)
        raw, _ = _raw(self.manual)
        kept = self.kept
        self.assertEqual(df.attrs["rows"], len(raw))
        self.assertEqual(df.attrs["user_files"], raw.user_id.nunique())
        self.assertEqual(
            [(f, line) for f, line, _ in df.attrs["malformed"]],
            sorted(zip(self.bad.file, self.bad.line, strict=True)),
        )
        good_rows = len(raw) - len(self.bad)
        self.assertEqual(df.attrs["no_tag_rows"], good_rows - len(kept))
        self.assertEqual(df.attrs["empty_answers"], int((kept.user_answer == "").sum()))
        df = df.sort_values(["user_id", "order_id"], kind="stable")
        np.testing.assert_array_equal(df.user_id, kept.user_id)
        np.testing.assert_array_equal(df.timestamp, kept.ts.astype(np.int64))
        np.testing.assert_array_equal(df.tag, kept.tag)
        np.testing.assert_array_equal(df.part, kept.part.astype(int))
        np.testing.assert_array_equal(df.correct, kept.correct)
        np.testing.assert_array_equal(df.start_month, kept.start_month)
        np.testing.assert_array_equal(df.order_id, kept.groupby("user_id").cumcount())
        self.assertIn(f"{df.attrs['empty_answers']} empty answers counted wrong", printed)
        self.assertIn(f"{len(self.bad)} malformed rows at KT1/u", printed)

    def test_max_users_reads_the_first_files_and_prints_progress(self):
        df, printed = _quiet(reader.read_ednet_kt1, self.manual, max_users=5, progress_every=2)
        first = sorted(p.name for p in (self.manual / "KT1").iterdir())[:5]
        self.assertEqual(list(pd.unique(df.user_id)), [int(n[1:-4]) for n in first])
        self.assertEqual(df.attrs["user_files"], 5)
        self.assertIn("EdNet KT1: 2/5 user files read", printed)
        self.assertIn("EdNet KT1: 4/5 user files read", printed)
        with self.assertRaisesRegex(ValueError, "max_users"):
            reader.read_ednet_kt1(self.manual, max_users=0)

    def test_example_count_and_shapes(self):
        sizes = self.kept.groupby("user_id").size().to_numpy()
        expected = int(np.minimum(sizes - 1, _MAX).sum())  # Every interaction after the first.
        self.assertLen(self.source, expected)
        example = self.source[0]
        self.assertEqual(np.asarray(example["interaction"]).shape, (_L, 2))
        self.assertEqual(np.asarray(example["interaction"]).dtype, np.int32)
        self.assertEqual(self.data["interaction"].shape, (expected, _L, 2))
        for key in ("label", "start_month", "user_id", "order_id"):
            self.assertEqual(self.data[key].shape, (expected,))
        self.assertEqual(set(np.unique(self.data["label"])), {0, 1})
        np.testing.assert_array_equal(self.data["interaction"][:, -1, 1], 2)

    def test_reading_an_example_twice_gives_the_same_values(self):
        again = self.builder.as_data_source(split="train")
        for i in (0, 7, len(self.source) - 1):
            first, second, third = self.source[i], self.source[i], again[i]
            for key in first:
                np.testing.assert_array_equal(first[key], second[key])
                np.testing.assert_array_equal(first[key], third[key])

    def test_windows_hold_the_learners_previous_interactions(self):
        kept = self.kept
        for i in (0, 3, 100, len(self.source) - 1):
            d = self.data
            mine = kept[kept.user_id == d["user_id"][i]]
            k = int(d["order_id"][i])  # order_id is the rank in the learner's time order.
            history = mine.iloc[max(0, k - _L + 1) : k + 1]
            want = np.stack([history.tag + 1, history.correct], axis=-1)  # Skill = tag + 1.
            want[-1, 1] = 2
            got = d["interaction"][i]
            np.testing.assert_array_equal(got[_L - len(want) :], want)
            np.testing.assert_array_equal(got[: _L - len(want)], 0)
            self.assertEqual(d["label"][i], mine.correct.iloc[k])
            self.assertEqual(d["start_month"][i], mine.start_month.iloc[0])

    def test_a_subset_built_in_blocks_matches_the_full_build(self):
        # max_users=20 in blocks of 7 users: the windows of those users, unchanged.
        first = sorted(p.name for p in (self.manual / "KT1").iterdir())[:20]
        users = [int(n[1:-4]) for n in first]
        builder = ednet_kt1_builder.EdnetKt1(data_dir=str(self.tmp / "tfds_20"), max_users=20)
        with mock.patch.object(ednet_kt1_builder, "_USERS_PER_BLOCK", 7):
            _quiet(common.prepare, builder, manual_dir=self.manual)
        sub = common.read_all(builder)
        sizes = self.kept[self.kept.user_id.isin(users)].groupby("user_id").size().to_numpy()
        self.assertLen(sub["label"], int(np.minimum(sizes - 1, _MAX).sum()))
        keys = zip(self.data["user_id"], self.data["order_id"], strict=True)
        full = {key: i for i, key in enumerate(keys)}
        rows = [full[(u, o)] for u, o in zip(sub["user_id"], sub["order_id"], strict=True)]
        for key in sub:
            np.testing.assert_array_equal(sub[key], self.data[key][rows])

    def test_every_example_lands_in_exactly_one_client(self):
        d = self.data
        month = ednet_kt1_builder.month_names(d["start_month"])
        fed = self.fed
        names, client, train = common.partition(
            "natural", client_ids=month, student_ids=d["user_id"], labels=d["label"]
        )
        trains, tests = split_lib.client_rows(client, train, len(names))
        self.assertEqual(fed.client_names, names)
        rows = np.concatenate(trains + tests)
        np.testing.assert_array_equal(np.sort(rows), np.arange(len(self.source)))
        # Client names are the start months 'YYYY-MM', one per distinct month.
        expected = sorted({f"{m // 100}-{m % 100:02d}" for m in self.kept.start_month})
        self.assertEqual(list(names), expected)
        self.assertLen(names, 6)  # One start month per latent centre.
        for name, train, test in zip(names, trains, tests, strict=True):
            self.assertTrue(np.all(month[np.concatenate([train, test])] == name))
            self.assertNotEmpty(test)
            self.assertEmpty(set(d["user_id"][train]) & set(d["user_id"][test]))
        np.testing.assert_array_equal(fed.num_examples("train"), [len(t) for t in trains])
        np.testing.assert_array_equal(fed.num_examples("test"), [len(t) for t in tests])
        skewed = ednet_kt1_builder.federation_from_builder(
            self.builder, partition="dirichlet", num_clients=5, alpha=0.1
        )
        names, client, train = common.partition(
            "dirichlet",
            client_ids=month,
            student_ids=d["user_id"],
            labels=d["label"],
            num_clients=5,
            alpha=0.1,
        )
        trains, tests = split_lib.client_rows(client, train, len(names))
        rows = np.concatenate(trains + tests)
        np.testing.assert_array_equal(np.sort(rows), np.arange(len(self.source)))
        self.assertEqual(skewed.client_names, tuple(f"dirichlet_{c:02d}" for c in range(5)))
        np.testing.assert_array_equal(skewed.num_examples("train"), [len(t) for t in trains])
        np.testing.assert_array_equal(skewed.num_examples("test"), [len(t) for t in tests])
        with self.assertRaisesRegex(ValueError, "partition must be"):
            ednet_kt1_builder.federation_from_builder(self.builder, partition="school")

    def test_start_cohorts_are_not_iid(self):
        # Centres (hence start months) differ in ability: correct rates spread out.
        rates = self.kept.groupby("start_month").correct.mean()
        self.assertGreater(rates.max() - rates.min(), 0.1)

    def test_federation_remaps_skills(self):
        fed = self.fed
        raw = np.unique(self.data["interaction"][..., 0])
        k = len(raw[raw > 0])
        self.assertEqual(k, self.kept.tag.nunique())
        self.assertEqual(fed.spec.num_skills, k)
        self.assertEqual(fed.spec.modalities, ("interaction",))
        skills = fed.train["inputs"]["interaction"][..., 0][fed.train["mask"]]
        self.assertEqual(set(np.unique(skills)) - {0}, set(range(1, k + 1)))
        with self.assertRaisesRegex(ValueError, "num_skills"):
            ednet_kt1_builder.federation_from_builder(self.builder, num_skills=k - 1)
        # A data_dir works as well as a builder.
        again = ednet_kt1_builder.federation_from_builder(self.tmp / "tfds", num_skills=k + 3)
        self.assertEqual(again.spec.num_skills, k + 3)
        np.testing.assert_array_equal(
            again.train["labels"]["correct"], fed.train["labels"]["correct"]
        )

    def test_malformed_rows_are_reported_by_file_and_line(self):
        root = self._copy()
        name = sorted((root / "KT1").iterdir())[0]
        lines = name.read_text().splitlines(keepends=True)
        fields = lines[2].rstrip("\n").split(",")
        fields[reader.COLUMNS.index("user_answer")] = "e"
        lines[2] = ",".join(fields) + "\n"  # Line 3 (line 1 is the header).
        lines[4] = lines[4].rstrip("\n") + ",extra\n"  # Line 5: one field too many.
        fields = lines[5].rstrip("\n").split(",")
        fields[0] = "-5"
        lines[5] = ",".join(fields) + "\n"  # Line 6: a bad timestamp.
        name.write_text("".join(lines))
        df, printed = _quiet(reader.read_ednet_kt1, root, max_users=1)
        where = f"KT1/{name.name}"
        got = {line: reason for f, line, reason in df.attrs["malformed"] if f == where}
        self.assertContainsSubset({3, 5, 6}, set(got))
        self.assertEqual(got[3], "user_answer 'e' is not a-d or empty")
        self.assertEqual(got[5], "6 fields, the header has 5")
        self.assertEqual(got[6], "timestamp '-5' is not an integer")
        self.assertIn(f"{where}:3", printed)
        with self.assertRaisesRegex(ValueError, re.escape(where) + ", line 3: malformed row"):
            reader.read_ednet_kt1(root, max_users=1, strict=True)
        # The generated files hold malformed rows (unknown questions, empty timestamps).
        f, line = min(zip(self.bad.file, self.bad.line, strict=True))  # The first one read.
        with self.assertRaisesRegex(ValueError, re.escape(f"{f}, line {line}: malformed")):
            reader.read_ednet_kt1(self.manual, strict=True, verbose=False)
        strict = ednet_kt1_builder.EdnetKt1(data_dir=str(root.parent / "tfds"), strict=True)
        with self.assertRaisesRegex(ValueError, "malformed row"):
            _quiet(common.prepare, strict, manual_dir=self.manual)
        unknown = self.bad[self.bad.timestamp != ""].iloc[0]
        df, _ = _quiet(reader.read_ednet_kt1, self.manual)
        self.assertIn(
            (unknown.file, unknown.line, f"question_id {unknown.question_id!r} is not in "
             "contents/questions.csv"), df.attrs["malformed"]
        )  # fmt: skip

    def test_missing_column_is_named(self):
        root = self._copy()
        name = sorted((root / "KT1").iterdir())[3]
        pd.read_csv(name, dtype=str).drop(columns="user_answer").to_csv(name, index=False)
        with self.assertRaisesRegex(ValueError, re.escape(str(name)) + ".*no column 'user_answer'"):
            _quiet(reader.read_ednet_kt1, root)
        questions = root / reader.QUESTIONS_FILE
        pd.read_csv(questions, dtype=str).drop(columns="tags").to_csv(questions, index=False)
        with self.assertRaisesRegex(ValueError, re.escape(str(questions)) + ".*no column 'tags'"):
            _quiet(reader.read_ednet_kt1, root)

    def test_wrong_encoding_names_the_file_and_utf8(self):
        root = self._copy()
        name = sorted((root / "KT1").iterdir())[1]
        lines = name.read_bytes().splitlines(keepends=True)
        # The bad byte comes after 16 KB, past the first block the reader decodes.
        bad = "1,1,q1,é,1000\n".encode("latin-1")
        name.write_bytes(b"".join(lines[:1] + lines[1:2] * 600 + [bad] + lines[1:]))
        with self.assertRaisesRegex(ValueError, re.escape(str(name)) + ": not utf-8"):
            _quiet(reader.read_ednet_kt1, root)

    def test_missing_file_names_the_file_and_the_download_page(self):
        missing = pathlib.Path(tempfile.mkdtemp(dir=self.tmp))
        with self.assertRaisesRegex(FileNotFoundError, r"contents/questions\.csv.*riiid/ednet"):
            reader.read_ednet_kt1(missing)
        (missing / "contents").mkdir()
        shutil.copy(self.manual / reader.QUESTIONS_FILE, missing / reader.QUESTIONS_FILE)
        with self.assertRaisesRegex(FileNotFoundError, r"KT1/u\{user_id\}\.csv.*riiid/ednet"):
            reader.read_ednet_kt1(missing)
        builder = ednet_kt1_builder.EdnetKt1(data_dir=str(missing / "tfds"))
        with self.assertRaisesRegex(FileNotFoundError, "KT1/u"):
            _quiet(common.prepare, builder, manual_dir=missing)

    def test_federated_knowledge_tracing_beats_per_skill_baseline(self):
        began = time.perf_counter()
        fed = self.fed
        model, result = helpers.train_small_m3t(fed, rounds=20)
        model_auc = result.global_report.pooled["correct"]["auc"]

        baseline_auc = helpers.per_skill_baseline_auc(fed)
        print(f"AUC model {model_auc:.3f}, per-skill baseline {baseline_auc:.3f}, "
              f"{time.perf_counter() - began:.1f} s")  # fmt: skip
        # Measured here: 0.709 vs 0.630 (generator seeds 1, 2: 0.642 vs 0.561, 0.709 vs
        # 0.565): the history carries the learner's ability and tag mastery.
        self.assertGreater(model_auc, baseline_auc + 0.03)


if __name__ == "__main__":
    absltest.main()
