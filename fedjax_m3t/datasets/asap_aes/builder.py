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
"""A TFDS builder of ASAP-AES essays, its federation, and the score task's scale.

`AsapAes` reads the manually downloaded `training_set_rel3.tsv` through
`fedjax_m3t.datasets.asap_aes.reader` and writes array_record files: one example per essay
(the text, its set, its raw and normalised domain1 score), read back with random
access and no TensorFlow through `builder.as_data_source()`.

The task 'score' is a regression on domain1_score normalised per essay set to
[0, 1]: (s - lo) / (hi - lo) with the set's official range (reader.SCORE_RANGES), so
that one head serves the 8 sets' different scales. `denormalize` maps predictions
back to each set's integer scale (round, then clip) and `set_kappas` scores them
with the competition's metric, the quadratic weighted kappa per essay set, and
their mean.

`federation_from_builder` turns the built data into a `Federation`:

  * clients are essay sets (the natural partition: each prompt was written in
    its own schools and scored by its own raters), named 'set1' .. 'set8';
  * each essay has its own student, so the split within a set is by essay
    (`common.partition`, the split of `fedjax_m3t.data.split`): round(test_fraction
    * n) essays (rounded half up; at least one, and at least one left for train) go
    to test;
  * partition='dirichlet' deals the essays to `num_clients` clients with
    Dirichlet(alpha) skew of the normalised score bucketed into `num_bins`
    quantile bins;
  * the modality is 'text' (the essay) under a `text.TextEncoding` (default
    word hashing, 128 tokens).

Example (prints the reader's summary and TFDS progress):

  builder = AsapAes(data_dir='~/tensorflow_datasets')
  common.prepare(builder, manual_dir='~/Downloads')  # Holds training_set_rel3.tsv.
  fed = federation_from_builder(builder)
"""

import os
import pathlib

import numpy as np

from fedjax_m3t import metrics
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import split as split_lib
from fedjax_m3t.data import text
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.asap_aes import reader

tfds = common.require("tensorflow_datasets")

TEXT_LENGTH = 128  # Tokens per essay under the default encoding.
TASKS = (spec_lib.TaskSpec(name="score", kind="regression"),)


def _ranges(essay_set: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) float64 [n] of each essay's set; ValueError for an unknown set."""
    essay_set = np.asarray(essay_set)
    unknown = sorted(set(np.unique(essay_set).tolist()) - set(reader.SCORE_RANGES))
    if unknown:
        raise ValueError(f"Unknown essay sets {unknown}; the sets are {reader.ESSAY_SETS}.")
    lo = np.array([reader.SCORE_RANGES[int(s)][0] for s in essay_set.ravel()], np.float64)
    hi = np.array([reader.SCORE_RANGES[int(s)][1] for s in essay_set.ravel()], np.float64)
    return lo.reshape(essay_set.shape), hi.reshape(essay_set.shape)


def normalize(score: np.ndarray, essay_set: np.ndarray) -> np.ndarray:
    """domain1 scores -> [0, 1] per set: (s - lo) / (hi - lo), float32 [n].

    >>> normalize(np.array([2, 12, 3]), np.array([1, 1, 3])).tolist()
    [0.0, 1.0, 1.0]

    Args:
      score: [n] scores on each essay's set's scale (reader.SCORE_RANGES).
      essay_set: [n] essay sets, 1..8.

    Raises:
      ValueError: for an unknown essay set.
    """
    lo, hi = _ranges(essay_set)
    return ((np.asarray(score, np.float64) - lo) / (hi - lo)).astype(np.float32)


def denormalize(pred: np.ndarray, essay_set: np.ndarray) -> np.ndarray:
    """Predictions on the [0, 1] scale -> each set's integer scale, int64 [n].

    lo + pred * (hi - lo), rounded half to even, clipped to [lo, hi]; the inverse of
    `normalize` on its outputs.

    >>> denormalize(np.array([0.5, 0.96, -0.2, 1.4]), np.array([1, 8, 3, 2])).tolist()
    [7, 58, 0, 6]

    Args:
      pred: [n] predictions (any real values).
      essay_set: [n] essay sets, 1..8.

    Raises:
      ValueError: for an unknown essay set.
    """
    lo, hi = _ranges(essay_set)
    value = np.rint(lo + np.asarray(pred, np.float64) * (hi - lo))
    return np.clip(value, lo, hi).astype(np.int64)


