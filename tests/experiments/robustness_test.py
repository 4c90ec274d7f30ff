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
"""experiments/robustness.py end to end on a tiny grid (slow: two short runs)."""

import math

import pytest

from experiments import robustness

pytestmark = pytest.mark.slow


@pytest.mark.long
def test_tiny_grid_prints_every_cell():
    settings = dict(
        rounds=1,
        num_clients=4,
        mean_examples=16,
        task="outcome",
        metric="accuracy",
        target=3,
        guard=None,
        seed=0,
        client_lr=1e-2,
    )
    rows = robustness.table(["median"], ["backdoor"], [0.0, 0.5], settings)
    assert [(r["attack"], r["aggregator"], r["fraction"]) for r in rows] == [
        ("backdoor", "median", 0.0),
        ("backdoor", "median", 0.5),
    ]
    for row in rows:
        assert 0.0 <= row["attacked"] <= 1.0 and 0.0 <= row["backdoor"] <= 1.0
    assert rows[0]["attacked"] == rows[0]["clean"]  # The 0% cell is the clean run.
    assert not math.isnan(rows[1]["attacked"])
    text = robustness.format_rows(rows, "outcome:accuracy")
    assert "backdoor" in text and "50%" in text
