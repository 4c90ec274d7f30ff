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
"""The progress bar on a terminal, and the plain per-round lines elsewhere."""

import io

from fedjax_m3t.simulation import logging as logging_lib

CLEAR = "\r\x1b[K"


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, as sys.stdout does in a shell."""

    def isatty(self):
        return True


def _line(round_num, total=4):
    return logging_lib.progress_line(round_num, total, {"loss": 0.5}, 0.25)


def test_progress_bar_fills_with_the_rounds():
    assert logging_lib.progress_bar(0, 4) == "[" + "." * 20 + "]"
    assert logging_lib.progress_bar(1, 4) == "[" + "#" * 5 + "." * 15 + "]"
    assert logging_lib.progress_bar(3, 7) == "[" + "#" * 9 + "." * 11 + "]"  # 8.57 -> 9.
    assert logging_lib.progress_bar(4, 4) == "[" + "#" * 20 + "]"
    assert logging_lib.progress_bar(0, 0) == "[" + "#" * 20 + "]"  # --rounds=0: done.


def test_terminal_redraws_one_line_and_keeps_evaluations(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = FakeTerminal()
    logging_lib.show_progress(_line(1), 1, 4, stream=out)
    logging_lib.show_progress(_line(2), 2, 4, keep=True, stream=out)  # An evaluation round.
    logging_lib.show_progress(_line(3), 3, 4, stream=out)
    logging_lib.log("a message", stream=out)  # Gets its own line, after the open bar.
    logging_lib.show_progress(_line(4), 4, 4, keep=True, stream=out)
    assert _line(1) == "round 1/4  loss 0.5000  0.25 s"
    bar1, bar3 = "[#####...............] ", "[###############.....] "
    assert out.getvalue() == (
        CLEAR + bar1 + _line(1)
        + CLEAR + _line(2) + "\n"
        + CLEAR + bar3 + _line(3) + "\na message\n"
        + CLEAR + _line(4) + "\n"
    )  # fmt: skip
    # Only the kept rounds and the message remain once the terminal applies the redraws.
    screen = [part.split(CLEAR)[-1] for part in out.getvalue().split("\n")]
    assert screen == [_line(2), bar3 + _line(3), "a message", _line(4), ""]


def test_terminal_bar_is_cut_to_the_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    out = FakeTerminal()
    logging_lib.show_progress(_line(2), 2, 4, stream=out)
    assert out.getvalue() == CLEAR + ("[##########..........] " + _line(2))[:29]
    logging_lib.end_progress(stream=out)
    logging_lib.end_progress(stream=out)  # Once only.
    assert out.getvalue().endswith("round \n")


def test_pipe_gets_every_line_without_a_bar():
    out = io.StringIO()  # isatty() is False: a pipe, a file, a notebook.
    for r in range(1, 5):
        logging_lib.show_progress(_line(r), r, 4, keep=r == 4, stream=out)
    assert out.getvalue() == "".join(_line(r) + "\n" for r in range(1, 5))
    assert "\r" not in out.getvalue()