def set_kappas(
    pred: np.ndarray, label: np.ndarray, essay_set: np.ndarray
) -> tuple[dict[int, float], float]:
    """Quadratic weighted kappa per essay set, and its mean over the sets.

    Both `pred` and `label` are on the normalised [0, 1] scale; each is mapped to its
    set's integer scale with `denormalize` and compared with
    `metrics.quadratic_weighted_kappa` over the set's official range. The mean is the
    plain mean over the sets with a defined kappa (the competition averaged the sets'
    kappas after a Fisher z-transform; with few essays per set the plain mean is
    steadier). A constant predictor scores 0 in every set whose labels vary.

    >>> kappas, mean = set_kappas(np.array([0.0, 0.9, 0.2, 0.7]),
    ...                           np.array([0.0, 1.0, 0.0, 1.0]), np.array([1, 1, 3, 3]))
    >>> {s: round(k, 3) for s, k in kappas.items()}, round(mean, 3)
    ({1: 0.989, 3: 0.6}, 0.795)

    Args:
      pred: float [n] predicted normalised scores.
      label: float [n] true normalised scores.
      essay_set: int [n] essay sets, 1..8.

    Returns:
      ({essay set: kappa, NaN where undefined (see quadratic_weighted_kappa)},
      the mean of the defined ones (NaN if none)).

    Raises:
      ValueError: for an unknown essay set.
    """
    essay_set = np.asarray(essay_set)
    pred_int, label_int = denormalize(pred, essay_set), denormalize(label, essay_set)
    kappas = {}
    for s in np.unique(essay_set).tolist():
        rows = essay_set == s
        kappas[int(s)] = metrics.quadratic_weighted_kappa(
            label_int[rows], pred_int[rows], *reader.SCORE_RANGES[int(s)]
        )
    defined = [k for k in kappas.values() if not np.isnan(k)]
    return kappas, float(np.mean(defined)) if defined else float("nan")


class AsapAes(tfds.core.GeneratorBasedBuilder):
    """ASAP-AES essays of 8 essay sets with their domain1 scores, one example per essay."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download `{reader.FILE_NAME}` from {reader.DOWNLOAD_PAGE}
    (after accepting the competition's rules: non-commercial research use; the file
    may not be redistributed) and put it, unchanged and still {reader.ENCODING}
    encoded, in the manual directory: `<data_dir>/downloads/manual/` or the directory
    given as `tfds.download.DownloadConfig(manual_dir=...)`.
    """

    def __init__(self, *, strict: bool = False, file_format: str | None = "array_record", **kwargs):
        """As tfds.core.GeneratorBasedBuilder, but writing array_record by default.

        Args:
          strict: make the reader raise on the first malformed row instead of
            skipping (and counting) it.
          file_format: the TFDS file format.
          **kwargs: for tfds.core.GeneratorBasedBuilder (data_dir, ...).
        """
        self.strict = strict
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "Essays of the Hewlett Foundation ASAP automated essay scoring competition "
                "(8 essay sets), with domain1_score on each set's own scale and 'score', "
                "that score normalised per set to [0, 1]. See fedjax_m3t.datasets.asap_aes.reader."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "essay": tfds.features.Text(),
                    "essay_id": tfds.features.Scalar(dtype=np.int64),
                    "essay_set": tfds.features.Scalar(dtype=np.int32),
                    "domain1_score": tfds.features.Scalar(dtype=np.int32),
                    "score": tfds.features.Scalar(dtype=np.float32),
                }
            ),
            supervised_keys=("essay", "score"),
            homepage="https://www.kaggle.com/c/asap-aes",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        path = pathlib.Path(dl_manager.manual_dir) / reader.FILE_NAME
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path: pathlib.Path):
        df = reader.read_asap_aes(path, strict=self.strict)
        score = normalize(df["domain1_score"].to_numpy(), df["essay_set"].to_numpy())
        for i, row in enumerate(df.itertuples(index=False)):
            yield (
                int(row.essay_id),
                {
                    "essay": row.essay,
                    "essay_id": row.essay_id,
                    "essay_set": row.essay_set,
                    "domain1_score": row.domain1_score,
                    "score": score[i],
                },
            )


