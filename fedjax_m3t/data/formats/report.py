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
"""What every format reader shares: field checks and the report of malformed rows.

A reader keeps each malformed row as (line, reason) or (file, line, reason), the
line physical with 1 = the header, and prints a one-line summary with
`malformed_summary` followed by the first few rows from `malformed_details`.
"""

from collections.abc import Sequence

SHOWN = 10  # Malformed rows listed one by one; the rest are counted.


def is_int(text: str) -> bool:
    """Whether `text` is an integer literal (optional leading '-', digits only).

    >>> is_int('-12'), is_int('1.5'), is_int('')
    (True, False, False)
    """
    return text.lstrip("-").isdigit()


def _where(entry: tuple) -> str:
    return ":".join(str(x) for x in entry[:-1])


def malformed_summary(malformed: Sequence[tuple]) -> str:
    """'N malformed rows at lines 3, 7 (and 2 more)': the summary's clause on them.

    >>> malformed_summary([(3, 'bad'), (7, 'bad')])
    '2 malformed rows at lines 3, 7'
    >>> malformed_summary([('a.csv', 5, 'bad')] * 12)
    '12 malformed rows at a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5, a.csv:5 (and 2 more)'
    """  # noqa: E501
    shown = ", ".join(_where(e) for e in malformed[:SHOWN])
    more = f" (and {len(malformed) - SHOWN} more)" if len(malformed) > SHOWN else ""
    lines = "lines " if malformed and len(malformed[0]) == 2 else ""
    return f"{len(malformed)} malformed rows" + (f" at {lines}{shown}{more}" if shown else "")


def malformed_details(malformed: Sequence[tuple]) -> list[str]:
    """One line per listed malformed row: '  line 3: reason' or '  a.csv line 3: reason'."""
    out = []
    for entry in malformed[:SHOWN]:
        where = f"{entry[0]} line {entry[1]}" if len(entry) == 3 else f"line {entry[0]}"
        out.append(f"  {where}: {entry[-1]}")
    return out
