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
"""Writes small files in the real formats of the downloaded education datasets.

Each dataset's writer module is a seeded latent-student generator writing the same
file names, columns, separators, encodings and quirks as the real download; `write`
runs several into one folder (their files do not clash), which then serves as the
`--manual_dir` of `experiments.train`, as a folder of real downloads would.
"""

import importlib
import os
from collections.abc import Sequence

# Dataset name (as experiments.train's --dataset, and its folder in fedjax_m3t.datasets)
# -> (the function of its writer module, its size argument and that argument's default).
WRITERS = {
    "assistments2009": ("write_assistments2009", "students_per_school", 40),
    "ednet_kt1": ("write_ednet_kt1", "students_per_centre", 30),
    "asap_aes": ("write_asap_aes", "essays_per_set", 40),
    "oulad": ("write_oulad", "students_per_module", 40),
    "scienceqa": ("write_scienceqa", "num_questions", 300),
}


def write(
    names: Sequence[str], out: str | os.PathLike, seed: int = 0, scale: float = 1.0
) -> dict[str, str]:
    """Writes each named dataset's files into `out`.

    Args:
      names: dataset names, keys of WRITERS.
      out: the folder to write into (created if missing).
      seed: the generators' seed.
      scale: multiplies each writer's default size (students per school, essays per
        set, questions, ...); 1 is seconds to build and train.

    Returns:
      {name: the path the writer returned (its file or folder)}.

    Raises:
      ValueError: for an unknown name, listing the known ones, or scale <= 0.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ValueError(f"Datasets {unknown} unknown; choose from {list(WRITERS)}.")
    written = {}
    for name in names:
        function, size_arg, size = WRITERS[name]
        module = importlib.import_module(f"fedjax_m3t.datasets.{name}.writer")
        writer = getattr(module, function)
        sizes = {size_arg: max(2, round(size * scale))}
        written[name] = str(writer(out, seed=seed, **sizes))
    return written
