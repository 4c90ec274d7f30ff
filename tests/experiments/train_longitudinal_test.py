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
"""experiments/train.py on a longitudinal CSV: --student_column and --time_column."""

import json
import os

import numpy as np
import pytest

from experiments import train_lib
from tests.experiments import train_test

pytestmark = pytest.mark.slow


def _write_records(path) -> None:
    """4 schools x 6 students x grades K, 1, 2 (72 rows); one row lacks its student id.

    A student's score is their ability plus a little noise in every grade, so the
    earlier grades' standing predicts the next one.
    """
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    students = np.repeat(np.arange(24), 3)
    ability = rng.normal(size=24)[students]
    frame = pd.DataFrame(
        {
            "school": np.array(["a", "b", "c", "d"])[students % 4],
            "sid": students.astype(float),
            "grade": np.tile([0, 1, 2], 24),
            "hours": rng.normal(size=72),
            "score": ability + 0.1 * rng.normal(size=72),
        }
    )
    frame.loc[5, "sid"] = np.nan
    frame.to_csv(path, index=False)


def _settings(path, **overrides):
    columns = dict(
        dataset="csv",
        csv_path=str(path),
        client_column="school",
        feature_columns=["hours"],
        target_columns=["score:regression"],
        student_column="sid",
        time_column="grade",
    )
    return train_test.tiny_settings(**{**columns, **overrides})


def test_longitudinal_csv_from_flags(tmp_path):
    path = tmp_path / "records.csv"
    _write_records(path)
    workdir = str(tmp_path / "run")
    settings = _settings(path, workdir=workdir, cohort_size=4, eval_every=0, checkpoint_every=0)
    federation = train_lib.build_federation(settings)
    spec = federation.spec
    # 1 target x 3 grades x (4 levels + missing) + 3 query ids = 18 skills; length 8.
    assert (spec.modalities, spec.num_skills, spec.interaction_length) == (
        ("tabular", "interaction"),
        18,
        8,
    )
    # 72 rows; the one without a student id keeps its tabular example only.
    data = (federation.train, federation.test)
    assert sum(int(d["mask"].sum()) for d in data) == 72
    assert sum(int((d["mask"] & d["present"]["interaction"]).sum()) for d in data) == 71
    # Steps = earlier records + the query: 24 grade-K rows have 1, 24 grade-1 rows 2,
    # 23 grade-2 rows 3; row 5 (student 1's grade 2, no id) has none.
    steps = np.concatenate(
        [(d["inputs"]["interaction"][..., 0] > 0).sum(-1)[d["mask"]] for d in data]
    )
    assert np.bincount(steps).tolist() == [1, 24, 24, 23]
    result = train_lib.train(settings)
    assert np.isfinite(result.global_report.pooled["score"]["r2"])
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert (config["data"]["student_column"], config["data"]["time_column"]) == ("sid", "grade")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"time_column": None}, "student_column='sid' needs time_column"),
        ({"student_column": None}, "time_column='grade' needs student_column"),
        ({"student_column": "pupil"}, "'pupil' \\(student_column\\)"),
    ],
)
def test_bad_longitudinal_flags_stop_with_a_message(tmp_path, overrides, message):
    path = tmp_path / "records.csv"
    _write_records(path)
    with pytest.raises(train_lib.SettingsError, match=message):
        train_lib.train(_settings(path, **overrides))
