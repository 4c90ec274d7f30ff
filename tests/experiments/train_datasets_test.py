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
"""Every downloaded dataset runs from flags on files generated in its real format.

`experiments.generate_data` writes all datasets into one manual folder, as a user
would put the real downloads; each `--dataset` then builds and trains (tiny
preset), and two of them combine into multi-modal institutions.
"""

import pytest

from experiments import config as config_lib
from experiments import train_lib
from fedjax_m3t.datasets import generate
from tests.experiments.train_test import tiny_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    written = generate.write(list(generate.WRITERS), str(root / "manual"), seed=0)
    assert set(written) == set(config_lib.BUILDER_DATASETS)
    return {"manual_dir": str(root / "manual"), "data_dir": str(root / "tfds")}


@pytest.mark.parametrize("name", sorted(generate.WRITERS))
def test_each_downloaded_dataset_trains_from_flags(name, folders):
    settings = tiny_settings(None, dataset=name, **folders)
    fed = train_lib.build_federation(settings)
    result = train_lib.train(settings)  # Cohort min(8, clients): all of them here.
    assert set(result.global_report.pooled) == set(fed.spec.task_names)
    assert len(result.global_report.per_client) == fed.num_clients


def test_unknown_generator_and_bad_flags_say_what_to_do(folders, tmp_path):
    with pytest.raises(ValueError, match="unknown; choose from"):
        generate.write(["nope"], str(tmp_path))
    settings = tiny_settings(None, dataset="assistments2009", **folders)
    with pytest.raises(train_lib.SettingsError, match="has one institution field only"):
        train_lib.build_federation(settings.override(institution="region"))
    with pytest.raises(train_lib.SettingsError, match="use --text_encoding=wordpiece"):
        train_lib.text_encoding(settings.override(text_encoder="minilm", text_encoding="hash"))


def test_auto_text_encoding_is_frozen_minilm_when_installed(monkeypatch, tmp_path):
    from fedjax_m3t.data import text

    settings = config_lib.TrainConfig().override(
        text_encoding="auto", text_length=32, data_dir=str(tmp_path)
    )
    monkeypatch.setattr(text, "minilm_available", lambda: True)
    encoding = train_lib.text_encoding(settings)
    assert (encoding.kind, encoding.length) == ("minilm", 32)
    assert encoding.cache_dir == str(tmp_path / "text_cache")
    assert train_lib.text_encoding(settings.override(text_encoder="minilm")).kind == "wordpiece"
    monkeypatch.setattr(text, "minilm_available", lambda: False)
    assert train_lib.text_encoding(settings).kind == "hash"


def test_strict_stops_at_a_malformed_row_that_is_otherwise_skipped(tmp_path):
    from fedjax_m3t.datasets.assistments2009 import writer

    path = writer.write_assistments2009(tmp_path / "manual", num_schools=2, seed=0)
    with open(path, "a", encoding="latin-1") as f:
        f.write("1,2,3\n")
    lines = sum(1 for _ in open(path, encoding="latin-1"))
    settings = tiny_settings(
        None, dataset="assistments2009", manual_dir=str(tmp_path / "manual"), cohort_size=2
    )
    with pytest.raises(train_lib.SettingsError, match=f"line {lines}: malformed row"):
        train_lib.build_federation(settings.override(data_dir=str(tmp_path / "a"), strict=True))
    fed = train_lib.build_federation(settings.override(data_dir=str(tmp_path / "b")))
    assert fed.num_clients == 2


def test_scale_multiplies_the_generated_size(tmp_path):
    import pandas as pd

    sizes = {}
    for scale in (0.5, 2.0):
        path = generate.write(["asap_aes"], tmp_path / str(scale), scale=scale)["asap_aes"]
        sizes[scale] = len(pd.read_csv(path, sep="\t", encoding="latin-1"))
    # 20 vs 80 essays per set on average (lognormal set sizes with the same seed).
    assert 3 < sizes[2.0] / sizes[0.5] < 5, sizes
    with pytest.raises(ValueError, match="scale must be > 0"):
        generate.write(["asap_aes"], tmp_path, scale=0)


def test_dataset_options_reach_the_loader_and_bad_ones_list_the_known(folders):
    settings = tiny_settings(None, dataset="oulad", **folders)
    full = train_lib.build_federation(settings)
    early = train_lib.build_federation(settings.override(dataset_options=["weeks=2"]))
    # An early-warning cut at week 2: at most 2 weekly steps per sequence, clicks included.
    steps = (early.train["inputs"]["interaction"][..., 0] > 0).sum(axis=-1)
    assert steps.max() == 2
    assert (full.train["inputs"]["interaction"][..., 0] > 0).sum(axis=-1).max() > 2
    with pytest.raises(train_lib.SettingsError, match=r"takes no option 'wek'; its own options"):
        train_lib.build_federation(settings.override(dataset_options=["wek=2"]))
    with pytest.raises(train_lib.SettingsError, match="set that one with its flag"):
        train_lib.build_federation(settings.override(dataset_options=["seed=3"]))
    with pytest.raises(train_lib.SettingsError, match="must look like key=value"):
        train_lib.build_federation(settings.override(dataset_options=["weeks"]))


def test_two_text_datasets_combine_with_one_text_length(folders):
    settings = tiny_settings(None, dataset="asap_aes+scienceqa", text_encoding="hash", **folders)
    fed = train_lib.build_federation(settings)
    # The longer of the two datasets' own lengths (ASAP 128, ScienceQA 96).
    assert fed.spec.text_length == 128
    assert fed.spec.modalities == ("text", "image")
    assert fed.spec.task_names == ("score", "answer")
