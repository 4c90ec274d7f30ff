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
r"""Writes small files in the real formats of the downloaded education datasets.

  python -m experiments.generate_data --dataset=assistments2009,asap_aes --out=/tmp/manual
  python -m experiments.train --dataset=assistments2009+asap_aes \
      --data_dir=/tmp/tfds --manual_dir=/tmp/manual

The files come from each dataset's seeded latent-student generator
(fedjax_m3t/datasets/<name>/writer.py): the same file names, columns, separators, encodings
and quirks as the real downloads, so the builders read them exactly as they read
the real files. All datasets can share one --out folder: their files do not clash.
"""

from absl import app, flags

from fedjax_m3t.datasets import generate


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
    if not FLAGS.out:
        raise app.UsageError("--out=<folder> is required.")
    try:
        written = generate.write(FLAGS.dataset, FLAGS.out, FLAGS.seed, FLAGS.scale)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    for name, path in written.items():
        print(f"{name}: wrote {path}")


if __name__ == "__main__":
    # Defined here, not at import: the flag names would clash with experiments.train's.
    flags.DEFINE_list(
        "dataset", list(generate.WRITERS), f"Datasets to write, from {list(generate.WRITERS)}."
    )
    flags.DEFINE_string("out", None, "Folder to write into (--manual_dir of experiments.train).")
    flags.DEFINE_integer("seed", 0, "Seed of the generators.")
    flags.DEFINE_float("scale", 1.0, "Multiplies each dataset's default size (1: seconds).")
    FLAGS = flags.FLAGS
    app.run(main)
