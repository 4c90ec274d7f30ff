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
"""The README's Python example runs as written (slow: a short federated run)."""

import os
import re

import pytest

pytestmark = pytest.mark.slow

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)  # The example writes to runs/a.
    for block in blocks:
        exec(compile(block, README, "exec"), {})
    assert os.path.exists(tmp_path / "runs" / "a" / "metrics.jsonl")
