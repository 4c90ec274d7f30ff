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
"""A TFDS builder of EdNet KT1 knowledge-tracing windows, and its federation.

`EdnetKt1` reads the manually downloaded EdNet KT1 user files and questions table
through `fedjax_m3t.datasets.ednet_kt1.reader` (streaming, one user file at a time) and writes
array_record files: one example per knowledge-tracing window, cut exactly as for
ASSISTments by `fedjax_m3t.datasets.assistments2009.reader.sequences` (the same
INTERACTION_LENGTH and MAX_WINDOWS_PER_STUDENT as `assistments2009`): a learner's
up to L - 1 previous (skill, correct) pairs and the query (skill, 2), label = whether
the query question was answered right. The skill of a question is its FIRST tag; in
the stored windows it is written as first tag + 1, so that a tag 0 cannot be confused
with padding. Examples are read back with random access and no TensorFlow through
`builder.as_data_source()`.

`federation_from_builder` turns the built data into a `Federation`:

  * EdNet has NO school or class field. The natural clients are start cohorts: the
    learners whose first interaction falls in the same calendar month (UTC, of the
    release's shifted clock), named 'YYYY-MM' (e.g. '2018-03') and sorted;
  * within a cohort the train/test split is by learner (`common.partition`, the
    split of `fedjax_m3t.data.split`), so no test window shares its history with a
    train window;
  * skills are remapped to 1..K in increasing tag order, K the number of distinct
    skills in the built data; 0 stays padding. `num_skills` may reserve a larger
    vocabulary.

The full KT1 (784,309 users) gives tens of millions of windows; `max_users` builds a
subset from the first N user files in file-name order. Give a subset its own data_dir:
TFDS keys a built dataset by data_dir, name and version only.

Example (prints the reader's summary and TFDS progress):

  builder = EdnetKt1(data_dir='~/tensorflow_datasets/ednet_10k', max_users=10_000)
  common.prepare(builder, manual_dir='~/Downloads/ednet')  # Holds KT1/ and contents/.
  fed = federation_from_builder(builder)
"""

import os
import pathlib

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.assistments2009 import builder as assistments2009
from fedjax_m3t.datasets.assistments2009 import reader as assistments
from fedjax_m3t.datasets.ednet_kt1 import reader

tfds = common.require("tensorflow_datasets")

INTERACTION_LENGTH = assistments2009.INTERACTION_LENGTH  # L, the query included.
MAX_WINDOWS_PER_STUDENT = assistments2009.MAX_WINDOWS_PER_STUDENT
TASKS = assistments2009.TASKS  # (correct: binary,)
_USERS_PER_BLOCK = 10_000


