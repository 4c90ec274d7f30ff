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
"""experiments/secagg_table.py: the byte column by hand, and a smoke run (slow)."""

import jax
import numpy as np
import pytest

from experiments import secagg_table
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.models import linear
from fedjax_m3t.secure import aggregator as secagg
from tests import helpers
from tests.secure import fast_compile


def test_dropout_settings():
    assert secagg_table.dropout_rate("0", 10) == 0.0
    assert secagg_table.dropout_rate("1", 10) == 0.1  # One client of ten.
    assert secagg_table.dropout_rate("0.3", 10) == 0.3
    assert secagg_table.parse_setting("1", 10) == (0.1, 0.0)
    assert secagg_table.parse_setting("late:1", 10) == (0.0, 0.1)  # Drops after sending.


def test_client_bytes_by_hand():
    model = linear.build_linear_model(helpers.tabular_spec((("a", "regression"),), 2))
    params = model.init(jax.random.key(0))
    federated = policy_lib.resolve(policy_lib.ModulePolicy(), params).federated
    leaves = jax.tree.leaves(params)
    values = sum(x.size for x in leaves)
    dim = values + len(leaves)
    got = secagg_table.client_bytes(secagg.SecAggConfig(), params, federated, 10)
    # Ring: bit_length(2 * 10 * 1024 * 2^16) = 31. Ten clients (9 neighbours): keys
    # 2 * 10 * 256 bits, shares (5 * 10 - 4) * 256 bits, the vector dim * 31 bits.
    assert (got["bits"], got["precision"]) == (31, 16)
    total = 2 * 10 * 256 + 46 * 256 + dim * 31
    assert got["bytes"] == total / 8
    np.testing.assert_allclose(got["expansion"], total / (values * 32))


@pytest.mark.slow
def test_smoke_run_prints_the_table():
    fast_compile.set_up()
    try:
        rows = secagg_table.measure(("1",), num_clients=4, timed_rounds=1, width=8)
    finally:
        fast_compile.tear_down()
    assert [r["dropouts"] for r in rows] == [1]
    # 3 of 4 survive: each keeps 2 responding neighbours, t = floor(0.5 * 3) + 1 = 2.
    assert not any(r["aborted"] for r in rows)
    assert all(r["error"] <= r["bound"] + 1e-6 for r in rows)
    text = secagg_table.format_rows(rows, "complete", 4)
    assert "1.734x (paper 1.73x)" in text and "1.984x (paper 1.98x)" in text
