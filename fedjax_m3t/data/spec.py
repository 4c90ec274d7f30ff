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
"""What a federation's examples look like: modalities, tasks, and the batch layout.

Every client's data is one dict of arrays whose leading axis is the example axis
(padded to a fixed size so that clients stack). For `n` examples:

  {
    'inputs': {                         # only the modalities in DataSpec.modalities
      'text':        int32   [n, text_length]            token ids, 0 = padding (right),
                     or float32 [n, text_embedding_dim] when that is > 0:
                     sentence embeddings of a frozen encoder (data/text.py)
      'image':       float32 [n, image_size, image_size] grey-scale in [0, 1]
      'interaction': int32   [n, interaction_length, 2]  (skill id, response) pairs;
                     skill id in 1..num_skills, 0 = padding; response 0 = wrong,
                     1 = right, 2 = unknown (the query item of next-response
                     prediction). Histories are left-padded, so the query item
                     sits at the last position.
      'tabular':     float32 [n, tabular_features]        standardised features
    },
    'present':    {modality: bool [n]}   the example has this modality; absent
                                         modalities hold zeros and are masked out
    'labels':     {task: [n]}            float32 for 'binary' (0/1) and 'regression',
                                         int32 for 'multiclass'
    'label_mask': {task: bool [n]}       the example has a label for this task
    'mask':       bool [n]               a real example (False = padding)
  }

A cohort stacks this on a leading client axis: [clients, n, ...].
"""

import dataclasses

MODALITIES = ("text", "image", "interaction", "tabular")
TASK_KINDS = ("binary", "regression", "multiclass")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """One prediction task.

    Attributes:
      name: the task's key in 'labels' and the model's head name.
      kind: 'binary' (logit, BCE), 'regression' (MSE) or 'multiclass' (softmax CE).
      num_classes: classes for 'multiclass' (ignored otherwise).
      class_names: optional display names for 'multiclass' classes.
    """

    name: str
    kind: str
    num_classes: int = 1
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"Task {self.name!r}: kind {self.kind!r} is not one of {TASK_KINDS}.")
        if self.kind == "multiclass" and self.num_classes < 2:
            raise ValueError(f"Task {self.name!r}: multiclass needs num_classes >= 2.")

    @property
    def output_dim(self) -> int:
        """Width of the head's output."""
        return self.num_classes if self.kind == "multiclass" else 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Shapes and vocabularies of a federation's modalities, and its tasks.

    Only the modalities listed in `modalities` appear in 'inputs'; the sizes of the
    others are ignored.
    """

    modalities: tuple[str, ...]
    tasks: tuple[TaskSpec, ...]
    text_vocab_size: int = 256
    text_length: int = 16
    text_embedding_dim: int = 0
    image_size: int = 28
    num_skills: int = 32
    interaction_length: int = 16
    tabular_features: int = 8

    def __post_init__(self):
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad:
            raise ValueError(f"Unknown modalities {bad}; known: {MODALITIES}.")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"Task names repeat: {names}.")

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The TaskSpec called `name`; ValueError listing the tasks if none."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(f"No task {name!r}; tasks are {self.task_names}.")
