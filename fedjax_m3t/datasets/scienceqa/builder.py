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
"""A TFDS builder of ScienceQA multiple-choice questions, and its federation.

`ScienceQa` reads the manually downloaded ScienceQA directory (problems.json,
pid_splits.json, images/) through `fedjax_m3t.datasets.scienceqa.reader` and writes
array_record files: one example per question, with its text fields, its answer and
its image as grey-scale uint8 [S, S] (zeros and has_image False without one), read
back with random access and no TensorFlow through `builder.as_data_source()`. One
builder config per image side S in IMAGE_SIZES ('28px' (the default), '56px').

`federation_from_builder` turns the built data into a `Federation`:

  * task 'answer': multiclass over MAX_CHOICES = 5 classes, the index of the correct
    choice. A question with n < 5 choices still gets 5 logits: the invalid classes
    n..4 are never a label, so the model learns to avoid them (the text shows how
    many choices there are); no masking;
  * modality 'text': `question_text` of the question, hint and lettered choices
    ("question: ... context: ... options: (A) ... (B) ..."), plus the lecture with
    include_lecture=True; encoded by `fedjax_m3t.data.text` (default hash, 96 tokens);
  * modality 'image': the question's image as float32 [S, S] in [0, 1]; present only
    for questions with an image;
  * partition='natural': clients are institutions, by `institution`:
    'grade_band' (default) GRADE_BANDS 'grades1-4', 'grades5-8', 'grades9-12';
    'subject': SUBJECTS 'language science', 'natural science', 'social science';
    'grade': 'grade1', ..., 'grade12'. Clients in that order, those without questions
    left out. The split is ScienceQA's official one: train and val questions train,
    test questions test (official_split=True). A client without official test
    questions splits its questions with the split of `fedjax_m3t.data.split`
    (round(test_fraction * n), rounded half up, at least one and at least one left
    of them to test), so every client that can has a non-empty test set.
    official_split=False splits every client's questions that way;
  * partition='dirichlet': `common.partition`'s Dirichlet skew of the answer index
    (num_clients clients, label skew alpha), split by example; the official split
    is not used.

Example (prints the reader's summary and TFDS progress):

  builder = ScienceQa(data_dir='~/tensorflow_datasets')
  common.prepare(builder, manual_dir='~/Downloads/scienceqa')  # problems.json, images/.
  fed = federation_from_builder(builder)
"""

import dataclasses
import os
import pathlib

import numpy as np

from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import split as split_lib
from fedjax_m3t.data import text as text_lib
from fedjax_m3t.datasets import common
from fedjax_m3t.datasets.scienceqa import reader

tfds = common.require("tensorflow_datasets")

IMAGE_SIZES = (28, 56)
MAX_CHOICES = reader.MAX_CHOICES
TEXT_LENGTH = 96
INSTITUTIONS = ("grade_band", "subject", "grade")
TASKS = (
    spec_lib.TaskSpec(
        name="answer", kind="multiclass", num_classes=MAX_CHOICES,
        class_names=tuple(reader.LETTERS[:MAX_CHOICES]),
    ),
)  # fmt: skip
_CHOICE_SEPARATOR = "\n"  # Joins a question's choices in one Text feature.


@dataclasses.dataclass
class ScienceQaConfig(tfds.core.BuilderConfig):
    """A ScienceQA build with images resized to image_size x image_size."""

    image_size: int = 28


