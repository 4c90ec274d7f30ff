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

Each dataset's format module has a seeded latent-student generator writing the same
file names, columns, separators, encodings and quirks as the real download; `write`
runs several into one folder (their files do not clash), which then serves as the
`--manual_dir` of `experiments.train`, as a folder of real downloads would.
"""

import importlib
import os
from collections.abc import Sequence

# Dataset name (as experiments.train's --dataset) -> (format module, writer function).
WRITERS = {
    "assistments2009": ("assistments", "write_assistments2009"),
    "ednet_kt1": ("ednet", "write_ednet_kt1"),
    "asap_aes": ("asap", "write_asap_aes"),
    "oulad": ("oulad", "write_oulad"),
    "scienceqa": ("scienceqa", "write_scienceqa"),
}


def write(names: Sequence[str], out: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """Writes each named dataset's files into `out` with its writer's default sizes.

    Args:
      names: dataset names, keys of WRITERS.
      out: the folder to write into (created if missing).
      seed: the generators' seed.

    Returns:
      {name: the path the writer returned (its file or folder)}.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ValueError(f"Datasets {unknown} unknown; choose from {list(WRITERS)}.")
    written = {}
    for name in names:
        module, function = WRITERS[name]
        writer = getattr(importlib.import_module(f"fedjax_m3t.data.formats.{module}"), function)
        written[name] = str(writer(out, seed=seed))
    return written
