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
"""A TFDS builder of ASSISTments 2009-2010 knowledge-tracing windows, and its federation.

`Assistments2009` reads the manually downloaded skill builder file through
`fedjax_m3t.datasets.assistments2009.reader` and writes array_record files: one example
per knowledge-tracing window (`reader.sequences`), read back with random
access and no TensorFlow through `builder.as_data_source()`.

`federation_from_builder` turns the built data into a `Federation`:

  * clients are schools (`school_id`, the natural partition), sorted by id and
    named by it;
  * within a school the train/test split is by STUDENT (`fedjax_m3t.data.split`),
    so that no test window shares its history with a train window: a seeded
    shuffle of the school's students puts round(test_fraction * students) of them
    (rounded half up; at least one, and at least one left for train) into test. A
    school with a single student keeps its windows in train (its test set is
    empty);
  * raw skill ids (scattered integers in the real file) are remapped to 1..K in
    increasing raw-id order, K the number of distinct skills in the built data (all
    splits); 0 stays padding. `num_skills` may reserve a larger vocabulary.

Example (prints the reader's summary and TFDS progress):

  builder = Assistments2009(data_dir='~/tensorflow_datasets')
  common.prepare(builder, manual_dir='~/Downloads')  # Holds skill_builder_data_corrected.csv.
  fed = federation_from_builder(builder)
"""

import os
import pathlib

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import split as split_lib
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.assistments2009 import reader

tfds = common.require("tensorflow_datasets")

INTERACTION_LENGTH = 16  # L: positions per window, the query included.
MAX_WINDOWS_PER_STUDENT = 64
TASKS = (spec_lib.TaskSpec(name="correct", kind="binary"),)


class Assistments2009(tfds.core.GeneratorBasedBuilder):
    """ASSISTments 2009-2010 skill builder: next-response windows, one per attempt."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download `{reader.FILE_NAME}` from {reader.DOWNLOAD_PAGE}
    (free, after accepting the ASSISTments terms of use) and put it, unchanged and
    still latin-1 encoded, in the manual directory: `<data_dir>/downloads/manual/`
    or the directory given as `tfds.download.DownloadConfig(manual_dir=...)`.
    """

    def __init__(self, *, strict: bool = False, file_format: str | None = "array_record", **kwargs):
        """As tfds.core.GeneratorBasedBuilder, but writing array_record by default.

        Args:
          strict: make the reader raise on the first malformed row (default: skip
            and report it).
          file_format: TFDS file format.
          **kwargs: for tfds.core.GeneratorBasedBuilder (data_dir, ...).
        """
        self.strict = strict
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        length = INTERACTION_LENGTH
        return self.dataset_info_from_configs(
            description=(
                "Knowledge-tracing windows of the ASSISTments 2009-2010 skill builder data: "
                f"up to {length - 1} previous (skill_id, correct) pairs of a student and the "
                "query item (skill_id, 2), left-padded with (0, 0); label = correct of the "
                "query. Raw skill ids. See fedjax_m3t.datasets.assistments2009.reader."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "interaction": tfds.features.Tensor(shape=(length, 2), dtype=np.int32),
                    "label": tfds.features.Scalar(dtype=np.int32),
                    "school_id": tfds.features.Scalar(dtype=np.int64),
                    "user_id": tfds.features.Scalar(dtype=np.int64),
                    "order_id": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("interaction", "label"),
            homepage="https://sites.google.com/site/assistmentsdata/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        path = pathlib.Path(dl_manager.manual_dir) / reader.FILE_NAME
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path: pathlib.Path):
        df = reader.read_assistments2009(path, strict=self.strict)
        windows = reader.sequences(
            df, length=INTERACTION_LENGTH, max_per_student=MAX_WINDOWS_PER_STUDENT
        )
        for i in range(len(windows["label"])):
            example = {k: v[i] for k, v in windows.items()}
            yield f"{example['user_id']}_{example['order_id']}", example


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
) -> federation_lib.Federation:
    """A federation of schools from the built ASSISTments windows.

    See the module docstring for the clients, the split and the skill remapping.

    Args:
      builder: a prepared `Assistments2009` builder, or the TFDS data_dir holding
        one (prepared there from `manual_dir` first if it is not yet).
      test_fraction: share of each school's students in its test split.
      seed: seed of the split.
      num_skills: the skill vocabulary K of the DataSpec; None = the distinct skills
        in the data.
      manual_dir: where the downloaded file is, if a data_dir must be prepared
        (default <data_dir>/downloads/manual).
      partition: 'natural' (one client per school_id, split by student) or
        'dirichlet' (num_clients clients with Dirichlet(alpha) skew of the label).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).
      strict: for a data_dir, the builder's reader raises on a malformed row.

    Returns:
      A Federation with DataSpec(modalities=('interaction',), tasks=(correct: binary,),
      num_skills=K, interaction_length=L); inputs['interaction'] int32
      [clients, n, L, 2] with skill ids in 1..K, labels['correct'] float32.

    Raises:
      ValueError: if num_skills is smaller than the distinct skills in the data, or
        for an unknown partition.
    """
    if not isinstance(builder, tfds.core.DatasetBuilder):
        path = os.fspath(builder)
        builder = common.ensure_prepared(
            lambda: Assistments2009(data_dir=path, strict=strict),
            manual_dir=manual_dir,
            options={"strict": strict},
        )
    data = common.read_all(builder)
    return windows_federation(
        data,
        data["school_id"],
        num_skills=num_skills,
        partition=partition,
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )


