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
"""A built dataset is rebuilt when its downloaded files or options change (issue #18, 1.1)."""

import contextlib
import csv
import io
import os
import pathlib

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

from fedjax_m3t.datasets import common  # noqa: E402
from fedjax_m3t.datasets.assistments2009 import builder as assistments  # noqa: E402
from fedjax_m3t.datasets.assistments2009 import reader, writer  # noqa: E402


def _load(data_dir, manual, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        federation = assistments.federation_from_builder(
            data_dir, manual_dir=manual, test_fraction=0.25, **kwargs
        )
    return federation, out.getvalue()


def _examples(federation) -> int:
    return int(federation.train["mask"].sum() + federation.test["mask"].sum())


def test_edited_other_or_missing_files_and_options(tmp_path):
    manual = tmp_path / "manual"
    path = writer.write_assistments2009(manual, num_schools=2, students_per_school=6, seed=0)
    data_dir = str(tmp_path / "tfds")
    first, _ = _load(data_dir, manual)
    record = pathlib.Path(data_dir) / "assistments2009" / "1.0.0" / common.BUILD_RECORD
    assert record.exists()
    again, said = _load(data_dir, manual)  # Unchanged: the build is read as it is.
    assert "stale" not in said and _examples(again) == _examples(first)

    # Edited: drop one school's rows; the federation must lose that client.
    lines = path.read_text(encoding=reader.ENCODING).splitlines(keepends=True)
    column = next(csv.reader([lines[0]])).index("school_id")
    school = lambda line: next(csv.reader([line]))[column]
    first_school = school(lines[1])
    kept = [lines[0]] + [line for line in lines[1:] if school(line) == first_school]
    path.write_text("".join(kept), encoding=reader.ENCODING)
    os.utime(path, ns=(1, 1))  # A different mtime even on coarse file systems.
    edited, said = _load(data_dir, manual)
    assert "stale (sources changed); rebuilding" in said
    assert edited.num_clients == 1 < first.num_clients

    # Other options: --strict stops at malformed rows, so a lenient build is not reused.
    _, said = _load(data_dir, manual, strict=True)
    assert "stale (options changed)" in said

    # Files gone after the build: the build is used (and says so).
    os.remove(path)
    gone, said = _load(data_dir, manual, strict=True)
    assert gone.num_clients == 1 and "using the build" in said


def test_a_missing_download_names_manual_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no downloaded files.*--manual_dir"):
        _load(str(tmp_path / "tfds"), None)
    with pytest.raises(FileNotFoundError, match=r"--manual_dir=.*nowhere is not a folder"):
        _load(str(tmp_path / "tfds"), tmp_path / "nowhere")


def test_source_fingerprint_sees_names_sizes_and_times(tmp_path):
    (tmp_path / "a.csv").write_text("1,2\n")
    base = common.source_fingerprint(tmp_path)
    assert base["files"] == 1 and base["bytes"] == 4
    (tmp_path / "a.csv").write_text("1,3\n")  # Same size: the mtime tells.
    os.utime(tmp_path / "a.csv", ns=(10**9, 10**9))
    assert common.source_fingerprint(tmp_path)["digest"] != base["digest"]
    (tmp_path / ".hidden").write_text("x")  # Hidden files (e.g. .DS_Store) do not count.
    assert common.source_fingerprint(tmp_path)["files"] == 1
    assert np.isfinite(base["bytes"])
