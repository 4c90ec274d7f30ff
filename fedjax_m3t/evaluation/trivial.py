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
"""The mean / majority predictor: the floor every model on a table must beat.

It predicts, for every test example, one constant per task computed from the
TRAIN labels pooled over clients (what a federation obtains with one round of
summation): the mean for a regression task (R^2 about 0), the positive rate for
a binary one (as a logit: accuracy of the majority class, AUC 0.5), the class
frequencies for a multiclass one (as log-probabilities: majority accuracy).
Scored by `report.score` on the same test sets as the model, so the two are
comparable number for number.
"""

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.evaluation import report as report_lib
from fedjax_m3t.models import interface


def constants(federation: federation_lib.Federation) -> dict[str, np.ndarray]:
    """{task: the constant prediction}: a scalar, or [K] log class frequencies."""
    train = federation.train
    out = {}
    for task in federation.spec.tasks:
        keep = np.asarray(train["mask"] & train["label_mask"][task.name])
        labels = np.asarray(train["labels"][task.name])[keep]
        if task.kind == "regression":
            out[task.name] = np.float32(labels.mean() if labels.size else 0.0)
        elif task.kind == "binary":
            rate = np.clip(labels.mean() if labels.size else 0.5, 1e-6, 1 - 1e-6)
            out[task.name] = np.float32(np.log(rate / (1 - rate)))
        else:
            counts = np.bincount(labels.astype(np.int64), minlength=task.num_classes) + 1e-6
            out[task.name] = np.log(counts / counts.sum()).astype(np.float32)
    return out


def report(model: interface.Model, federation: federation_lib.Federation) -> report_lib.Report:
    """The mean / majority predictor's test Report (same tasks and clients as the model's).

    >>> import fedjax_m3t as fm
    >>> fed = fm.make_education_federation(fm.SyntheticConfig(num_clients=3, seed=0))
    >>> r = report(fm.linear.build_linear_model(fed.spec), fed)
    >>> round(r.pooled['score']['r2'], 1) <= 0.0
    True
    """
    shape = np.asarray(federation.test["mask"]).shape  # [num_clients, n]
    predictions = {
        name: np.broadcast_to(value, shape + value.shape).copy()
        for name, value in constants(federation).items()
    }
    return report_lib.score(model, predictions, federation.test)