def windows_federation(
    data: dict[str, np.ndarray],
    client_ids: np.ndarray,
    *,
    num_skills: int | None,
    partition: str,
    num_clients: int,
    alpha: float | None,
    test_fraction: float,
    seed: int,
) -> federation_lib.Federation:
    """A knowledge-tracing federation from built windows (ASSISTments, EdNet KT1).

    Skill ids are remapped to 1..K in increasing raw-id order (0 stays padding);
    clients and splits come from `common.partition` with students = data['user_id'].

    Args:
      data: from `common.read_all`: 'interaction' int [N, L, 2] raw skill ids,
        'label' [N] 0/1, 'user_id' [N].
      client_ids: [N] the natural institution of each window.
      num_skills: the vocabulary K; None = the distinct skills in the data.
      partition, num_clients, alpha, test_fraction, seed: as `common.partition`.

    Returns:
      A Federation with DataSpec(modalities=('interaction',), tasks=(correct: binary,),
      num_skills=K, interaction_length=L).

    Raises:
      ValueError: if num_skills is smaller than the distinct skills in the data, or
        for an unknown partition.
    """
    interaction = data["interaction"].astype(np.int32)
    vocab = np.unique(interaction[..., 0])
    vocab = vocab[vocab > 0]
    k = len(vocab) if num_skills is None else num_skills
    if k < len(vocab):
        raise ValueError(f"num_skills={num_skills} < {len(vocab)} distinct skills in the data.")
    skill = interaction[..., 0]
    interaction[..., 0] = np.where(skill > 0, np.searchsorted(vocab, skill) + 1, 0)
    names, client, train = common.partition(
        partition,
        client_ids=client_ids,
        student_ids=data["user_id"],
        labels=data["label"],
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
    label = data["label"].astype(np.float32)
    spec = spec_lib.DataSpec(
        modalities=("interaction",),
        tasks=TASKS,
        num_skills=k,
        interaction_length=interaction.shape[1],
    )
    n = len(label)
    examples = {
        "inputs": {"interaction": interaction},
        "present": {"interaction": np.ones(n, bool)},
        "labels": {"correct": label},
        "label_mask": {"correct": np.ones(n, bool)},
    }
    trains, tests = split_lib.client_rows(client, train, len(names))
    return federation_lib.from_rows(spec, names, trains, tests, examples)