def score_bins(score: np.ndarray, num_bins: int) -> np.ndarray:
    """Quantile bins of normalised scores: int64 [n] in 0..num_bins-1 (ties share a bin).

    >>> score_bins(np.array([0.0, 0.1, 0.5, 0.5, 0.9, 1.0]), 2).tolist()
    [0, 0, 1, 1, 1, 1]
    """
    edges = np.quantile(np.asarray(score, np.float64), np.arange(1, num_bins) / num_bins)
    return np.searchsorted(edges, score, side="right").astype(np.int64)


def federation_from_builder(
    builder: tfds.core.DatasetBuilder | str | os.PathLike,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    manual_dir: str | os.PathLike | None = None,
    partition: str = "natural",
    num_clients: int = 16,
    alpha: float | None = None,
    strict: bool = False,
    text_encoding: text.TextEncoding | None = None,
    num_bins: int = 4,
) -> federation_lib.Federation:
    """A federation of essay sets from the built ASAP-AES essays.

    See the module docstring for the clients, the split and the task.

    Args:
      builder: a prepared `AsapAes` builder, or the TFDS data_dir holding one
        (prepared there from `manual_dir` first if it is not yet).
      test_fraction: share of each client's essays in its test split.
      seed: seed of the split.
      manual_dir: where the downloaded file is, if a data_dir must be prepared
        (default <data_dir>/downloads/manual).
      partition: 'natural' (one client per essay set, 'set1' .. 'set8') or
        'dirichlet' (num_clients clients with Dirichlet(alpha) skew of the score
        bins).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).
      strict: if a data_dir must be prepared, raise on a malformed row.
      text_encoding: how essays become inputs; None = word hashing
        (TextEncoding(kind='hash', length=TEXT_LENGTH)).
      num_bins: quantile bins of the normalised score for partition='dirichlet'.

    Returns:
      A Federation with DataSpec(modalities=('text',), tasks=(score: regression,),
      text fields of the encoding); inputs['text'] [clients, n, length] int32 (or
      [clients, n, 384] float32 for 'minilm'), labels['score'] float32 in [0, 1].

    Raises:
      ValueError: for an unknown partition or num_bins < 1.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
    if not isinstance(builder, tfds.core.DatasetBuilder):
        path = os.fspath(builder)
        builder = common.ensure_prepared(
            lambda: AsapAes(data_dir=path, strict=strict),
            manual_dir=manual_dir,
            options={"strict": strict},
        )
    encoding = text_encoding or text.TextEncoding(kind="hash", length=TEXT_LENGTH)
    data = common.read_all(builder)
    score = data["score"].astype(np.float32)
    names, client, train = common.partition(
        partition,
        client_ids=np.array([f"set{s}" for s in data["essay_set"]]),
        student_ids=None,
        labels=score_bins(score, num_bins),
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
    spec = spec_lib.DataSpec(modalities=("text",), tasks=TASKS, **encoding.spec_fields())
    n = len(score)
    examples = {
        "inputs": {"text": text.encode(list(data["essay"]), encoding)},
        "present": {"text": np.ones(n, bool)},
        "labels": {"score": score},
        "label_mask": {"score": np.ones(n, bool)},
    }
    trains, tests = split_lib.client_rows(client, train, len(names))
    return federation_lib.from_rows(spec, names, trains, tests, examples)


def test_report(federation: federation_lib.Federation, predictions: dict) -> str:
    """Per-set quadratic weighted kappa of test predictions, on each set's own scale.

    Clients must be essay sets (partition 'natural': names 'set1'..'set8'); the
    training binary prints this after the metric table.

    Args:
      federation: the federation the predictions are for.
      predictions: {'score': float [clients, n_test]} normalised predictions (from
        `fedjax_m3t.evaluation.predict` on federation.test).

    Returns:
      A few lines of text: each set's kappa and the mean over sets.
    """
    if not all(n.startswith("set") and n[3:].isdigit() for n in federation.client_names):
        return "Per-set QWK needs the essay sets as clients (--partition=natural)."
    mask = np.asarray(federation.test["mask"])
    sets = np.array([int(n[3:]) for n in federation.client_names])[:, None]
    essay_set = np.broadcast_to(sets, mask.shape)[mask]
    pred = np.clip(np.asarray(predictions["score"])[mask], 0.0, 1.0)
    kappas, mean = set_kappas(pred, np.asarray(federation.test["labels"]["score"])[mask], essay_set)
    per_set = ", ".join(f"set{s} {k:.3f}" for s, k in kappas.items())
    return f"Test quadratic weighted kappa (each set's own scale): mean {mean:.3f}; {per_set}"
