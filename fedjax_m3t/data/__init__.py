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
"""The generic data layer: what every dataset builds on, knowing none of them.

  spec.py          the batch layout (DataSpec, TaskSpec) that models, tasks and metrics read
  federation.py    Federation (every client's examples, padded and stacked) and from_rows
  split.py         the one train/test split of clients' examples (by unit, e.g. student)
  partition.py     Dirichlet label skew, for data without institutions
  tabular.py       a federation from a DataFrame (one client per value of a column)
  longitudinal.py  a student's earlier records as an 'interaction' sequence
  text.py          text encodings (word hashing, WordPiece ids, MiniLM embeddings)
  combine.py       multi-modal institutions from several federations

The datasets themselves (downloads, school tables, the synthetic federation) live in
`fedjax_m3t.datasets`. This file imports nothing, so that `fedjax_m3t.data.spec`,
which models/ imports, pulls in no other data module (and no cycle back to models/).
"""
