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
"""The mean / majority predictor, by hand (issue #18, 1.9)."""

import numpy as np

from fedjax_m3t.evaluation import trivial
from fedjax_m3t.models import linear
from tests import helpers


def test_mean_and_majority_by_hand():
    spec = helpers.tabular_spec((("r", "regression"), ("b", "binary"), ("m", "multiclass")))
    x = np.zeros((3, 2))
    train = [
        helpers.client(x, {"r": [1.0, 2.0, 3.0], "b": [1.0, 1.0, 0.0], "m": [2, 2, 0]}),
        helpers.client(x[:1], {"r": [6.0], "b": [1.0], "m": [1]}),
    ]
    test = [
        helpers.client(x[:2], {"r": [0.0, 4.0], "b": [1.0, 0.0], "m": [2, 1]}),
        helpers.client(x[:2], {"r": [5.0, 3.0], "b": [1.0, 1.0], "m": [2, 2]}),
    ]
    federation = helpers.federation(spec, train, test)
    constants = trivial.constants(federation)
    assert constants["r"] == 3.0  # (1 + 2 + 3 + 6) / 4, pooled over clients.
    np.testing.assert_allclose(constants["b"], np.log(3.0), rtol=1e-5)  # Rate 3/4.
    np.testing.assert_allclose(np.exp(constants["m"]), [0.25, 0.25, 0.5], rtol=1e-5)
    report = trivial.report(linear.build_linear_model(spec), federation)
    # Test labels 0, 4, 5, 3 (mean 3, variance 3.5) against the constant 3: MSE 3.5.
    np.testing.assert_allclose(report.pooled["r"]["rmse"], np.sqrt(3.5), rtol=1e-6)
    np.testing.assert_allclose(report.pooled["r"]["r2"], 0.0, atol=1e-6)
    assert report.pooled["b"]["accuracy"] == 0.75 and report.pooled["b"]["auc"] == 0.5
    assert report.pooled["m"]["accuracy"] == 0.75  # Class 2 in 3 of 4 test rows.
    np.testing.assert_allclose(report.per_client[0]["r"]["rmse"], np.sqrt((9 + 1) / 2), rtol=1e-6)
