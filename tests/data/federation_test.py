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
"""Tests of the Federation's record of where its examples came from (rows, groups)."""

import dataclasses

import numpy as np
import pytest

from fedjax_m3t.data import federation
from fedjax_m3t.data import spec as spec_lib

_SPEC = spec_lib.DataSpec(
    modalities=("tabular",),
    tasks=(spec_lib.TaskSpec(name="y", kind="regression"),),
    tabular_features=1,
)


def _examples(n):
    """Row i has feature i and label 10 i."""
    return {
        "inputs": {"tabular": np.arange(n, dtype=np.float32)[:, None]},
        "present": {"tabular": np.ones(n, bool)},
        "labels": {"y": 10 * np.arange(n, dtype=np.float32)},
        "label_mask": {"y": np.ones(n, bool)},
    }


def test_from_rows_records_the_rows_and_maps_them_to_positions():
    trains, tests = [np.array([3, 0]), np.array([1])], [np.array([2]), np.array([], int)]
    fed = federation.from_rows(_SPEC, ["a", "b"], trains, tests, _examples(4), groups=["g", "h"])
    assert [r.tolist() for r in fed.train_rows] == [[3, 0], [1]]
    assert [r.tolist() for r in fed.test_rows] == [[2], []]
    assert fed.groups == ("g", "h")
    # Client 0's train examples are rows 3, then 0, in that order.
    np.testing.assert_array_equal(fed.train["labels"]["y"][0], [30, 0])
    # With positions (rows 0..3 of the examples are rows 10..13 of a source table).
    fed = federation.from_rows(
        _SPEC, ["a", "b"], trains, tests, _examples(4), positions=np.arange(10, 14)
    )
    assert [r.tolist() for r in fed.train_rows] == [[13, 10], [11]]
    # Hiding a modality keeps the record.
    assert fed.with_modalities([]).train_rows == fed.train_rows


def test_a_record_that_does_not_fit_raises():
    fed = federation.from_rows(_SPEC, ["a"], [np.array([0, 1])], [np.array([2])], _examples(3))
    with pytest.raises(ValueError, match="2 groups for 1 clients"):
        dataclasses.replace(fed, groups=("g", "h"))
    with pytest.raises(ValueError, match="train_rows must hold one position per real train"):
        dataclasses.replace(fed, train_rows=(np.array([0]),))
    # Without a record (synthetic or combined data) the fields are empty.
    bare = federation.Federation(spec=_SPEC, client_names=("a",), train=fed.train, test=fed.test)
    assert (bare.groups, bare.train_rows, bare.test_rows) == ((), (), ())
