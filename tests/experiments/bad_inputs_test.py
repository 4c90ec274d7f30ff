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
"""Bad inputs end with a one-line 'Error:' and exit status 2, never a traceback (issue #18).

The list is experiments/check_bad_inputs.py's CASES (flags out of range, devices,
workdirs, CSV files, a dataset not downloaded); here it runs in-process, two cases
go through the real binary, and the cases that need a finished run (a settings
mismatch on resume, fewer rounds) or a patched train (Ctrl-C) follow.
"""

import json
import os

import jax
import pytest

from experiments import check_bad_inputs, checks, train, train_lib


def test_every_bad_input_ends_with_a_one_line_error():
    assert check_bad_inputs.check() == []


def test_the_binary_itself_exits_2_with_one_line():
    cases = [c for c in check_bad_inputs.CASES if c.name in ("not a number", "csv with semicolons")]
    assert len(cases) == 2
    assert check_bad_inputs.check(cases, runner=check_bad_inputs.run_subprocess) == []


def test_the_checker_catches_a_traceback_or_a_vague_error():
    case = check_bad_inputs.Case("x", lambda d: [], "--width")
    assert "traceback" in check_bad_inputs.problem(case, 1, "Traceback (most recent...)\nE")
    assert "exit status 0" in check_bad_inputs.problem(case, 0, "Error: --width")
    assert "does not say" in check_bad_inputs.problem(case, 2, "Error: something")
    assert check_bad_inputs.problem(case, 2, "warning\nError: --width=3 is odd") is None


def test_settings_mismatch_on_resume_keeps_config_json(tmp_path):
    workdir = str(tmp_path / "run")
    # The linear model on one device: the quickest real run of the binary.
    fast = ["--model=linear", "--num_devices=1", "--eval_every=0"]

    def run(argv):
        return check_bad_inputs.run_in_process(argv + fast)

    assert run(["--preset=tiny", f"--workdir={workdir}"])[0] == 0
    saved = json.load(open(os.path.join(workdir, "config.json")))
    code, err = run(["--preset=tiny", f"--workdir={workdir}", "--client_lr=0.5", "--rounds=3"])
    last = check_bad_inputs.last_line(err)
    assert code == 2 and last.startswith("Error: The checkpoint in")
    assert "different settings (client_lr)" in last and "--resume=force" in last
    assert json.load(open(os.path.join(workdir, "config.json"))) == saved  # Not overwritten.
    code, err = run(["--preset=tiny", f"--workdir={workdir}", "--rounds=1"])
    assert code == 2 and "at round 2, past the 1 rounds" in check_bad_inputs.last_line(err)
    # On purpose: continues with the new learning rate, and records it.
    code, _ = run(
        ["--preset=tiny", f"--workdir={workdir}", "--client_lr=0.5", "--rounds=3", "--resume=force"]
    )
    assert code == 0
    assert json.load(open(os.path.join(workdir, "config.json")))["algorithm"]["client_lr"] == 0.5
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["round"] for r in records] == [1, 2, 3]
    config, federation, model, algorithm, loaded = train_lib.load(workdir)
    assert loaded.round == 3 and config.algorithm.client_lr == 0.5
    assert jax.tree.structure(loaded.server_state.params) == jax.tree.structure(
        model.init(jax.random.key(0))
    )


def test_ctrl_c_exits_130_without_traceback(monkeypatch):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_lib, "train", interrupted)
    code, err = check_bad_inputs.run_in_process(["--preset=tiny"])
    assert code == train.EXIT_INTERRUPTED == 130
    assert "Traceback" not in err and "rerun the same command to resume" in err


@pytest.mark.parametrize(
    "text, encoding, sep",
    [
        ("school;x;y\n1;2;0\n2;3;1\n", "utf-8", ";"),
        ("school\tx\ty\n1\t2\t0\n2\t3\t1\n", "utf-8", "\\t"),
        ("\xe9cole,x,y\n1,2,0\n2,3,1\n", "latin-1", ","),
    ],
)
def test_other_separators_and_encodings_read_when_given(tmp_path, text, encoding, sep):
    pytest.importorskip("pandas")
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding))
    frame = checks.read_table(str(path), encoding, sep)
    assert frame.shape == (2, 3) and frame.iloc[1, 1] == 3


def test_fields_added_later_at_their_defaults_do_not_block_a_resume():
    fingerprint = {"rounds_unrelated": 1, "csv_sep": ",", "width": 32, "max_classes": 7}
    saved = {"rounds_unrelated": 1, "width": 32}  # Written before csv_sep, max_classes.
    # csv_sep is at its default: dropped; max_classes is not: kept, so the change shows.
    assert checks.compatible_fingerprint(fingerprint, saved) == {
        "rounds_unrelated": 1, "width": 32, "max_classes": 7,
    }  # fmt: skip
    assert checks.compatible_fingerprint(fingerprint, None) == fingerprint
