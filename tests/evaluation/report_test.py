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
"""Tests for the test reports: metrics pooled and per client, worked out by hand."""

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from fedjax_m3t.evaluation import report as report_lib
from fedjax_m3t.models import linear
from tests import helpers


class EvaluationTest(absltest.TestCase):
    def test_global_report_by_hand(self):
        spec = helpers.tabular_spec()
        model = linear.build_linear_model(spec)
        # Client 0: x0 = [1, 2], y = [1, 3]; client 1: x0 = [0], y = [2] plus a padding
        # row; client 2: no label.
        data = helpers.stack(
            [
                helpers.client([[1, 5], [2, 5]], {"y": [1.0, 3.0]}),
                helpers.client([[0, 5], [9, 9]], {"y": [2.0, 99.0]}, mask=[True, False]),
                helpers.client([[1, 1]], {"y": [7.0]}, label_mask={"y": [False]}),
            ]
        )
        # Predict y = x0: w = [1, 0], b = 0.
        params = {"heads": {"y": {"kernel": jnp.array([[1.0], [0.0]]), "bias": jnp.zeros(1)}}}
        report = report_lib.evaluate(model, params, data)
        # Pooled errors [0, -1, -2]: MSE 5/3; labels [1, 3, 2] have variance 2/3, so
        # R^2 = 1 - (5/3) / (2/3) = -1.5.
        pooled = report.pooled["y"]
        self.assertEqual(pooled["count"], 3)
        np.testing.assert_allclose(pooled["rmse"], np.sqrt(5 / 3), rtol=1e-6, atol=0)
        np.testing.assert_allclose(pooled["r2"], -1.5, rtol=1e-6, atol=0)
        # Client 0: errors [0, -1], labels variance 1: RMSE sqrt(1/2), R^2 = 0.5.
        np.testing.assert_allclose(report.per_client[0]["y"]["rmse"], np.sqrt(0.5), rtol=1e-6)
        np.testing.assert_allclose(report.per_client[0]["y"]["r2"], 0.5, rtol=1e-6)
        # Client 1: one example, error -2; R^2 undefined (constant labels).
        np.testing.assert_allclose(report.per_client[1]["y"]["rmse"], 2.0, rtol=1e-6)
        self.assertTrue(np.isnan(report.per_client[1]["y"]["r2"]))
        # Client 2 has no label: no entry, NaN in client_values.
        self.assertEqual(report.per_client[2], {})
        np.testing.assert_allclose(
            report.client_values("y", "rmse"), [np.sqrt(0.5), 2.0, np.nan], rtol=1e-6
        )


if __name__ == "__main__":
    absltest.main()
