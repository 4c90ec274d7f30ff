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
"""A TFDS builder of OULAD student registrations, and its federation.

`Oulad` reads the seven manually downloaded csv files through
`fedjax_m3t.datasets.oulad.reader` and writes array_record files: one example per
registration (code_module, code_presentation, id_student) with its demographics,
`final_result` as `label` (index in reader.CLASS_NAMES) and its weekly activity
over WEEKS = 40 weeks (clicks, assessment submissions and scores, see
`reader.OuladData`), read back with random access and no TensorFlow through
`builder.as_data_source()`.

`federation_from_builder` turns the built data into a `Federation` for the
4-class task 'final_result' (Withdrawn, Fail, Pass, Distinction) with two
modalities:

  * 'tabular' (float32 [F]): one-hot gender, region, highest_education,
    imd_band, age_band, disability (categories: the sorted values found in the
    built data, a schema every client can agree on; a missing imd_band is all
    zeros plus the indicator 'imd_band_missing'), and the numbers
    num_of_prev_attempts, studied_credits, date_registration, score_mean (mean
    score of the scored submissions), num_submitted, late_share (share of the
    submissions after the due day; 0 without submissions) and log_clicks
    (log1p of the total clicks). Numbers are standardised with
    `fedjax_m3t.data.tabular.federated_mean_std`: the example-weighted mean and
    std of the TRAIN rows, which clients compute by summing (sum, sum of
    squares, count); a missing value (date_registration, score_mean of a student
    with no scored submission) becomes that mean (0 after standardising) plus a
    '<name>_missing' indicator. date_unregistration is NOT a feature: it gives
    Withdrawn away.
  * 'interaction' (int32 [WEEKS, 2]): the weekly click sequence in the (skill id,
    response) layout of spec.py, one step per week w = 0, 1, ... of the
    presentation (num_weeks = ceil(module_presentation_length / 7) steps),
    left-padded with (0, 0): skill id = 1 + click bin, bin 0 for no clicks and
    min(B - 1, 1 + floor(log2(clicks))) otherwise (B = `click_bins`, so
    num_skills = B: bins 0, 1, 2-3, 4-7, ...); response = 1 if an assessment was
    due that week and the student submitted one of those due, 0 if one was due
    and none was submitted, 2 if none was due.

WHEN the prediction is made: by default (`weeks=None`) the assessment and click
features and the sequence summarise the WHOLE presentation, a prediction at its
end (Withdrawn students stop clicking, so this is easy for them). For an
early-warning variant, `weeks=W` cuts everything at the end of week W - 1 (day
7W): the sequence keeps weeks < W, the assessment features count submissions
made before day 7W (a submission's week is `reader.week_of(date_submitted)`;
its score counts as known then),
log_clicks sums clicks of weeks < W, and a response counts as submitted only if
the submission came before day 7W.

Clients: partition='natural' makes one client per `code_module` (AAA..GGG), or
per `region` with institution='region'; within a client the train/test split is
by STUDENT (`common.partition`, the split of `fedjax_m3t.data.split`; a student
registered in several modules is in several clients, and within a client all of a
student's registrations are on one side). partition='dirichlet' deals the
registrations with Dirichlet skew of final_result, split by registration.

Example (prints the reader's summary and TFDS progress):

  builder = Oulad(data_dir='~/tensorflow_datasets')
  common.prepare(builder, manual_dir='~/Downloads/oulad')  # Holds the seven csv files.
  fed = federation_from_builder(builder, weeks=12)
"""

import os
import pathlib

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import split as split_lib
from fedjax_m3t.data import tabular
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.oulad import reader

tfds = common.require("tensorflow_datasets")

WEEKS = reader.WEEKS  # L: interaction steps, one per week.
CLICK_BINS = 12  # B: bins 0, 1, 2-3, ..., 512-1023, >= 1024 clicks.
TASKS = (
    spec_lib.TaskSpec(
        name="final_result", kind="multiclass", num_classes=4, class_names=reader.CLASS_NAMES
    ),
)
INSTITUTIONS = ("code_module", "region")
CATEGORICAL = ("gender", "region", "highest_education", "imd_band", "age_band", "disability")
NUMERIC = ("num_of_prev_attempts", "studied_credits", "date_registration")
ACTIVITY = ("score_mean", "num_submitted", "late_share", "log_clicks")
_WEEKLY = ("clicks", "submitted_week", "submissions", "late", "scored", "score_sum")