class EdnetKt1(tfds.core.GeneratorBasedBuilder):
    """EdNet KT1: next-response windows, one per answered question (after the first)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download from {reader.DOWNLOAD_PAGE} (licence: CC BY-NC 4.0, research use). Unzip
    both into the manual directory, `<data_dir>/downloads/manual/` or the directory
    given as `tfds.download.DownloadConfig(manual_dir=...)`, so that it holds
    `{reader.FILE_NAMES[1]}` (784,309 files) and `{reader.QUESTIONS_FILE}`, unchanged.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        max_users: int | None = None,
        file_format: str | None = "array_record",
        **kwargs,
    ):
        """As tfds.core.GeneratorBasedBuilder, but writing array_record by default.

        Args:
          strict: make the reader raise on the first malformed row.
          max_users: build from the first this many user files (file-name order)
            only; None = all. Use a separate data_dir for each subset.
          file_format: as tfds.core.GeneratorBasedBuilder.
          **kwargs: as tfds.core.GeneratorBasedBuilder (data_dir, ...).
        """
        self.strict = strict
        self.max_users = max_users
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        length = INTERACTION_LENGTH
        return self.dataset_info_from_configs(
            description=(
                "Knowledge-tracing windows of EdNet KT1: up to "
                f"{length - 1} previous (skill, correct) pairs of a learner and the query "
                "question (skill, 2), left-padded with (0, 0); skill = the question's first "
                "tag + 1; label = correct of the query. start_month (YYYYMM) is the "
                "learner's start cohort (EdNet has no school field). See "
                "fedjax_m3t.datasets.ednet_kt1.reader."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "interaction": tfds.features.Tensor(shape=(length, 2), dtype=np.int32),
                    "label": tfds.features.Scalar(dtype=np.int32),
                    "start_month": tfds.features.Scalar(dtype=np.int64),
                    "user_id": tfds.features.Scalar(dtype=np.int64),
                    "order_id": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("interaction", "label"),
            homepage="https://github.com/riiid/ednet",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        return {"train": self._generate_examples(pathlib.Path(dl_manager.manual_dir))}

    def _generate_examples(self, root: pathlib.Path):
        df = reader.read_ednet_kt1(root, max_users=self.max_users, strict=self.strict)
        # Windows never cross users: cut them a block of users at a time, so that the
        # [windows, L] index arrays of `sequences` stay small on the full data.
        user = df["user_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        bounds = np.r_[starts[::_USERS_PER_BLOCK], len(df)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            block = df.iloc[a:b]
            # `sequences` wants school_id and a skill_id >= 1 (0 is padding).
            frame = block[["user_id", "order_id", "correct"]].assign(
                skill_id=block["tag"].astype(np.int64) + 1, school_id=block["start_month"]
            )
            windows = assistments.sequences(
                frame, length=INTERACTION_LENGTH, max_per_student=MAX_WINDOWS_PER_STUDENT
            )
            windows["start_month"] = windows.pop("school_id")
            for i in range(len(windows["label"])):
                example = {k: v[i] for k, v in windows.items()}
                yield f"{example['user_id']}_{example['order_id']}", example


def month_names(start_months: np.ndarray) -> np.ndarray:
    """YYYYMM integers as 'YYYY-MM' client names.

    >>> month_names(np.array([201803, 201912])).tolist()
    ['2018-03', '2019-12']
    """
    months = np.asarray(start_months, np.int64)
    return np.array([f"{m // 100:04d}-{m % 100:02d}" for m in months], dtype=object)


def federation_from_builder(
    builder: tfds.core.DatasetBuilder | str | os.PathLike,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    num_skills: int | None = None,
    manual_dir: str | os.PathLike | None = None,
    partition: str = "natural",
    num_clients: int = 16,
    alpha: float | None = None,
    strict: bool = False,
    max_users: int | None = None,
) -> federation_lib.Federation:
    """A federation of start cohorts from the built EdNet KT1 windows.

    See the module docstring for the clients (EdNet has no school field: learners are
    grouped by the month they started), the split and the skill remapping.

    Args:
      builder: a prepared `EdnetKt1` builder, or the TFDS data_dir holding one
        (prepared there from `manual_dir` first if it is not yet).
      test_fraction: share of each cohort's learners in its test split.
      seed: seed of the split.
      num_skills: the skill vocabulary K of the DataSpec; None = the distinct skills
        in the data.
      manual_dir: where the downloaded files are, if a data_dir must be prepared
        (default <data_dir>/downloads/manual).
      partition: 'natural' (one client per start month, split by learner) or
        'dirichlet' (num_clients clients with Dirichlet(alpha) skew of the label).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).
      strict: for a data_dir, the builder's reader raises on a malformed row.
      max_users: for a data_dir, build from the first this many user files only.

    Returns:
      A Federation with DataSpec(modalities=('interaction',), tasks=(correct: binary,),
      num_skills=K, interaction_length=L); inputs['interaction'] int32
      [clients, n, L, 2] with skill ids in 1..K, labels['correct'] float32.

    Raises:
      ValueError: if num_skills is smaller than the distinct skills in the data, for
        an unknown partition or a bad test_fraction.
    """
    if partition not in common.PARTITIONS:  # Before any building or reading.
        raise ValueError(f"partition must be one of {common.PARTITIONS}, got {partition!r}.")
    if not isinstance(builder, tfds.core.DatasetBuilder):
        path = os.fspath(builder)
        builder = common.ensure_prepared(
            lambda: EdnetKt1(data_dir=path, strict=strict, max_users=max_users),
            manual_dir=manual_dir,
            options={"strict": strict, "max_users": max_users},
        )
    data = common.read_all(builder)
    months, inverse = np.unique(data["start_month"], return_inverse=True)
    return assistments2009.windows_federation(
        data,
        month_names(months)[inverse.reshape(-1)],
        num_skills=num_skills,
        partition=partition,
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
