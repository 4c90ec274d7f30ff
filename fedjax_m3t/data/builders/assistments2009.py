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
`fedjax_m3t.data.formats.assistments` and writes array_record files: one example
per knowledge-tracing window (`assistments.sequences`), read back with random
access and no TensorFlow through `builder.as_data_source()`.

`federation_from_builder` turns the built data into a `Federation`:

  * clients are schools (`school_id`, the natural partition), sorted by id and
    named by it;
  * within a school the train/test split is by STUDENT, so that no test window
    shares its history with a train window: a seeded shuffle of the school's
    students puts round(test_fraction * students) of them (at least one, and at
    least one left for train) into test. A school with a single student splits
    that student's windows instead, the last round(test_fraction * n) (at least
    one) in time going to test. So every client with >= 2 examples has a non-empty
    test set;
  * raw skill ids (scattered integers in the real file) are remapped to 1..K in
    increasing raw-id order, K the number of distinct skills in the built data (all
    splits); 0 stays padding. `num_skills` may reserve a larger vocabulary.

Example (prints the reader's summary and TFDS progress):

  builder = Assistments2009(data_dir='~/tensorflow_datasets')
  prepare(builder, manual_dir='~/Downloads')  # Holds skill_builder_data_corrected.csv.
  fed = federation_from_builder(builder)
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import partition as partition_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data.formats import assistments

INTERACTION_LENGTH = 16  # L: positions per window, the query included.
MAX_WINDOWS_PER_STUDENT = 64
TASKS = (spec_lib.TaskSpec(name="correct", kind="binary"),)


class Assistments2009(tfds.core.GeneratorBasedBuilder):
    """ASSISTments 2009-2010 skill builder: next-response windows, one per attempt."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download `{assistments.FILE_NAME}` from {assistments.DOWNLOAD_PAGE}
    (free, after accepting the ASSISTments terms of use) and put it, unchanged and
    still latin-1 encoded, in the manual directory: `<data_dir>/downloads/manual/`
    or the directory given as `tfds.download.DownloadConfig(manual_dir=...)`.
    """

    def __init__(self, *, file_format: str | None = "array_record", **kwargs):
        """As tfds.core.GeneratorBasedBuilder, but writing array_record by default."""
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        length = INTERACTION_LENGTH
        return self.dataset_info_from_configs(
            description=(
                "Knowledge-tracing windows of the ASSISTments 2009-2010 skill builder data: "
                f"up to {length - 1} previous (skill_id, correct) pairs of a student and the "
                "query item (skill_id, 2), left-padded with (0, 0); label = correct of the "
                "query. Raw skill ids. See fedjax_m3t.data.formats.assistments."
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
        path = pathlib.Path(dl_manager.manual_dir) / assistments.FILE_NAME
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path: pathlib.Path):
        df = assistments.read_assistments2009(path)
        windows = assistments.sequences(
            df, length=INTERACTION_LENGTH, max_per_student=MAX_WINDOWS_PER_STUDENT
        )
        for i in range(len(windows["label"])):
            example = {k: v[i] for k, v in windows.items()}
            yield f"{example['user_id']}_{example['order_id']}", example


def prepare(
    builder: tfds.core.DatasetBuilder, *, manual_dir: str | os.PathLike | None = None
) -> None:
    """Builds `builder` from the file in `manual_dir` (default <data_dir>/downloads/manual).

    The reader's summary of dropped rows is printed.

    Raises:
      FileNotFoundError: naming the expected file and where to download it.
    """
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)


def partition_by_school(
    school_ids: np.ndarray,
    user_ids: np.ndarray,
    order_ids: np.ndarray,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[tuple[str, ...], list[np.ndarray], list[np.ndarray]]:
    """Clients = schools; a per-school train/test split by student (module docstring).

    Args:
      school_ids: int [n] school of each example.
      user_ids: int [n] student of each example.
      order_ids: int [n] the query's order_id (time order within a student), used to
        split a single-student school in time.
      test_fraction: share of each school's students in test, in (0, 1).
      seed: seed of the shuffles.

    Returns:
      (client names: the school ids as strings, sorted by id; per client int64 train
      example indices, ascending; per client int64 test example indices, ascending).

    Raises:
      ValueError: for test_fraction outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    rng = np.random.default_rng(seed)
    names, trains, tests = [], [], []
    for school in np.unique(school_ids):
        rows = np.flatnonzero(school_ids == school)
        students = np.unique(user_ids[rows])
        if len(students) >= 2:
            k = int(np.clip(round(test_fraction * len(students)), 1, len(students) - 1))
            is_test = np.isin(user_ids[rows], rng.permutation(students)[:k])
        else:
            k = int(np.clip(round(test_fraction * len(rows)), 1, max(1, len(rows) - 1)))
            k = k if len(rows) >= 2 else 0
            time_rank = np.argsort(np.argsort(order_ids[rows], kind="stable"), kind="stable")
            is_test = time_rank >= len(rows) - k
        names.append(str(school))
        trains.append(rows[~is_test])
        tests.append(rows[is_test])
    return tuple(names), trains, tests


def partition_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float | None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[tuple[str, ...], list[np.ndarray], list[np.ndarray]]:
    """Clients by Dirichlet label skew on `correct` (no institutions), split by example.

    Students may span clients here: use it to study label skew, not school effects.

    Returns:
      (client names 'dirichlet_00', ...; per client train indices; test indices), each
      client with >= 2 examples keeping >= 1 in test.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    client = partition_lib.dirichlet_partition(labels, num_clients, alpha, seed=seed)
    rng = np.random.default_rng(seed + 1)
    trains, tests = [], []
    for c in range(num_clients):
        rows = rng.permutation(np.flatnonzero(client == c))
        k = int(np.clip(round(test_fraction * len(rows)), 1, len(rows) - 1)) if len(rows) > 1 else 0
        tests.append(np.sort(rows[:k]))
        trains.append(np.sort(rows[k:]))
    return tuple(f"dirichlet_{c:02d}" for c in range(num_clients)), trains, tests


def read_all(builder: tfds.core.DatasetBuilder, split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a prepared split, stacked: {feature: [n, ...]}, data source order.

    Reads through `builder.as_data_source()` (array_record, random access, no TensorFlow).
    """
    source = builder.as_data_source(split=split)
    examples = source.__getitems__(range(len(source)))
    features = builder.info.features
    return {
        k: np.array([e[k] for e in examples], features[k].np_dtype).reshape(
            (len(examples),) + features[k].shape
        )
        for k in features.keys()
    }


def federation_from_builder(
    builder: tfds.core.DatasetBuilder | str | os.PathLike,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    num_skills: int | None = None,
    manual_dir: str | os.PathLike | None = None,
    partition: str = "school",
    num_clients: int = 16,
    alpha: float | None = None,
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
      partition: 'school' (natural: one client per school_id, split by student) or
        'dirichlet' (num_clients clients with Dirichlet(alpha) skew of the label).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).

    Returns:
      A Federation with DataSpec(modalities=('interaction',), tasks=(correct: binary,),
      num_skills=K, interaction_length=L); inputs['interaction'] int32
      [clients, n, L, 2] with skill ids in 1..K, labels['correct'] float32.

    Raises:
      ValueError: if num_skills is smaller than the distinct skills in the data, or
        for an unknown partition.
    """
    if not isinstance(builder, tfds.core.DatasetBuilder):
        builder = Assistments2009(data_dir=os.fspath(builder))
        if not builder.is_prepared():
            prepare(builder, manual_dir=manual_dir)
    data = read_all(builder)
    interaction = data["interaction"].astype(np.int32)
    vocab = np.unique(interaction[..., 0])
    vocab = vocab[vocab > 0]
    k = len(vocab) if num_skills is None else num_skills
    if k < len(vocab):
        raise ValueError(f"num_skills={num_skills} < {len(vocab)} distinct skills in the data.")
    skill = interaction[..., 0]
    interaction[..., 0] = np.where(skill > 0, np.searchsorted(vocab, skill) + 1, 0)
    if partition == "school":
        names, trains, tests = partition_by_school(
            data["school_id"],
            data["user_id"],
            data["order_id"],
            test_fraction=test_fraction,
            seed=seed,
        )
    elif partition == "dirichlet":
        names, trains, tests = partition_dirichlet(
            data["label"], num_clients, alpha, test_fraction=test_fraction, seed=seed
        )
    else:
        raise ValueError(f"partition must be 'school' or 'dirichlet', got {partition!r}.")
    label = data["label"].astype(np.float32)

    def client(rows: np.ndarray) -> dict:
        n = len(rows)
        return {
            "inputs": {"interaction": interaction[rows]},
            "present": {"interaction": np.ones(n, bool)},
            "labels": {"correct": label[rows]},
            "label_mask": {"correct": np.ones(n, bool)},
            "mask": np.ones(n, bool),
        }

    spec = spec_lib.DataSpec(
        modalities=("interaction",),
        tasks=TASKS,
        num_skills=k,
        interaction_length=interaction.shape[1],
    )
    return federation_lib.Federation(
        spec=spec,
        client_names=names,
        train=federation_lib.stack_clients([client(r) for r in trains]),
        test=federation_lib.stack_clients([client(r) for r in tests]),
    )