class Oulad(tfds.core.GeneratorBasedBuilder):
    """OULAD: one example per student registration, final_result and weekly activity."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download the OULAD zip from {reader.DOWNLOAD_PAGE} (licence CC-BY 4.0) and put
    its seven csv files ({", ".join(reader.FILE_NAMES)}), unchanged, in the manual
    directory: `<data_dir>/downloads/manual/` or the directory given as
    `tfds.download.DownloadConfig(manual_dir=...)`.
    """

    def __init__(self, *, strict: bool = False, file_format: str | None = "array_record", **kwargs):
        """As tfds.core.GeneratorBasedBuilder, writing array_record by default.

        Args:
          strict: passed to `reader.read_oulad`: raise on a malformed row.
          file_format: the TFDS file format.
          **kwargs: for tfds.core.GeneratorBasedBuilder (data_dir, ...).
        """
        self.strict = strict
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        week = lambda dtype: tfds.features.Tensor(shape=(WEEKS,), dtype=dtype)
        return self.dataset_info_from_configs(
            description=(
                "Open University Learning Analytics Dataset: one example per registration "
                "(code_module, code_presentation, id_student) with demographics, label = "
                f"index of final_result in {reader.CLASS_NAMES}, and per week of the "
                f"presentation (0..{WEEKS - 1}, days 7w..7w+6) clicks and assessment "
                "activity. See fedjax_m3t.datasets.oulad.reader."
            ),
            features=tfds.features.FeaturesDict(
                {
                    **{c: tfds.features.Text() for c in ("code_module", "code_presentation")},
                    "id_student": tfds.features.Scalar(dtype=np.int64),
                    # imd_band '' = missing.
                    **{c: tfds.features.Text() for c in CATEGORICAL},
                    "num_of_prev_attempts": tfds.features.Scalar(dtype=np.int32),
                    "studied_credits": tfds.features.Scalar(dtype=np.int32),
                    # NaN = missing.
                    "date_registration": tfds.features.Scalar(dtype=np.float32),
                    "date_unregistration": tfds.features.Scalar(dtype=np.float32),
                    "num_weeks": tfds.features.Scalar(dtype=np.int32),
                    "label": tfds.features.Scalar(dtype=np.int32),
                    "clicks": week(np.int64),
                    "submitted_week": week(np.int32),
                    "submissions": week(np.int32),
                    "late": week(np.int32),
                    "scored": week(np.int32),
                    "score_sum": week(np.float32),
                }
            ),
            homepage="https://analyse.kmi.open.ac.uk/open_dataset",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        return {"train": self._generate_examples(pathlib.Path(dl_manager.manual_dir))}

    def _generate_examples(self, directory: pathlib.Path):
        data = reader.read_oulad(directory, strict=self.strict)
        df = data.students
        columns = ("code_module", "code_presentation", "id_student", *CATEGORICAL,
                   "num_of_prev_attempts", "studied_credits", "date_registration",
                   "date_unregistration", "num_weeks", "label")  # fmt: skip
        values = {c: df[c].to_numpy() for c in columns}
        values["imd_band"] = df["imd_band"].fillna("").to_numpy()
        values.update(data.weekly)
        features = self.info.features
        for key in values:
            if not isinstance(features[key], tfds.features.Text):
                values[key] = values[key].astype(features[key].np_dtype)
        for i in range(len(df)):
            example = {k: v[i] for k, v in values.items()}
            key = f"{example['code_module']}_{example['code_presentation']}_{example['id_student']}"
            yield key, example


def click_bin(clicks: np.ndarray, bins: int = CLICK_BINS) -> np.ndarray:
    """int32 click-volume bin: 0 for no clicks, else min(bins - 1, 1 + floor(log2(clicks))).

    >>> click_bin(np.array([0, 1, 2, 3, 4, 1000, 5000])).tolist()
    [0, 1, 2, 2, 3, 10, 11]
    """
    clicks = np.asarray(clicks)
    safe = np.maximum(clicks, 1)
    return np.where(clicks > 0, np.minimum(bins - 1, 1 + np.floor(np.log2(safe))), 0).astype(
        np.int32
    )


def interaction(data: dict, *, weeks: int | None = None, bins: int = CLICK_BINS) -> np.ndarray:
    """The weekly (skill id, response) sequences: int32 [n, WEEKS, 2], left-padded.

    See the module docstring for the encoding.

    Args:
      data: built examples (`common.read_all`): 'clicks', 'submitted_week' [n, WEEKS],
        'num_weeks' [n].
      weeks: W, keep weeks < W and count submissions before day 7W (None = all).
      bins: B, the click bins (skill ids 1..B).
    """
    cut = WEEKS if weeks is None else weeks
    n = len(data["num_weeks"])
    steps = np.minimum(data["num_weeks"].astype(np.int64), cut)  # [n]
    skill = 1 + click_bin(data["clicks"], bins)
    sub = data["submitted_week"]
    response = np.where(sub == -2, 2, ((sub >= 0) & (sub < cut)).astype(np.int32))
    # Output position j holds week j - (WEEKS - steps); earlier positions are padding.
    week = np.arange(WEEKS)[None, :] - (WEEKS - steps)[:, None]
    real = week >= 0
    week = np.clip(week, 0, WEEKS - 1)
    rows = np.arange(n)[:, None]
    pairs = np.stack([skill[rows, week], response[rows, week]], axis=-1)
    return np.where(real[..., None], pairs, 0).astype(np.int32)


def activity(data: dict, *, weeks: int | None = None) -> dict[str, np.ndarray]:
    """float64 [n] assessment and click summaries up to week W (None = the whole presentation).

    Returns:
      {'score_mean' (NaN without a scored submission), 'num_submitted', 'late_share'
      (0 without submissions), 'log_clicks' (log1p of the clicks)}.
    """
    cut = WEEKS if weeks is None else weeks
    summed = ("clicks", "submissions", "late", "scored", "score_sum")
    total = {k: data[k][:, :cut].sum(axis=1).astype(np.float64) for k in summed}
    scored = total["scored"]
    return {
        "score_mean": np.where(scored > 0, total["score_sum"] / np.maximum(scored, 1), np.nan),
        "num_submitted": total["submissions"],
        "late_share": total["late"] / np.maximum(total["submissions"], 1),
        "log_clicks": np.log1p(total["clicks"]),
    }


def tabular_features(
    data: dict, client: np.ndarray, train: np.ndarray, *, weeks: int | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 'tabular' modality: float32 [n, F] and the F feature names.

    Args:
      data: built examples (`common.read_all`).
      client: int [n] client index of each example.
      train: bool [n] the train rows (their statistics standardise the numbers).
      weeks: cut the activity features at week W (None = the whole presentation).
    """
    num_clients = int(client.max()) + 1
    blocks, names = [], []
    for column in CATEGORICAL:
        values = data[column].astype(str)
        for category in sorted(set(values) - {""}):
            blocks.append(values == category)
            names.append(f"{column}={category}")
        if column == "imd_band":
            blocks.append(values == "")
            names.append("imd_band_missing")
    numbers = {c: data[c].astype(np.float64) for c in NUMERIC}
    numbers.update(activity(data, weeks=weeks))
    for column, values in numbers.items():
        mean, std = tabular.federated_mean_std(values, client, train, num_clients)
        missing = np.isnan(values)
        blocks.append((np.where(missing, mean, values) - mean) / std)
        names.append(column)
        if column in ("date_registration", "score_mean"):
            blocks.append(missing)
            names.append(f"{column}_missing")
    return np.stack(blocks, axis=1).astype(np.float32), tuple(names)


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
    institution: str = "code_module",
    weeks: int | None = None,
    click_bins: int = CLICK_BINS,
) -> federation_lib.Federation:
    """A federation of modules (or regions) from the built OULAD registrations.

    See the module docstring for the clients, the split, the features and `weeks`.

    Args:
      builder: a prepared `Oulad` builder, or the TFDS data_dir holding one
        (prepared there from `manual_dir` first if it is not yet).
      test_fraction: share of each client's students in its test split.
      seed: seed of the split.
      manual_dir: where the downloaded files are, if a data_dir must be prepared
        (default <data_dir>/downloads/manual).
      partition: 'natural' (one client per `institution`, split by student) or
        'dirichlet' (num_clients clients with Dirichlet(alpha) skew of final_result).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).
      strict: if a data_dir must be prepared, raise on a malformed row.
      institution: the natural client: 'code_module' (7 modules) or 'region'.
      weeks: W in [1, WEEKS]: predict at the end of week W - 1 (None = at the end).
      click_bins: B >= 2, the click bins (num_skills).

    Returns:
      A Federation with DataSpec(modalities=('tabular', 'interaction'),
      tasks=(final_result: multiclass, 4 classes), num_skills=B,
      interaction_length=WEEKS, tabular_features=F); labels['final_result'] int32.

    Raises:
      ValueError: for an unknown institution or partition, weeks outside
        [1, WEEKS] or click_bins < 2.
    """
    if institution not in INSTITUTIONS:
        raise ValueError(f"institution must be one of {INSTITUTIONS}, got {institution!r}.")
    if weeks is not None and not 1 <= weeks <= WEEKS:
        raise ValueError(f"weeks must be None or in [1, {WEEKS}], got {weeks}.")
    if click_bins < 2:
        raise ValueError(f"click_bins must be >= 2, got {click_bins}.")
    if not isinstance(builder, tfds.core.DatasetBuilder):
        path = os.fspath(builder)
        builder = common.ensure_prepared(
            lambda: Oulad(data_dir=path, strict=strict),
            manual_dir=manual_dir,
            options={"strict": strict},
        )
    data = common.read_all(builder)
    label = data["label"].astype(np.int32)
    names, client, train = common.partition(
        partition,
        client_ids=data[institution],
        student_ids=data["id_student"],
        labels=label,
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
    n = len(label)
    x, _ = tabular_features(data, client, train, weeks=weeks)
    spec = spec_lib.DataSpec(
        modalities=("tabular", "interaction"),
        tasks=TASKS,
        num_skills=click_bins,
        interaction_length=WEEKS,
        tabular_features=x.shape[1],
    )
    examples = {
        "inputs": {"tabular": x, "interaction": interaction(data, weeks=weeks, bins=click_bins)},
        "present": {"tabular": np.ones(n, bool), "interaction": np.ones(n, bool)},
        "labels": {"final_result": label},
        "label_mask": {"final_result": np.ones(n, bool)},
    }
    trains, tests = split_lib.client_rows(client, train, len(names))
    return federation_lib.from_rows(spec, names, trains, tests, examples)