class ScienceQa(tfds.core.GeneratorBasedBuilder):
    """ScienceQA: multiple-choice science questions of grades 1-12, half with an image."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ScienceQaConfig(name=f"{s}px", image_size=s, description=f"Images as {s}x{s} grey.")
        for s in IMAGE_SIZES
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Get `{reader.PROBLEMS_FILE}`, `{reader.SPLITS_FILE}` and the images from
    {reader.DOWNLOAD_PAGE}. The data is licensed CC BY-NC-SA 4.0 (non-commercial,
    share alike). Put the two JSON files and the `images/` folder (images/train/<pid>/
    image.png, images/val/..., images/test/...), unchanged, in the manual directory:
    `<data_dir>/downloads/manual/` or the directory given as
    `tfds.download.DownloadConfig(manual_dir=...)`.
    """

    def __init__(self, *, strict: bool = False, file_format: str | None = "array_record", **kwargs):
        """As tfds.core.GeneratorBasedBuilder, but writing array_record by default.

        Args:
          strict: make the reader raise on the first malformed problem.
          file_format: the TFDS file format.
          **kwargs: for tfds.core.GeneratorBasedBuilder (data_dir, config, ...).
        """
        self.strict = strict
        super().__init__(file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        text = tfds.features.Text
        return self.dataset_info_from_configs(
            description=(
                "ScienceQA multiple-choice questions: question, hint, choices (joined by "
                "newlines), lecture, the answer index, grade (1-12), subject, topic, skill, "
                f"official split, and the image as grey-scale uint8 [{size}, {size}] "
                "(zeros if has_image is False). See fedjax_m3t.datasets.scienceqa.reader."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "pid": text(),
                    "question": text(),
                    "hint": text(),
                    "choices": text(),
                    "lecture": text(),
                    "answer": tfds.features.Scalar(dtype=np.int32),
                    "num_choices": tfds.features.Scalar(dtype=np.int32),
                    "grade": tfds.features.Scalar(dtype=np.int32),
                    "subject": text(),
                    "topic": text(),
                    "skill": text(),
                    "split": text(),
                    "has_image": tfds.features.Scalar(dtype=np.bool_),
                    "image": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
                }
            ),
            homepage="https://reader.github.io",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        return {"train": self._generate_examples(pathlib.Path(dl_manager.manual_dir))}

    def _generate_examples(self, directory: pathlib.Path):
        df = reader.read_scienceqa(
            directory, image_size=self.builder_config.image_size, strict=self.strict
        )
        for row in df.itertuples(index=False):
            yield (
                row.pid,
                {
                    "pid": row.pid,
                    "question": row.question,
                    "hint": row.hint,
                    "choices": _CHOICE_SEPARATOR.join(row.choices),
                    "lecture": row.lecture,
                    "answer": row.answer,
                    "num_choices": row.num_choices,
                    "grade": row.grade,
                    "subject": row.subject,
                    "topic": row.topic,
                    "skill": row.skill,
                    "split": row.split,
                    "has_image": row.has_image,
                    "image": row.pixels,
                },
            )


def institution_of(data: dict[str, np.ndarray], institution: str) -> tuple[np.ndarray, tuple]:
    """(int code [n] of each question's institution, the names in code order).

    >>> codes, names = institution_of({'grade': np.array([12, 1, 5])}, 'grade_band')
    >>> codes.tolist(), names
    ([2, 0, 1], ('grades1-4', 'grades5-8', 'grades9-12'))

    Raises:
      ValueError: for an institution not in INSTITUTIONS.
    """
    if institution == "grade_band":
        return (np.asarray(data["grade"]) - 1) // 4, reader.GRADE_BANDS
    if institution == "grade":
        return np.asarray(data["grade"]) - 1, tuple(f"grade{g}" for g in range(1, 13))
    if institution == "subject":
        lookup = {s: i for i, s in enumerate(reader.SUBJECTS)}
        return np.array([lookup[s] for s in data["subject"]], np.int64), reader.SUBJECTS
    raise ValueError(f"institution must be one of {INSTITUTIONS}, got {institution!r}.")


def official_train(client: np.ndarray, splits: np.ndarray, train: np.ndarray) -> np.ndarray:
    """bool [n] train: the official split where a client has official test questions.

    Such a client trains on its official train and val questions and tests on its
    official test ones; any other client keeps `train`, the split of
    `fedjax_m3t.data.split`.

    >>> official_train(np.array([0, 0, 1, 1]), np.array(['train', 'test', 'val', 'train']),
    ...                np.array([False, True, True, False])).tolist()
    [True, False, True, False]

    Args:
      client: int [n] client index of each question.
      splits: str [n] each question's official split ('train', 'val' or 'test').
      train: bool [n] the random split, for clients without official test questions.
    """
    client = np.asarray(client, np.int64)
    official_test = np.asarray(splits) == "test"
    has_test = np.bincount(client, weights=official_test, minlength=int(client.max()) + 1) > 0
    return np.where(has_test[client], ~official_test, train)


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
    institution: str = "grade_band",
    official_split: bool = True,
    include_lecture: bool = False,
    text_encoding: text_lib.TextEncoding | None = None,
    image_size: int = 28,
) -> federation_lib.Federation:
    """A federation of institutions (grade bands by default) from the built ScienceQA.

    See the module docstring for the task, the modalities, the clients and the split.

    Args:
      builder: a prepared `ScienceQa` builder, or the TFDS data_dir holding one
        (config f'{image_size}px', prepared there from `manual_dir` first if it is
        not yet).
      test_fraction: the share moved to test in a client without official test
        questions (official_split=True), else each client's test share.
      seed: seed of the split.
      manual_dir: where the downloaded files are, if a data_dir must be prepared
        (default <data_dir>/downloads/manual).
      partition: 'natural' (one client per institution) or 'dirichlet' (num_clients
        clients with Dirichlet(alpha) skew of the answer index).
      num_clients: clients for partition='dirichlet'.
      alpha: Dirichlet concentration for partition='dirichlet' (None: IID).
      strict: for a data_dir that must be prepared: raise on a malformed problem.
      institution: the natural clients: 'grade_band', 'subject' or 'grade'.
      official_split: natural partition: use ScienceQA's train+val / test split.
      include_lecture: append the lecture to the text.
      text_encoding: how texts become inputs (None: hash, TEXT_LENGTH tokens).
      image_size: S for a data_dir (one of IMAGE_SIZES); a builder uses its own.

    Returns:
      A Federation with DataSpec(modalities=('text', 'image'), tasks=(answer:
      multiclass, 5 classes), image_size=S, the text fields of `text_encoding`);
      labels['answer'] int32 in 0..4.

    Raises:
      ValueError: for an unknown partition or institution, or an image_size not in
        IMAGE_SIZES.
    """
    if institution not in INSTITUTIONS:
        raise ValueError(f"institution must be one of {INSTITUTIONS}, got {institution!r}.")
    if partition not in common.PARTITIONS:
        raise ValueError(f"partition must be one of {common.PARTITIONS}, got {partition!r}.")
    if not isinstance(builder, tfds.core.DatasetBuilder):
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}.")
        path = os.fspath(builder)
        builder = common.ensure_prepared(
            lambda: ScienceQa(data_dir=path, config=f"{image_size}px", strict=strict),
            manual_dir=manual_dir,
            options={"strict": strict},
        )
    data = common.read_all(builder)
    codes, institution_names = institution_of(data, institution)
    n = len(codes)
    names, client, train = common.partition(
        partition,
        client_ids=codes,
        student_ids=None,
        labels=data["answer"],
        num_clients=num_clients,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
    if partition == "natural":
        names = tuple(institution_names[int(c)] for c in names)
        if official_split:
            train = official_train(client, data["split"], train)
    encoding = text_encoding or text_lib.TextEncoding(kind="hash", length=TEXT_LENGTH)
    texts = [
        reader.question_text(q, h, c.split(_CHOICE_SEPARATOR), lecture if include_lecture else "")
        for q, h, c, lecture in zip(
            data["question"], data["hint"], data["choices"], data["lecture"], strict=True
        )
    ]
    size = data["image"].shape[1]
    spec = spec_lib.DataSpec(
        modalities=("text", "image"), tasks=TASKS, image_size=size, **encoding.spec_fields()
    )
    examples = {
        "inputs": {
            "text": text_lib.encode(texts, encoding),
            "image": data["image"].astype(np.float32) / 255.0,
        },
        "present": {"text": np.ones(n, bool), "image": data["has_image"].astype(bool)},
        "labels": {"answer": data["answer"].astype(np.int32)},
        "label_mask": {"answer": np.ones(n, bool)},
    }
    trains, tests = split_lib.client_rows(client, train, len(names))
    return federation_lib.from_rows(spec, names, trains, tests, examples)
